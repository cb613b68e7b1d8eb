"""The item catalogue and the user features of a prepared output, as Parquet beside the shards.

  items.parquet   one row per item of vocabularies/item_ids.txt, in index order (row r is item
                  index r + 2): item_id, title, genres ("|"-joined), year (0 unknown),
                  runtime_seconds (0 unknown), and feature:<name> for every extra categorical
                  item feature (watch_log's data.item_features)
  users.parquet   only when the log has user features: one row per user of
                  vocabularies/user_ids.txt, in index order: user_id, feature:<name>

They are what training needs beyond the events (`item_features.ItemFeatureTables` and
`user_features.UserFeatureTables` are built from them) and hold one row per item or user, never
per event. Files go through tf.io.gfile (local folders or gs://...).
"""

import io
import os
from typing import Dict, Optional, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf

from tfrs_smoe.data import schema

ITEMS = "items.parquet"
USERS = "users.parquet"
_FEATURE = "feature:"
_ITEM_COLUMNS = ("item_id", "title", "genres", "year", "runtime_seconds")


def _write(path: str, columns: Dict[str, np.ndarray]) -> None:
  buffer = io.BytesIO()
  pq.write_table(pa.table({name: pa.array(values) for name, values in columns.items()}), buffer)
  temporary = f"{path}.tmp-{os.getpid()}"
  with tf.io.gfile.GFile(temporary, "wb") as f:
    f.write(buffer.getvalue())
  tf.io.gfile.rename(temporary, path, overwrite=True)


def _read(path: str) -> Dict[str, np.ndarray]:
  with tf.io.gfile.GFile(path, "rb") as f:
    table = pq.read_table(io.BytesIO(f.read()))
  columns = {}
  for name in table.column_names:
    values = table.column(name).to_numpy(zero_copy_only=False)
    columns[name] = values.astype(str) if values.dtype == object else values
  return columns


def subset_catalog(catalog: schema.ItemCatalog, item_ids: np.ndarray) -> schema.ItemCatalog:
  """The rows of `catalog` for `item_ids` ([i] str, every one in the catalogue), in their order.

  Example:
    >>> catalog = schema.ItemCatalog(item_id=["m2", "m1"], title=["B", "A"], genres=["", ""],
    ...                              year=[0, 1999], runtime_seconds=[0, 60])
    >>> subset_catalog(catalog, np.array(["m1"])).year
    array([1999], dtype=int32)
  """
  order = np.argsort(catalog.item_id, kind="stable")
  position = np.searchsorted(catalog.item_id[order], item_ids)
  rows = order[np.minimum(position, len(order) - 1)]
  if len(item_ids) and not np.array_equal(catalog.item_id[rows], item_ids):
    raise schema.DataError(f"{int(np.sum(catalog.item_id[rows] != item_ids))} item(s) are not in "
                           "the catalogue.")
  return schema.ItemCatalog(
      item_id=catalog.item_id[rows], title=catalog.title[rows], genres=catalog.genres[rows],
      year=catalog.year[rows], runtime_seconds=catalog.runtime_seconds[rows],
      features={name: values[rows] for name, values in catalog.features.items()})


def write(output_dir: str, items: schema.ItemCatalog, users: Optional[schema.UserTable]) -> None:
  """Writes items.parquet (and users.parquet when `users` has features).

  Args:
    output_dir: the prepared output.
    items: the catalogue of the item vocabulary, in index order.
    users: the features of the user vocabulary's users, in index order, or None.
  """
  _write(os.path.join(output_dir, ITEMS), {
      "item_id": items.item_id, "title": items.title, "genres": items.genres,
      "year": items.year, "runtime_seconds": items.runtime_seconds,
      **{_FEATURE + name: values for name, values in items.features.items()}})
  if users is not None and users.features:
    _write(os.path.join(output_dir, USERS), {
        "user_id": users.user_id,
        **{_FEATURE + name: np.asarray(values).astype(str)
           for name, values in users.features.items()}})


def read(output_dir: str) -> Tuple[schema.ItemCatalog, Optional[schema.UserTable]]:
  """The catalogue and user table that `write` wrote.

  Example:
    >>> catalog = schema.ItemCatalog(item_id=["m1"], title=["Heat"], genres=["Action|Crime"],
    ...                              year=[1995], runtime_seconds=[10200])
    >>> os.makedirs("prepared", exist_ok=True)
    >>> write("prepared", catalog, None)
    >>> items, users = read("prepared")
    >>> items.genres.tolist(), users
    (['Action|Crime'], None)
  """
  path = os.path.join(output_dir, ITEMS)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"{output_dir}: no {ITEMS}; it was prepared by an older "
                            "tfrs-smoe-prepare: prepare it again.")
  columns = _read(path)
  items = schema.ItemCatalog(
      **{name: columns[name] for name in _ITEM_COLUMNS},
      features={name[len(_FEATURE):]: values for name, values in columns.items()
                if name.startswith(_FEATURE)})
  users = None
  path = os.path.join(output_dir, USERS)
  if tf.io.gfile.exists(path):
    columns = _read(path)
    users = schema.UserTable(user_id=columns["user_id"], features={
        name[len(_FEATURE):]: values for name, values in columns.items()
        if name.startswith(_FEATURE)})
  return items, users
