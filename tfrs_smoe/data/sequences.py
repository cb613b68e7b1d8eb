"""tf.data pipelines from a training log to sequential training examples.

Each user's positives, in time order, form a sequence. Two example shapes:

- windows: one example per (history window, next-K targets). For every position t >= 1 of a
  user's sequence, `history` holds the `max_len` positives before t (left-padded with 0, most
  recent last) and `targets` the K positives from t on.
- sequences: one example per user with next-K targets at every position, so a model with causal
  attention masks trains all positions in one pass. The last `max_len + 1` positives of a user
  are used (as SASRec does): position i of `history` predicts the K items after it. With
  `all_chunks=True` the whole sequence is used: it is cut, from the end, into chunks of
  `max_len + 1` positives that overlap by one (each chunk's first item is the previous chunk's
  last target), one example per chunk, so every positive after the first is a target once.

Soft labels weigh the k-th next target (1.0, 0.6, 0.3 for K = 3 by default); missing targets
(past the end of the sequence) have index 0 and weight 0. Item feature tables (indexed by item
index) are gathered for history and targets in the pipeline, so models receive them as inputs.

Example:
  >>> from tfrs_smoe.data import synthetic
  >>> split = splits.leave_one_out(synthetic.generate_watch_log(
  ...     synthetic.SyntheticConfig(num_users=20, num_titles=30))[0])
  >>> pipeline = SequencePipeline(max_len=50, next_k=3)
  >>> dataset = pipeline.windows(split.train).shuffle(10_000, seed=0).batch(256)
  >>> next(iter(dataset))["targets"].shape  # [batch, K]
  TensorShape([256, 3])
"""

from typing import Dict, Optional, Sequence

import numpy as np
import tensorflow as tf

from tfrs_smoe.data import splits

# The features of a user element (`user_sequences`); others are carried into its examples.
_USER_FIELDS = ("user_index", "items", "timestamps", "engagement")


