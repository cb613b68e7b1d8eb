"""A user's own watch log: CSV, TSV or Parquet files in one folder, read into a `WatchLog`.

The folder (`--dataset=watch_log --data_dir=DIR`) holds:

  interactions   required: one file (interactions.parquet / .csv / .tsv / .csv.gz / .tsv.gz)
                 or a folder `interactions/` of such shards, read in name order. Columns:
                 user_id, item_id, timestamp (integer seconds since the epoch, or ISO 8601
                 text, UTC unless it names a zone), and either engagement in [0, 1] or
                 watch_seconds and runtime_seconds (engagement = watch / runtime, capped at 1).
  items          optional, the same formats: item_id, and any of title, genres (a list
                 column, or text split on `genre_separator`), year (0 or empty = unknown),
                 runtime_seconds, plus the columns named in `item_features`.
  users          optional, the same formats: user_id plus the categorical columns named in
                 `user_features`.

`WatchLogFormat.columns` (`tfrs_smoe.data.watch_log_format`) maps the names above to the
files' own (one mapping for every file, e.g. {"user_id": "account", "item_id": "title_id"}).
Ids are strings end to end: the vocabularies, and so the served ids, are the files' own. Other
columns are not read.

Bad input raises `schema.DataError`: a missing file or column names the file and what it holds;
a value that does not parse, or is out of range (engagement NaN or outside [0, 1], negative
watch seconds, a runtime that is not positive), or an id listed twice in the items or users
file names the file, the row and the column and shows the value. With `skip_bad_lines` such
rows (and rows of text files with the wrong field count) are skipped, counted per file and
reported in a warning and in `WatchLog.metadata["skipped_rows"]`. A duplicate
(user, item, timestamp) interaction is always dropped (the first row is kept) and counted
(metadata["duplicate_rows"]). Items of the log missing from the items file get empty metadata,
users missing from the users file unknown features; both are counted and reported.

The catalogue is the set of items that occur in the log, as for the other data sets. Files are
read in record batches through `TableFile`, values converted by `column_values`, so the reader
holds numpy columns, never one Python object per row.
"""

import functools
import hashlib
import os
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from absl import logging
import numpy as np
import pyarrow as pa

from tfrs_smoe.data import column_values
from tfrs_smoe.data import schema
from tfrs_smoe.data import table_file
from tfrs_smoe.data import watch_log_format

WatchLogFormat = watch_log_format.WatchLogFormat

NAME = "watch_log"
# Completion at or below which a watch is an abandonment, as in the synthetic streaming logs.
DEFAULT_ABANDONMENT_THRESHOLD = 0.05
_OPTIONAL_ITEM_COLUMNS = ("title", "genres", "year", "runtime_seconds")


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


class _Columns:
  """Numpy columns gathered batch by batch."""

  def __init__(self):
    self.parts: Dict[str, List[np.ndarray]] = {}

  def add(self, **columns: np.ndarray) -> None:
    for name, values in columns.items():
      self.parts.setdefault(name, []).append(values)

  def get(self, name: str, dtype) -> np.ndarray:
    parts = self.parts.get(name, [])
    return np.concatenate(parts).astype(dtype) if parts else np.zeros([0], dtype)


