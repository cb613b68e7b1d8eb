"""Negatives drawn from the whole catalogue for a sampled softmax, and their probability Q."""

from typing import Optional, Tuple

import numpy as np
import tensorflow as tf

from tfrs_smoe.evaluation import metrics as metrics_lib
from tfrs_smoe.layers import frequency_estimator

DISTRIBUTIONS = ("uniform", "popularity")
CORRECTIONS = ("none", "counts", "streaming")


@tf.keras.utils.register_keras_serializable(package="tfrs_smoe")
class CatalogueSampler(tf.keras.layers.Layer):
  """Draws `num_sampled` item indices per batch, shared by every row, and their probability Q.

  Sampling is with replacement, from the items at or above `NUM_RESERVED_ITEMS` (0 = padding
  and 1 = out-of-vocabulary are never drawn):
  - "uniform": every item equally likely.
  - "popularity": item i with probability proportional to counts[i] ** exponent (counts: the
    training positives' counts, a non-trainable weight saved with checkpoints; items with a
    zero count are never drawn). exponent 0.75 is word2vec's flattened unigram distribution.

  Q, the probability the logQ correction `s - log Q` divides by, comes from `correction`:
  - "none": 1 for every id (no correction).
  - "counts": the popularity distribution itself, counts[i] ** exponent / sum (exact).
  - "streaming": the `StreamingFrequencyEstimator` of the batch's positives (Yi et al. 2019),
    raised to `exponent`: the estimate of how often each id occurs per step, which is
    proportional to the popularity distribution that the counts would give, without the
    counts. The estimator is updated with the batch's positives (ids at or above
    `NUM_RESERVED_ITEMS`) before Q is read, at a step counter of its own (a non-trainable
    weight incremented by every training call).
  Q is returned up to a factor shared by all ids of a call (the streaming estimate counts
  occurrences per step, not per draw): a softmax does not change when every logit of a row
  moves by the same constant.

  Under a tf.distribute strategy every replica draws its own negatives; the streaming
  estimator is updated with each replica's positives (exact on one replica only).

  Args:
    num_items: catalogue size, reserved indices included; required with "popularity" (the
      counts' length), otherwise given to `call`.
    num_sampled: S, negatives drawn per call.
    distribution: "uniform" or "popularity".
    correction: "none", "counts" or "streaming" (the last two with "popularity" only: under
      uniform sampling Q is one constant, which a softmax ignores).
    exponent: popularity is counts ** exponent (> 0); also applied to the streaming estimate.
    estimator_buckets, estimator_hashes, estimator_learning_rate: H, m and alpha of the
      streaming estimator; estimator_buckets 0 = 2 * num_items.
    seed: op seed of the draws (None = from the global seed).

  Call args:
    positives: [...] int item indices of the batch's positives (indices below
      `NUM_RESERVED_ITEMS` are ignored by the estimator).
    num_items: [] int catalogue size for "uniform" sampling when the layer was built without.
    training: True or None update the streaming estimator with `positives`; False does not.

  Returns:
    (sampled [num_sampled] int32 item indices, q_positives [...] float32 Q of `positives`,
     q_sampled [num_sampled] float32 Q of the sampled ids).

  Example:
    >>> counts = np.array([0, 0, 5, 3, 2], np.float32)  # Training positives per item index.
    >>> sampler = CatalogueSampler(num_items=len(counts), num_sampled=1024,
    ...                            distribution="popularity", correction="counts", seed=0)
    >>> sampler.set_counts(counts)
    >>> targets = tf.constant([[2, 4], [3, 0]])
    >>> sampled, q_positives, q_sampled = sampler(targets)
    >>> sampled.shape, q_positives.shape, q_sampled.shape
    (TensorShape([1024]), TensorShape([2, 2]), TensorShape([1024]))
    >>> q_positives.numpy()  # Q of each target: its share of the counts.
    array([[0.5, 0.2],
           [0.3, 0. ]], dtype=float32)
  """

  def __init__(self, num_items: Optional[int] = None, num_sampled: int = 1024,
               distribution: str = "uniform", correction: str = "none", exponent: float = 1.0,
               estimator_buckets: int = 0, estimator_hashes: int = 2,
               estimator_learning_rate: float = 0.01, seed: Optional[int] = None, **kwargs):
    super().__init__(**kwargs)
    if distribution not in DISTRIBUTIONS:
      raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got {distribution!r}.")
    if correction not in CORRECTIONS:
      raise ValueError(f"correction must be one of {CORRECTIONS}, got {correction!r}.")
    if correction != "none" and distribution != "popularity":
      raise ValueError(f"correction {correction!r} needs the popularity distribution: under "
                       "uniform sampling Q is one constant, which a softmax ignores.")
    if num_sampled < 1:
      raise ValueError(f"num_sampled must be >= 1, got {num_sampled}.")
    if exponent <= 0:
      raise ValueError(f"exponent must be > 0, got {exponent}.")
    if distribution == "popularity" and (num_items is None or
                                         num_items <= metrics_lib.NUM_RESERVED_ITEMS):
      raise ValueError("the popularity distribution needs num_items (the counts' length) "
                       f"above {metrics_lib.NUM_RESERVED_ITEMS}, got {num_items}.")
    if num_items is not None and num_items <= metrics_lib.NUM_RESERVED_ITEMS:
      raise ValueError(f"num_items must be above {metrics_lib.NUM_RESERVED_ITEMS}, got "
                       f"{num_items}.")
    if estimator_buckets < 0:
      raise ValueError(f"estimator_buckets must be >= 0, got {estimator_buckets}.")
    self.num_items = num_items
    self.num_sampled = num_sampled
    self.distribution = distribution
    self.correction = correction
    self.exponent = exponent
    self.estimator_buckets = estimator_buckets
    self.estimator_hashes = estimator_hashes
    self.estimator_learning_rate = estimator_learning_rate
    self.seed = seed
    self.estimator = None
    if correction == "streaming":
      self.estimator = frequency_estimator.StreamingFrequencyEstimator(
          num_buckets=estimator_buckets or 2 * num_items, num_hashes=estimator_hashes,
          learning_rate=estimator_learning_rate, name="frequency_estimator")
    self.counts = None
    self.step = None
    self._create_state()

  def _create_state(self) -> None:
    """Creates the counts, the step and the estimator's state at construction, so that a
    checkpoint restores them before the first call."""
    if self.distribution == "popularity":
      self.counts = self.add_weight(name="counts", shape=[self.num_items], dtype=tf.float32,
                                    initializer="zeros", trainable=False)
    if self.estimator is not None:
      # Like the estimator's state: every replica applies the same update.
      self.step = self.add_weight(name="step", shape=[], dtype=tf.int64, initializer="zeros",
                                  trainable=False,
                                  aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
      self.estimator.build(tf.TensorShape([None]))

  def set_counts(self, counts: np.ndarray) -> None:
    """Sets the popularity counts [num_items] (>= 0; at least one item at or above
    `NUM_RESERVED_ITEMS` with a count)."""
    if self.counts is None:
      raise ValueError("counts are for the popularity distribution only.")
    counts = np.asarray(counts, np.float64)
    if counts.shape != (self.num_items,):
      raise ValueError(f"candidate_counts must have shape [{self.num_items}], got "
                       f"{list(counts.shape)}.")
    if not np.all(np.isfinite(counts)) or counts.min() < 0:
      raise ValueError("candidate_counts must be finite and >= 0.")
    if counts[metrics_lib.NUM_RESERVED_ITEMS:].sum() <= 0:
      raise ValueError(f"candidate_counts are all 0 at indices >= "
                       f"{metrics_lib.NUM_RESERVED_ITEMS}: nothing to sample.")
    self.counts.assign(counts.astype(np.float32))

  def _popularity(self) -> tf.Tensor:
    """[num_items] float64 unnormalised popularity weights, 0 at the reserved indices."""
    weights = tf.cast(self.counts, tf.float64)
    if self.exponent != 1.0:
      weights = tf.pow(weights, self.exponent)
    reserved = tf.range(self.num_items) < metrics_lib.NUM_RESERVED_ITEMS
    return tf.where(reserved, tf.zeros_like(weights), weights)

  def sample(self, num_items: Optional[tf.Tensor] = None) -> tf.Tensor:
    """[num_sampled] int32 item indices drawn with replacement."""
    return self._sample(num_items, self._popularity() if self.counts is not None else None)

  def _sample(self, num_items, popularity) -> tf.Tensor:
    if self.distribution == "uniform":
      size = self.num_items if num_items is None else num_items
      if size is None:
        raise ValueError("uniform sampling needs num_items (constructor or call).")
      return tf.random.uniform([self.num_sampled], metrics_lib.NUM_RESERVED_ITEMS,
                               tf.cast(size, tf.int32), tf.int32, seed=self.seed)
    cdf = tf.cumsum(popularity)
    draws = tf.random.uniform([self.num_sampled], 0.0, 1.0, tf.float64, seed=self.seed)
    # The first index whose cumulative weight exceeds the draw: zero weights are never hit.
    return tf.cast(tf.searchsorted(cdf, draws * cdf[-1], side="right"), tf.int32)

  def probability(self, ids: tf.Tensor) -> tf.Tensor:
    """[...] Q of item indices `ids` [...] for the correction, up to a shared factor."""
    return self._probability(ids, self._popularity() if self.counts is not None else None)

  def _probability(self, ids, popularity) -> tf.Tensor:
    if self.correction == "none":
      return tf.ones(tf.shape(ids), tf.float32)
    if self.correction == "counts":
      return tf.cast(tf.gather(popularity, ids) / tf.reduce_sum(popularity), tf.float32)
    p = self.estimator.probability(ids)
    return p if self.exponent == 1.0 else tf.pow(p, self.exponent)

  def observe(self, positives: tf.Tensor) -> None:
    """Updates the streaming estimator with the batch's positives [...] (one step)."""
    if self.estimator is None:
      return
    ids = tf.reshape(positives, [-1])
    ids = tf.boolean_mask(ids, ids >= metrics_lib.NUM_RESERVED_ITEMS)
    self.step.assign_add(1)
    self.estimator.update(ids, self.step)

  def call(self, positives: tf.Tensor, num_items: Optional[tf.Tensor] = None,
           training: Optional[bool] = None) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    positives = tf.cast(positives, tf.int32)
    if training is not False:
      self.observe(positives)
    popularity = self._popularity() if self.counts is not None else None
    sampled = self._sample(num_items, popularity)
    return (sampled, self._probability(positives, popularity),
            self._probability(sampled, popularity))

  def get_config(self):
    config = super().get_config()
    config.update({
        "num_items": self.num_items, "num_sampled": self.num_sampled,
        "distribution": self.distribution, "correction": self.correction,
        "exponent": self.exponent, "estimator_buckets": self.estimator_buckets,
        "estimator_hashes": self.estimator_hashes,
        "estimator_learning_rate": self.estimator_learning_rate, "seed": self.seed,
    })
    return config
