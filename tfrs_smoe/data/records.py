"""The TFDS record layout shared by the data set builders, and its conversion to a `WatchLog`.

Every builder writes one record per interaction, with item (and user) metadata denormalised into
the record, as the official TFDS `movielens/*-ratings` configs do:

  user_id, item_id            tf.string
  timestamp                   tf.int64
  engagement                  tf.float32 in [0, 1]
  item_title, item_genres     tf.string (genres joined by "|")
  item_year                   tf.int32 (0 unknown)
  item_runtime_seconds        tf.float32 (0 unknown)
  optional interaction fields watch_seconds, runtime_seconds, rating (tf.float32)
  optional user fields        user_<name> (tf.string or tf.int32), e.g. user_gender, user_age

The catalogue is the set of items that occur in the log.
"""

import os
from typing import Dict, Mapping, Optional

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from tfrs_smoe.data import schema

_ITEM_FIELDS = ("item_title", "item_genres", "item_year", "item_runtime_seconds")
_OPTIONAL_INTERACTION_FIELDS = ("watch_seconds", "runtime_seconds", "rating")


def interaction_features(
    optional_fields: tuple = (),
    user_fields: Optional[Mapping[str, tf.dtypes.DType]] = None) -> tfds.features.FeaturesDict:
  """The TFDS features of one interaction record.

  Args:
    optional_fields: names among "watch_seconds", "runtime_seconds", "rating".
    user_fields: user feature name (without the "user_" prefix) -> tf.string or tf.int32.
  """
  unknown = set(optional_fields) - set(_OPTIONAL_INTERACTION_FIELDS)
  if unknown:
    raise ValueError(f"Unknown optional fields {sorted(unknown)}; choose from "
                     f"{_OPTIONAL_INTERACTION_FIELDS}.")
  features = {
      "user_id": tf.string,
      "item_id": tf.string,
      "timestamp": tf.int64,
      "engagement": tf.float32,
      "item_title": tf.string,
      "item_genres": tf.string,
      "item_year": tf.int32,
      "item_runtime_seconds": tf.float32,
  }
  features.update({name: tf.float32 for name in optional_fields})
  features.update({f"user_{name}": dtype for name, dtype in (user_fields or {}).items()})
  return tfds.features.FeaturesDict(features)


def read_columns(builder: tfds.core.DatasetBuilder, split: str = "train",
                 batch_size: int = 65536) -> Dict[str, np.ndarray]:
  """Reads a prepared split into numpy columns (bytes decoded to str, int32 fields as int32).

  The split's TFRecord files are parsed in batches with `tf.io.parse_example`, which is an order
  of magnitude faster than decoding record by record through `builder.as_dataset`.
  """
  features = builder.info.features
  spec = features.tf_example_spec
  files = [os.path.join(builder.data_dir, name) for name in builder.info.splits[split].filenames]
  dataset = tf.data.TFRecordDataset(files).batch(batch_size).map(
      lambda serialized: tf.io.parse_example(serialized, spec))
  parts: Dict[str, list] = {name: [] for name in spec}
  for batch in dataset.as_numpy_iterator():
    for name, values in batch.items():
      parts[name].append(values)
  columns = {}
  for name, chunks in parts.items():
    values = np.concatenate(chunks) if chunks else np.zeros([0], spec[name].dtype.as_numpy_dtype)
    if values.dtype.kind in ("S", "O"):
      values = np.char.decode(values.astype(bytes), "utf-8")
    else:
      # TF Example stores every integer as int64; restore the declared dtype.
      values = values.astype(features[name].np_dtype)
    columns[name] = values
  return columns


def watch_log_from_columns(name: str, columns: Mapping[str, np.ndarray],
                           abandonment_threshold: float) -> schema.WatchLog:
  """Builds and validates a WatchLog from record columns (see the module docstring)."""
  if not columns or len(columns["user_id"]) == 0:
    raise schema.DataError(f"{name}: the data set has no interactions.")
  # Rows sorted by (timestamp, user, item) so that loading is deterministic whatever order the
  # TFDS shards come back in.
  order = np.lexsort((columns["item_id"], columns["user_id"], columns["timestamp"]))
  interactions = schema.Interactions(
      user_id=columns["user_id"][order],
      item_id=columns["item_id"][order],
      timestamp=columns["timestamp"][order],
      engagement=columns["engagement"][order],
      **{field: columns[field][order] for field in _OPTIONAL_INTERACTION_FIELDS
         if field in columns})
  item_ids, first = np.unique(columns["item_id"], return_index=True)
  items = schema.ItemCatalog(
      item_id=item_ids,
      title=columns["item_title"][first],
      genres=columns["item_genres"][first],
      year=columns["item_year"][first],
      runtime_seconds=columns["item_runtime_seconds"][first])
  user_feature_names = [n for n in columns if n.startswith("user_") and n != "user_id"]
  users = None
  if user_feature_names:
    user_ids, first_row = np.unique(columns["user_id"], return_index=True)
    users = schema.UserTable(
        user_id=user_ids,
        features={n[len("user_"):]: columns[n][first_row] for n in user_feature_names})
  log = schema.WatchLog(name=name, interactions=interactions, items=items, users=users,
                        abandonment_threshold=abandonment_threshold)
  log.validate()
  return log
