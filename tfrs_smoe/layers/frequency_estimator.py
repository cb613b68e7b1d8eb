"""Streaming frequency estimation of Yi et al. 2019 (RecSys, "Sampling-bias-corrected neural
modeling for large corpus item recommendations"), algorithm 2 and its multi-hash variant."""

from typing import Optional

import numpy as np
import tensorflow as tf

_PRIME = 2_147_483_647  # 2^31 - 1: a * id + b stays inside int64 for ids below 2^31.


@tf.keras.utils.register_keras_serializable(package="tfrs_smoe")
class StreamingFrequencyEstimator(tf.keras.layers.Layer):
  """Estimates each candidate's sampling probability p from the gaps between its appearances.

  State per hash function h: arrays A (the last step a bucket was seen) and B (the estimated
  number of steps between two appearances), both over `num_buckets` buckets. For every
  occurrence of an id y at step t (in order):

      B[h(y)] <- (1 - alpha) * B[h(y)] + alpha * (t - A[h(y)]);   A[h(y)] <- t

  and p(y) = 1 / max_h B_h[h(y)]: collisions shorten a bucket's gap, so the hash with the
  longest gap is the least collided one (the paper's multi-hash variant). p is the expected
  number of occurrences of y per step, the batch-level sampling probability that the logQ
  correction `s - log p` needs (constant factors do not change a softmax).

  Choices the paper leaves open, settings or documented here:
  - Occurrences of one bucket within one batch are applied as sequential updates: the first
    sees the gap t - A, the other k - 1 a gap of 0, which in closed form is
    B <- (1 - alpha)^(k-1) * ((1 - alpha) B + alpha (t - A)). An item seen k times per step
    converges to B = 1/k, so p counts occurrences rather than saturating at 1.
  - `call` updates with the batch first and then reads, so a batch's own candidates count.
  - The step comes from the caller (the optimizer's global step), so replicas and restarts agree
    on it; A and B are non-trainable variables saved with every checkpoint. Under a
    tf.distribute strategy the caller passes the ids of the whole global batch, so every
    replica applies the same update.
  - Integer ids hash as ((a * id + b) mod (2^31 - 1)) mod num_buckets with (a, b) drawn from
    `seed` per hash function; string ids use `tf.strings.to_hash_bucket_strong` with a key per
    hash function.

  Args:
    num_buckets: H, buckets per hash function.
    num_hashes: m, hash functions (arrays A and B each).
    learning_rate: alpha in (0, 1].
    initial_gap: B at the start (the paper's simulation: 100); A starts at 0.
    seed: draws the hash functions.
    string_ids: ids are strings (raw ids) instead of integers.

  Call args:
    ids: [batch] (any shape) int or string candidate ids.
    step: [] int, the global training step (t).
    training: when True, the batch updates A and B before p is read.

  Returns:
    [batch] (the shape of ids) float32 estimated sampling probabilities p = 1 / B.

  Example:
    >>> estimator = StreamingFrequencyEstimator(num_buckets=5000, num_hashes=2,
    ...                                         learning_rate=0.5)
    >>> step = tf.Variable(0, dtype=tf.int64)
    >>> for _ in range(40):  # Item 7 is in every batch, items 3 and 9 in every other one.
    ...   _ = step.assign_add(1)
    ...   p = estimator(tf.constant([7, 3] if step % 2 else [7, 9]), step, training=True)
    >>> p.numpy().round(2)  # p(7): once a batch; p(9): once every 2 batches.
    array([1. , 0.5], dtype=float32)
  """

  def __init__(self, num_buckets: int = 5000, num_hashes: int = 1, learning_rate: float = 0.01,
               initial_gap: float = 100.0, seed: int = 0, string_ids: bool = False, **kwargs):
    super().__init__(**kwargs)
    if num_buckets < 1 or num_hashes < 1:
      raise ValueError(f"num_buckets and num_hashes must be >= 1, got {num_buckets} and "
                       f"{num_hashes}.")
    if not 0.0 < learning_rate <= 1.0:
      raise ValueError(f"learning_rate must be in (0, 1], got {learning_rate}.")
    if initial_gap <= 0.0:
      raise ValueError(f"initial_gap must be > 0, got {initial_gap}.")
    self.num_buckets = num_buckets
    self.num_hashes = num_hashes
    self.learning_rate = learning_rate
    self.initial_gap = initial_gap
    self.seed = seed
    self.string_ids = string_ids
    rng = np.random.RandomState(seed)
    self._multipliers = rng.randint(1, _PRIME, size=num_hashes).astype(np.int64)
    self._offsets = rng.randint(0, _PRIME, size=num_hashes).astype(np.int64)
    self._string_keys = rng.randint(0, 2**62, size=[num_hashes, 2]).astype(np.int64)

  def build(self, input_shape):
    # Flat [num_hashes * num_buckets] arrays: every hash function updates in one scatter.
    # Every replica applies the same update (the ids of the global batch), so the first
    # replica's write stands for all of them.
    self.last_step = self.add_weight(
        name="last_step", shape=[self.num_hashes * self.num_buckets], dtype=tf.float32,
        initializer="zeros", trainable=False,
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    self.gap = self.add_weight(
        name="gap", shape=[self.num_hashes * self.num_buckets], dtype=tf.float32,
        initializer=tf.keras.initializers.Constant(self.initial_gap), trainable=False,
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    super().build(input_shape)

  def slots(self, ids: tf.Tensor) -> tf.Tensor:
    """[num_hashes, n] int64 index into A and B of every id of `ids` (any shape, n ids)."""
    ids = tf.reshape(ids, [-1])
    if self.string_ids:
      buckets = tf.stack([tf.strings.to_hash_bucket_strong(ids, self.num_buckets, list(key))
                          for key in self._string_keys])
    else:
      ids = tf.cast(ids, tf.int64)
      tf.debugging.assert_non_negative(ids, message="integer ids must be >= 0")
      hashed = (self._multipliers[:, np.newaxis] * (ids % _PRIME)[tf.newaxis]
                + self._offsets[:, np.newaxis]) % _PRIME
      buckets = hashed % self.num_buckets
    return buckets + np.arange(self.num_hashes, dtype=np.int64)[:, np.newaxis] * self.num_buckets

  def update(self, ids: tf.Tensor, step: tf.Tensor) -> None:
    """Applies the occurrences of `ids` [...] at global step `step` to A and B."""
    step = tf.cast(step, tf.float32)
    slots, _, counts = tf.unique_with_counts(tf.reshape(self.slots(ids), [-1]))
    decay = 1.0 - self.learning_rate
    gap = (decay * tf.gather(self.gap, slots)
           + self.learning_rate * (step - tf.gather(self.last_step, slots)))
    gap *= tf.pow(decay, tf.cast(counts - 1, tf.float32))
    # scatter_update (not scatter_nd_update) also works on mirrored variables.
    self.gap.scatter_update(tf.IndexedSlices(gap, slots))
    self.last_step.scatter_update(tf.IndexedSlices(tf.fill(tf.shape(slots), step), slots))

  def probability(self, ids: tf.Tensor) -> tf.Tensor:
    """[...] p = 1 / (max over hash functions of B at the buckets of `ids` [...])."""
    # embedding_lookup (not gather) also reads variables sharded by a parameter-server strategy.
    gaps = tf.nn.embedding_lookup(self.gap, self.slots(ids))  # [num_hashes, n]
    return tf.reshape(1.0 / tf.reduce_max(gaps, axis=0), tf.shape(ids))

  def call(self, ids: tf.Tensor, step: tf.Tensor, training: Optional[bool] = None
           ) -> tf.Tensor:
    if training:
      self.update(ids, step)
    return self.probability(ids)

  def get_config(self):
    config = super().get_config()
    config.update({
        "num_buckets": self.num_buckets, "num_hashes": self.num_hashes,
        "learning_rate": self.learning_rate, "initial_gap": self.initial_gap,
        "seed": self.seed, "string_ids": self.string_ids,
    })
    return config