class SequencePipeline:
  """Turns the positives of an `IndexedLog` into window or whole-sequence examples.

  Args:
    max_len: int. History length L.
    next_k: int. Number of next targets K.
    soft_labels: K floats, the label weight of the k-th next target.
    item_features: optional name -> [num_items, ...] table indexed by item index; each table is
      gathered into `history_<name>` and `target_<name>`.

  Output features of `windows` (shapes per example):
    user_index [], history [L] int32, history_timestamps [L] int64, history_engagement [L]
    float32, timestamp [] int64 (time of the first target), targets [K] int32, target_weights
    [K] float32, target_engagement [K] float32, plus item features.
  Output features of `sequences`: the same names with one more leading dimension L on the
    per-target features: targets [L, K], target_weights [L, K], target_engagement [L, K],
    timestamp [L] (time of the item each position predicts first).

  Example:
    >>> log = splits.IndexedLog(  # One user, positives 2, 4, 5 (3 is an abandonment).
    ...     user=np.zeros(4, np.int32), item=np.array([2, 3, 4, 5], np.int32),
    ...     timestamp=np.arange(4), engagement=np.array([.9, .01, .8, .7], np.float32),
    ...     positive=np.array([True, False, True, True]))
    >>> pipeline = SequencePipeline(max_len=3, next_k=1, soft_labels=(1.0,))
    >>> example = next(iter(pipeline.sequences(log)))
    >>> example["history"].numpy(), example["targets"].numpy()[:, 0]
    (array([0, 2, 4], dtype=int32), array([0, 4, 5], dtype=int32))
  """

  def __init__(self, max_len: int = 50, next_k: int = 3,
               soft_labels: Sequence[float] = (1.0, 0.6, 0.3),
               item_features: Optional[Dict[str, np.ndarray]] = None):
    if max_len < 1 or next_k < 1:
      raise ValueError(f"max_len and next_k must be >= 1, got {max_len} and {next_k}.")
    if len(soft_labels) != next_k:
      raise ValueError(f"soft_labels needs next_k={next_k} values, got {list(soft_labels)}.")
    self.max_len = max_len
    self.next_k = next_k
    self.soft_labels = tf.constant(soft_labels, tf.float32)
    self.item_features = {name: tf.constant(table) for name, table in
                          (item_features or {}).items()}

  def user_sequences(self, log: splits.IndexedLog) -> tf.data.Dataset:
    """One element per user with >= 2 positives: user_index, items, timestamps, engagement."""
    positives = log.take(np.flatnonzero(log.positive))
    users, counts = np.unique(positives.user, return_counts=True)
    keep = counts >= 2
    # Positives are sorted by user, so each user's rows are one contiguous block.
    rows = np.repeat(keep, counts)
    row_splits = np.concatenate([[0], np.cumsum(counts[keep])])

    def ragged(column):
      return tf.RaggedTensor.from_row_splits(column[rows], row_splits)

    return tf.data.Dataset.from_tensor_slices({
        "user_index": users[keep].astype(np.int32),
        "items": ragged(positives.item.astype(np.int32)),
        "timestamps": ragged(positives.timestamp.astype(np.int64)),
        "engagement": ragged(positives.engagement.astype(np.float32)),
    })

  def _gather_padded(self, values: tf.Tensor, indices: tf.Tensor, left: int) -> tf.Tensor:
    """values padded with `left` zeros before and K zeros after, gathered at `indices`."""
    padded = tf.concat([tf.zeros([left], values.dtype), values,
                        tf.zeros([self.next_k], values.dtype)], axis=0)
    return tf.gather(padded, indices)

  def _add_item_features(self, example: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    for name, table in self.item_features.items():
      example[f"history_{name}"] = tf.gather(table, example["history"])
      example[f"target_{name}"] = tf.gather(table, example["targets"])
    return example

  def _windows_of_user(self, user: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    length = tf.shape(user["items"], out_type=tf.int64)[0]
    positions = tf.range(1, length)  # [W]: the first target of each window.
    # In the padded sequence (max_len zeros in front), history of position t spans t..t+L-1 and
    # its targets span L+t..L+t+K-1.
    history_index = positions[:, None] + tf.range(self.max_len, dtype=tf.int64)[None, :]
    target_offset = tf.range(self.next_k, dtype=tf.int64)[None, :]
    target_index = self.max_len + positions[:, None] + target_offset
    target_valid = positions[:, None] + target_offset < length
    gather = lambda column, index: self._gather_padded(user[column], index, self.max_len)
    example = {
        "user_index": tf.fill(tf.shape(positions), user["user_index"]),
        "history": gather("items", history_index),
        "history_timestamps": gather("timestamps", history_index),
        "history_engagement": gather("engagement", history_index),
        "timestamp": tf.gather(user["timestamps"], positions),
        "targets": gather("items", target_index),
        "target_weights": tf.cast(target_valid, tf.float32) * self.soft_labels[None, :],
        "target_engagement": gather("engagement", target_index),
    }
    return self._add_item_features(example)

  @staticmethod
  def _carried(user: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """The features of a user element beyond its sequence, copied into each of its examples."""
    return {name: value for name, value in user.items() if name not in _USER_FIELDS}

  def _sequence_of_user(self, user: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    items = user["items"][-(self.max_len + 1):]
    chunk_length = tf.shape(items, out_type=tf.int64)[0]
    padding = self.max_len + 1 - chunk_length  # Zeros in front of the chunk.
    input_index = tf.range(self.max_len, dtype=tf.int64)  # [L]
    target_index = input_index[:, None] + 1 + tf.range(self.next_k, dtype=tf.int64)[None, :]
    target_valid = (input_index[:, None] >= padding) & (target_index < self.max_len + 1)

    def gather(column, index):
      return self._gather_padded(user[column][-(self.max_len + 1):], index, padding)

    example = {
        "user_index": user["user_index"],
        "history": gather("items", input_index),
        "history_timestamps": gather("timestamps", input_index),
        "history_engagement": gather("engagement", input_index),
        "timestamp": gather("timestamps", input_index + 1),
        "targets": gather("items", target_index) * tf.cast(target_valid, tf.int32),
        "target_weights": tf.cast(target_valid, tf.float32) * self.soft_labels[None, :],
        "target_engagement": gather("engagement", target_index) * tf.cast(target_valid,
                                                                          tf.float32),
        **self._carried(user),
    }
    return self._add_item_features(example)

  def windows(self, log: splits.IndexedLog) -> tf.data.Dataset:
    """One example per (history window, next-K targets); unbatched, in user order."""
    return self.windows_of_users(self.user_sequences(log))

  def windows_of_users(self, users: tf.data.Dataset) -> tf.data.Dataset:
    """`windows` of user elements as `user_sequences` gives them (or `ShardStream.users`)."""
    return users.map(self._windows_of_user, num_parallel_calls=tf.data.AUTOTUNE,
                     deterministic=True).unbatch()

  def sequences(self, log: splits.IndexedLog, all_chunks: bool = False) -> tf.data.Dataset:
    """Next-K targets at every position; one example per user (its last max_len + 1
    positives), or per chunk of max_len + 1 positives with `all_chunks`. Unbatched."""
    return self.sequences_of_users(self.user_sequences(log), all_chunks)

  def sequences_of_users(self, users: tf.data.Dataset, all_chunks: bool = False
                         ) -> tf.data.Dataset:
    """`sequences` of user elements as `user_sequences` gives them (or `ShardStream.users`).

    A user element's other features (e.g. a user's PHNS pools) are copied into each of its
    examples unchanged.
    """
    if all_chunks:
      users = users.flat_map(self._chunks_of_user)
    return users.map(self._sequence_of_user, num_parallel_calls=tf.data.AUTOTUNE,
                     deterministic=True)

  def _chunks_of_user(self, user: Dict[str, tf.Tensor]) -> tf.data.Dataset:
    """The user's sequence as chunks of <= max_len + 1 positives, most recent chunk first."""
    length = tf.shape(user["items"], out_type=tf.int64)[0]
    ends = tf.range(length, 1, -self.max_len)  # Each chunk ends there (exclusive).
    starts = tf.maximum(ends - self.max_len - 1, 0)

    def chunk(start, end):
      return {**self._carried(user), "user_index": user["user_index"],
              **{name: user[name][start:end] for name in ("items", "timestamps", "engagement")}}

    return tf.data.Dataset.from_tensor_slices((starts, ends)).map(chunk)

  @staticmethod
  def without_leading_padding(batch: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """A batch of sequences cut to its longest sequence: [batch, time, ...] -> [batch, t, ...].

    Sequences are left-padded and the encoders count positions from the most recent item, so
    the time steps that are padding in every sequence of a batch change no output at a real
    position; dropping them saves their attention, feed-forward and loss work (on the
    synthetic log at max_len 200, most of every sequence is padding). Tensors of rank 1
    (`user_index`) are kept whole; a batch with no real item is kept whole.
    """
    real = tf.reduce_any(batch["history"] > 0, axis=0)  # [time]
    first = tf.argmax(tf.cast(real, tf.int32), output_type=tf.int32)
    return {name: value[:, first:] if value.shape.rank >= 2 else value
            for name, value in batch.items()}

  @staticmethod
  def batched(dataset: tf.data.Dataset, batch_size: int, shuffle_seed: Optional[int] = None,
              shuffle_buffer: int = 100_000, drop_remainder: bool = False) -> tf.data.Dataset:
    """Shuffles (when a seed is given), batches and prefetches a training dataset."""
    if shuffle_seed is not None:
      dataset = dataset.shuffle(shuffle_buffer, seed=shuffle_seed,
                                reshuffle_each_iteration=True)
    return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
