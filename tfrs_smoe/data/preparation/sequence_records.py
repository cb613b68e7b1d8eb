"""The tf.train.Example layout of the prepared shards: one record per user per split.

Every record holds a user and a time-ordered run of its events:

  user_id            bytes [1]   the raw user id
  user_index         int64 [1]   its index in vocabularies/user_ids.txt (line n = index n + 2)
  item               int64 [n]   item indices (vocabularies/item_ids.txt), oldest first
  timestamp          int64 [n]   seconds
  engagement         float [n]   in [0, 1]
  positive           int64 [n]   1 for a positive (engagement above the abandonment threshold,
                                 or every event under the implicit protocol), else 0

In train-*.tfrecord the events are the user's training events. In validation-* and test-* they
are the example's context, every event of the user before the target, and the record adds

  target             int64 [1]   the held-out positive's item index
  target_engagement  float [1]
  target_timestamp   int64 [1]

so that history = item[positive == 1], abandoned = item[positive == 0], seen = item.
"""

from typing import Dict, Optional

import numpy as np
import tensorflow as tf

EVAL_FIELDS = ("target", "target_engagement", "target_timestamp")


def _int64(values) -> tf.train.Feature:
  return tf.train.Feature(int64_list=tf.train.Int64List(value=np.asarray(values).tolist()))


def _float(values) -> tf.train.Feature:
  return tf.train.Feature(float_list=tf.train.FloatList(value=np.asarray(values).tolist()))


def encode(user_id: str, user_index: int, events: Dict[str, np.ndarray],
           target: Optional[Dict[str, np.ndarray]] = None) -> bytes:
  """One serialized record.

  Args:
    user_id: the raw user id.
    user_index: its vocabulary index.
    events: "item", "timestamp", "engagement", "positive", each [n].
    target: for an evaluation record, the target event's "item", "timestamp", "engagement".

  Example:
    >>> record = encode("u7", 9, {"item": [4, 2], "timestamp": [10, 20],
    ...                           "engagement": [0.5, 0.01], "positive": [True, False]},
    ...                 {"item": 3, "timestamp": 30, "engagement": 1.0})
    >>> parsed = tf.io.parse_example([record], feature_spec(evaluation=True))
    >>> parsed["item"].to_list(), int(parsed["target"][0]), parsed["user_id"].numpy()
    ([[4, 2]], 3, array([b'u7'], dtype=object))
  """
  feature = {
      "user_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[user_id.encode()])),
      "user_index": _int64([user_index]),
      "item": _int64(events["item"]),
      "timestamp": _int64(events["timestamp"]),
      "engagement": _float(events["engagement"]),
      "positive": _int64(np.asarray(events["positive"], np.int64)),
  }
  if target is not None:
    feature["target"] = _int64([target["item"]])
    feature["target_engagement"] = _float([target["engagement"]])
    feature["target_timestamp"] = _int64([target["timestamp"]])
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def feature_spec(evaluation: bool) -> Dict[str, object]:
  """The `tf.io.parse_example` spec of a train (False) or evaluation (True) record.

  Scalars parse to [batch] tensors, the event fields to [batch, (n)] ragged tensors.
  """
  spec = {
      "user_id": tf.io.FixedLenFeature([], tf.string),
      "user_index": tf.io.FixedLenFeature([], tf.int64),
      "item": tf.io.RaggedFeature(tf.int64),
      "timestamp": tf.io.RaggedFeature(tf.int64),
      "engagement": tf.io.RaggedFeature(tf.float32),
      "positive": tf.io.RaggedFeature(tf.int64),
  }
  if evaluation:
    spec["target"] = tf.io.FixedLenFeature([], tf.int64)
    spec["target_engagement"] = tf.io.FixedLenFeature([], tf.float32)
    spec["target_timestamp"] = tf.io.FixedLenFeature([], tf.int64)
  return spec