def _align(table_ids: np.ndarray, ids: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """(found [len(ids)] bool, the rows of `table_ids` holding ids[found])."""
  if not len(table_ids):
    return np.zeros(len(ids), bool), np.zeros([0], np.int64)
  order = np.argsort(table_ids, kind="stable")
  position = np.minimum(np.searchsorted(table_ids[order], ids), len(table_ids) - 1)
  found = table_ids[order][position] == ids
  return found, order[position[found]]


def _check_column(table: table_file.TableFile, first_row: int, batch: pa.RecordBatch,
                  rejected: np.ndarray, name: str, parsed: Tuple[np.ndarray, np.ndarray],
                  reason: str,
                  extra_bad: Optional[Callable[[np.ndarray], np.ndarray]] = None) -> np.ndarray:
  """The parsed values of a batch's column `name`, its bad rows rejected once each.

  Args:
    table: the file the batch is from.
    first_row: the row number of the batch's first row.
    batch: the record batch.
    rejected: [batch rows] bool, the rows rejected so far; updated in place.
    name: the column's name in the file.
    parsed: (values, bad) [batch rows] each, the column parsed (`column_values`).
    reason: what is wrong with a bad value.
    extra_bad: values -> [batch rows] bool, more bad rows (e.g. out of range), or None.

  Returns:
    [batch rows] the values (those of bad rows are meaningless).
  """
  values, bad = parsed
  bad = bad if extra_bad is None else bad | extra_bad(values)
  table.reject(first_row, bad & ~rejected, name, batch.column(name), reason)
  rejected[:] |= bad
  return values


class WatchLogFiles:
  """The files of one watch-log folder (see the module docstring) and their reading.

  Args:
    directory: the folder.
    format: column mapping, genre separator, extra features, bad-row handling.

  Attributes:
    interactions: the interaction files, in reading order.
    items: the items files ([] without).
    users: the users files ([] without).

  Example:
    >>> os.makedirs("my_log", exist_ok=True)
    >>> with open("my_log/interactions.csv", "w", encoding="utf-8") as f:
    ...   _ = f.write("account,item_id,timestamp,engagement\\n"
    ...               "u1,m1,2024-01-01T20:00:00Z,0.9\\nu1,m2,2024-01-02T21:00:00Z,0.02\\n"
    ...               "u2,m1,2024-01-02T22:00:00Z,1.0\\n")
    >>> files = WatchLogFiles("my_log", WatchLogFormat(columns={"user_id": "account"}))
    >>> log = files.read()
    >>> log.interactions.user_id, log.interactions.item_id
    (array(['u1', 'u1', 'u2'], dtype='<U2'), array(['m1', 'm2', 'm1'], dtype='<U2'))
    >>> log.metadata["skipped_rows"]
    {'interactions.csv': 0}
  """

  def __init__(self, directory: str, format: WatchLogFormat):  # pylint: disable=redefined-builtin
    self.directory = os.fspath(directory)
    self.format = format
    if not os.path.isdir(self.directory):
      raise schema.DataError(f"watch_log: data_dir {self.directory!r} is not a directory.")
    self.interactions = self._find("interactions", required=True)
    self.items = self._find("items")
    self.users = self._find("users")
    if format.user_features and not self.users:
      raise schema.DataError(f"{self.directory}: data.user_features names "
                             f"{list(format.user_features)}, but there is no users file.")
    if format.item_features and not self.items:
      raise schema.DataError(f"{self.directory}: data.item_features names "
                             f"{list(format.item_features)}, but there is no items file.")

  def _find(self, name: str, required: bool = False) -> List[str]:
    """The files of table `name`: name.<suffix>, or the shards of folder `name/`."""
    found = [os.path.join(self.directory, name + suffix) for suffix in table_file.SUFFIXES
             if os.path.isfile(os.path.join(self.directory, name + suffix))]
    folder = os.path.join(self.directory, name)
    if os.path.isdir(folder):
      shards = sorted(os.path.join(folder, f) for f in os.listdir(folder)
                      if not f.startswith((".", "_")) and table_file.file_format(f))
      if not shards:
        raise schema.DataError(f"{folder}: holds no {', '.join(table_file.SUFFIXES)} files.")
      found.append(folder)
      if len(found) == 1:
        return shards
    if len(found) > 1:
      raise schema.DataError(f"{self.directory}: several {name} tables "
                             f"({', '.join(map(os.path.basename, found))}); keep one.")
    if required and not found:
      shown = sorted(os.listdir(self.directory))[:10]
      raise schema.DataError(
          f"{self.directory}: no {name} file ({name}.parquet, {name}.csv, {name}.tsv, "
          f"{name}.csv.gz, {name}.tsv.gz, or a folder {name}/ of such shards); it holds {shown}.")
    return found

  def _relative(self, path: str) -> str:
    return os.path.relpath(path, self.directory)

  def source_files(self) -> Dict[str, str]:
    """Path relative to the folder -> SHA-256 of every file read."""
    return {self._relative(path): _sha256(path)
            for path in self.interactions + self.items + self.users}

  def open_table(self, path: str) -> table_file.TableFile:
    """The `TableFile` of one of the folder's files, with the format's bad-row handling."""
    return table_file.TableFile(path, self.format.skip_bad_lines)

  def has_seconds(self, table: table_file.TableFile) -> bool:
    """Whether an interactions file has both watch_seconds and runtime_seconds columns."""
    column = self.format.column
    return {column("watch_seconds"), column("runtime_seconds")} <= set(table.columns)

  def interaction_batches(self, table: table_file.TableFile) -> Iterator[Dict[str, np.ndarray]]:
    """The valid rows of one interactions file, one record batch at a time.

    Args:
      table: an interactions file (`open_table`); its `skipped` and `examples` count the bad
        rows skipped so far.

    Yields:
      Per record batch, the rows kept as [rows] columns: user_id, item_id (str), timestamp
      (int64 seconds), engagement (float64, not capped at 1: watch / runtime where the file has
      no engagement column), row (the file's row number), and watch_seconds and
      runtime_seconds where the file has both (`has_seconds`).

    Raises:
      schema.DataError: a missing column, or a bad row unless bad rows are skipped.
    """
    column = self.format.column
    ids = [column("user_id"), column("item_id"), column("timestamp")]
    seconds = [column("watch_seconds"), column("runtime_seconds")]
    direct = column("engagement") in table.columns
    with_seconds = self.has_seconds(table)
    if not direct and not with_seconds:
      missing = [n for n in ids + seconds if n not in table.columns]
      raise schema.DataError(
          f"{table.path}: the interactions file has no column {', '.join(map(repr, missing))}"
          f" (it needs {ids[0]!r}, {ids[1]!r}, {ids[2]!r}, and {column('engagement')!r} or "
          f"both {seconds[0]!r} and {seconds[1]!r}); its columns are {table.columns}. Map "
          "yours with data.columns, e.g. 'data: {columns: {watch_seconds: <your column>}}'.")
    table.require(ids, "interactions")
    names = ids + ([column("engagement")] if direct else []) + (seconds if with_seconds else [])
    for first_row, batch in table.batches(names):
      rejected = np.zeros(batch.num_rows, bool)
      check = functools.partial(_check_column, table, first_row, batch, rejected)
      user = check(ids[0], column_values.ids(batch.column(ids[0])), column_values.REASONS["id"])
      item = check(ids[1], column_values.ids(batch.column(ids[1])), column_values.REASONS["id"])
      timestamp = check(ids[2], column_values.timestamps(batch.column(ids[2])),
                        column_values.REASONS["timestamp"])
      parsed = {}
      if with_seconds:
        parsed["watch_seconds"] = check(
            seconds[0], column_values.numbers(batch.column(seconds[0])),
            "is NaN or not a non-negative number of seconds",
            lambda v: ~(np.isfinite(v) & (v >= 0)))
        parsed["runtime_seconds"] = check(
            seconds[1], column_values.numbers(batch.column(seconds[1])),
            "is NaN or not a positive number of seconds", lambda v: ~(np.isfinite(v) & (v > 0)))
      if direct:
        engagement = check(column("engagement"),
                           column_values.numbers(batch.column(column("engagement"))),
                           "is NaN or outside [0, 1]", lambda v: ~((v >= 0) & (v <= 1)))
      else:
        with np.errstate(divide="ignore", invalid="ignore"):
          engagement = parsed["watch_seconds"] / parsed["runtime_seconds"]
      keep = ~rejected
      columns = dict(user_id=user, item_id=item, timestamp=timestamp, engagement=engagement,
                     row=np.arange(first_row, first_row + batch.num_rows), **parsed)
      yield {name: values[keep] for name, values in columns.items()}

  def read_table(self, what: str
                 ) -> Tuple[Dict[str, np.ndarray], Dict[str, table_file.TableFile]]:
    """Reads the items or users table, validated, each id once.

    Args:
      what: "items" or "users".

    Returns:
      (columns, files): columns "item_id" / "user_id" [n] str, for items the standard columns
      the file has ("title", "genres", "year", "runtime_seconds"), and "feature:<name>" [n] str
      for every feature the format names (`item_features` / `user_features`); files maps each
      file's path relative to the folder to its `TableFile` (bad rows skipped, examples). An id
      listed twice keeps its first row; later ones are bad rows of their file.

    Raises:
      schema.DataError: a missing column, or a bad row unless bad rows are skipped.
    """
    if what not in ("items", "users"):
      raise ValueError(f"read_table: what must be 'items' or 'users', got {what!r}.")
    paths = self.items if what == "items" else self.users
    id_name = "item_id" if what == "items" else "user_id"
    features = tuple(self.format.item_features if what == "items" else self.format.user_features)
    column = self.format.column
    out = _Columns()
    tables = []
    for path in paths:
      table = self.open_table(path)
      tables.append(table)
      table.require([column(id_name)] + list(features), what)
      standard = [n for n in (_OPTIONAL_ITEM_COLUMNS if what == "items" else ())
                  if column(n) in table.columns]
      for first_row, batch in table.batches([column(id_name)] + [column(n) for n in standard]
                                            + list(features)):
        rejected = np.zeros(batch.num_rows, bool)
        values = {}
        parsers = {
            id_name: (column_values.ids, column_values.REASONS["id"], None),
            "title": (column_values.strings, None, None),
            "genres": (lambda a: column_values.genres(a, self.format.genre_separator),
                       column_values.REASONS["genres"], None),
            "year": (lambda a: column_values.integers(a, missing=0),
                     column_values.REASONS["integer"], lambda v: v < 0),
            "runtime_seconds": (self._optional_number, "is NaN or a negative number of seconds",
                                lambda v: ~(np.isfinite(v) & (v >= 0))),
        }
        for name in [id_name] + standard:
          parse, reason, out_of_range = parsers[name]
          raw = batch.column(column(name))
          parsed = parse(raw)
          if reason is None:
            values[name] = parsed
            continue
          value, bad = parsed
          if out_of_range is not None:
            bad = bad | out_of_range(value)
          table.reject(first_row, bad & ~rejected, column(name), raw, reason)
          rejected |= bad
          values[name] = value
        for name in features:
          values[f"feature:{name}"] = column_values.strings(batch.column(name))
        columns = dict(file=np.full(batch.num_rows, len(tables) - 1),
                       row=np.arange(first_row, first_row + batch.num_rows), **values)
        out.add(**{name: array[~rejected] for name, array in columns.items()})
    files = {self._relative(t.path): t for t in tables}
    result = {name: np.concatenate(parts) for name, parts in out.parts.items()}
    if id_name not in result:  # No rows at all.
      return {id_name: np.zeros([0], str),
              **{f"feature:{name}": np.zeros([0], str) for name in features}}, files
    # An id listed twice: the first row is kept, later ones are bad rows of their file.
    ids = result[id_name]
    _, first = np.unique(ids, return_index=True)
    repeated = np.ones(len(ids), bool)
    repeated[first] = False
    for index, table in enumerate(tables):
      rows = np.flatnonzero(repeated & (result["file"] == index))
      table.reject_rows(result["row"][rows], column(id_name), ids[rows][:3].tolist(),
                        f"is listed twice (the {what} file lists each id once)")
    return {name: values[~repeated] for name, values in result.items()
            if name not in ("file", "row")}, files

  @staticmethod
  def _optional_number(array) -> Tuple[np.ndarray, np.ndarray]:
    values, bad = column_values.numbers(array)
    empty = column_values.strings(array) == ""
    return np.where(empty, 0.0, values), bad & ~empty

  def read(self, source_files: Optional[Dict[str, str]] = None) -> schema.WatchLog:
    """Reads the folder into a validated WatchLog named "watch_log".

    Args:
      source_files: `source_files()`, when the caller has computed it already.

    Returns:
      The log with `metadata` holding data_dir, columns, source_files (path -> SHA-256),
      skipped_rows (path -> count), duplicate_rows, items_without_metadata and
      users_without_features.

    Raises:
      schema.DataError: bad input (see the module docstring).
    """
    self._skipped: Dict[str, table_file.TableFile] = {}
    out = _Columns()
    all_seconds = True
    for path in self.interactions:
      table = self.open_table(path)
      all_seconds &= self.has_seconds(table)
      for columns in self.interaction_batches(table):
        out.add(**columns)
      self._skipped[self._relative(path)] = table
    user_id, item_id = out.get("user_id", str), out.get("item_id", str)
    timestamp, engagement = out.get("timestamp", np.int64), out.get("engagement", np.float64)
    if not len(user_id):
      raise schema.DataError(f"{self.directory}: the interactions hold no rows "
                             f"(skipped per file: {self._skipped_counts()}).")
    capped = int(np.sum(engagement > 1.0))
    engagement = np.minimum(engagement, 1.0)
    # Duplicate (user, item, timestamp) rows: the first one (in reading order) is kept.
    _, user_code = np.unique(user_id, return_inverse=True)
    _, item_code = np.unique(item_id, return_inverse=True)
    order = np.lexsort((np.arange(len(user_id)), timestamp, item_code, user_code))
    same = ((user_code[order][1:] == user_code[order][:-1]) &
            (item_code[order][1:] == item_code[order][:-1]) &
            (timestamp[order][1:] == timestamp[order][:-1]))
    keep = np.ones(len(user_id), bool)
    keep[order[1:][same]] = False
    duplicates = int(np.sum(~keep))
    if duplicates:
      logging.warning("%s: dropped %d duplicate (user, item, timestamp) interaction row(s), "
                      "keeping the first of each.", self.directory, duplicates)
    seconds = {}
    if all_seconds:
      seconds = {name: out.get(name, np.float32) for name in ("watch_seconds", "runtime_seconds")}
    # Rows in (timestamp, user, item) order, as the other data sets' loaders give them.
    rows = np.flatnonzero(keep)
    rows = rows[np.lexsort((item_code[rows], user_code[rows], timestamp[rows]))]
    interactions = schema.Interactions(
        user_id=user_id[rows], item_id=item_id[rows], timestamp=timestamp[rows],
        engagement=engagement[rows], **{name: values[rows] for name, values in seconds.items()})
    item_ids, first = np.unique(interactions.item_id, return_index=True)
    runtime = (interactions.runtime_seconds[first] if interactions.runtime_seconds is not None
               else None)
    items, items_without, files = self.catalog(item_ids, runtime)
    self._skipped.update(files)
    users, users_without, files = self.user_table(np.unique(interactions.user_id))
    self._skipped.update(files)
    skipped = self._skipped_counts()
    for table in self._skipped.values():
      if table.skipped:
        logging.warning("Skipped %d bad row(s) of %s, e.g. %s", table.skipped, table.path,
                        " | ".join(table.examples))
    log = schema.WatchLog(
        name=NAME, interactions=interactions, items=items, users=users,
        abandonment_threshold=DEFAULT_ABANDONMENT_THRESHOLD,
        metadata={"data_dir": os.path.abspath(self.directory),
                  "columns": dict(self.format.columns),
                  "source_files": source_files or self.source_files(),
                  "skipped_rows": skipped, "duplicate_rows": duplicates,
                  "capped_completions": capped, "items_without_metadata": items_without,
                  "users_without_features": users_without})
    log.validate()
    return log

  def _skipped_counts(self) -> Dict[str, int]:
    return {name: table.skipped for name, table in self._skipped.items()}

  def catalog(self, item_ids: np.ndarray, runtime_seconds: Optional[np.ndarray] = None
              ) -> Tuple[schema.ItemCatalog, int, Dict[str, table_file.TableFile]]:
    """The catalogue of `item_ids`, from the items file where there is one.

    Args:
      item_ids: [i] str, the log's distinct items, sorted.
      runtime_seconds: [i] their runtime from the log (the first interaction's), used where
        the items file gives none; None: 0 (unknown) there.

    Returns:
      (the catalogue, the number of items the items file does not list, the items files read:
      path relative to the folder -> `TableFile`, for their bad-row counts).

    Raises:
      schema.DataError: a bad row of the items file (unless bad rows are skipped).
    """
    runtime = (np.zeros(len(item_ids), np.float32) if runtime_seconds is None
               else np.array(runtime_seconds, np.float32))
    columns = {"title": np.full(len(item_ids), "", dtype=object),
               "genres": np.full(len(item_ids), "", dtype=object),
               "year": np.zeros(len(item_ids), np.int64), "runtime_seconds": runtime}
    features = {name: np.full(len(item_ids), "", dtype=object)
                for name in self.format.item_features}
    without, files = 0, {}
    if self.items:
      table, files = self.read_table("items")
      found, rows = _align(table["item_id"], item_ids)
      for name in ("title", "genres", "year"):
        if name in table:
          columns[name][found] = table[name][rows]
      if "runtime_seconds" in table:
        known = table["runtime_seconds"][rows] > 0
        columns["runtime_seconds"][np.flatnonzero(found)[known]] = (
            table["runtime_seconds"][rows][known])
      for name in self.format.item_features:
        features[name][found] = table[f"feature:{name}"][rows]
      without = int(np.sum(~found))
      if without:
        logging.warning("%d item(s) of the log are not in the items file (e.g. %r); they have "
                        "no title, genres or year.", without, str(item_ids[~found][0]))
    catalog = schema.ItemCatalog(item_id=item_ids, title=columns["title"].astype(str),
                                 genres=columns["genres"].astype(str), year=columns["year"],
                                 runtime_seconds=columns["runtime_seconds"],
                                 features={n: v.astype(str) for n, v in features.items()})
    return catalog, without, files

  def user_table(self, user_ids: np.ndarray
                 ) -> Tuple[Optional[schema.UserTable], int, Dict[str, table_file.TableFile]]:
    """The features of `user_ids` ([u] str, sorted) from the users file (None without one).

    Returns:
      (the table, the number of users the users file does not list, the users files read:
      path relative to the folder -> `TableFile`).

    Raises:
      schema.DataError: a bad row of the users file (unless bad rows are skipped).
    """
    if not self.users:
      return None, 0, {}
    table, files = self.read_table("users")
    found, rows = _align(table["user_id"], user_ids)
    features = {}
    for name in self.format.user_features:
      values = np.full(len(user_ids), "", dtype=object)
      values[found] = table[f"feature:{name}"][rows]
      features[name] = values.astype(str)
    without = int(np.sum(~found))
    if without:
      logging.warning("%d user(s) of the log are not in the users file (e.g. %r); their "
                      "features are unknown.", without, str(user_ids[~found][0]))
    return schema.UserTable(user_id=user_ids, features=features), without, files
