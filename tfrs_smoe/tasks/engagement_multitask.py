"""Engagement-aware multitask loss of S-MoE-BST: CTR, ranking, softmax and completion."""

import dataclasses
from typing import Optional

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfrs_smoe import distribute
from tfrs_smoe.evaluation import metrics as metrics_lib
from tfrs_smoe.layers import candidate_scorer
from tfrs_smoe.layers import catalogue_sampler

SOFTMAX_MODES = ("full", "in_batch", "sampled", "none")
NEGATIVE_SAMPLERS = ("rows",) + catalogue_sampler.DISTRIBUTIONS
SAMPLING_CORRECTIONS = catalogue_sampler.CORRECTIONS
NEXT_K_MODES = ("joint", "auxiliary")
# The logit of a masked candidate (an accidental hit): far below any score, still finite.
_MASKED_LOGIT = -1e9


# The paper's multitask loss (`model.task` overrides): softmax, CTR, hinge and completion terms,
# positives weighted by W = 1 + a (c - c_thr).
PAPER_MULTITASK = {"ctr_weight": 0.1, "hinge_weight": 0.1, "completion_weight": 0.1,
                   "engagement_slope": 1.0}


@dataclasses.dataclass
class MultitaskConfig:
  """Weights and switches of the multitask loss.

  The defaults train the full softmax alone, the setting that scored best on validation in
  issue 22's probes (docs/results.md): with the default encoder on the embedded default, the
  paper's CTR, hinge and completion terms with engagement weights (`PAPER_MULTITASK`) lowered
  validation NDCG@10 from 0.2512 to 0.2460 (paired interval of the difference
  [-0.0097, -0.0007], one seed), and on both data sets the quality report measured no gain from
  them. `PAPER_MULTITASK` is the paper's loss; PHNS training negatives reach the model only
  through the terms that read the rows' negatives (`uses_row_negatives`).

  Attributes:
    softmax: "full" (cross-entropy over the whole catalogue, dot scorer only), "in_batch" (the
      batch's positives through `tfrs.tasks.Retrieval`, dot scorer only), "sampled" (the
      positive against the negatives of `negative_sampler`) or "none".
    softmax_weight: weight of the softmax loss.
    ctr_weight: l1, weight of the binary cross-entropy of positives vs negatives.
    hinge_weight: l2, weight of the pairwise hinge max(0, margin - (s+ - s-)).
    hinge_margin: the hinge's margin.
    completion_weight: l3, weight of the completion-rate regression of the next item.
    engagement_slope: a in W = max(0, 1 + a * (c - c_thr)); 0 gives every positive weight 1.
    engagement_threshold: c_thr.
    num_negatives: in-batch negatives per position when the examples bring none.
    negative_sampler: negatives of the "sampled" softmax: "rows" (each row's own negatives,
      from the examples or in-batch: the CTR and hinge terms' negatives), or `num_sampled`
      items drawn from the catalogue per batch and shared by every row, "uniform" or by
      "popularity" (candidate counts ** sampling_exponent); see `CatalogueSampler`. The CTR
      and hinge terms keep the rows' negatives.
    num_sampled: catalogue negatives per batch (S).
    sampling_correction: logQ correction of the catalogue sampler's logits, s - log Q, for
      sampled negatives and positives alike (as `tfrs.tasks.Retrieval` does): "none", "counts"
      (Q of the popularity distribution, exact) or "streaming" (Q from a streaming frequency
      estimate of the batch's positives, Yi et al. 2019); the last two with "popularity" only.
    sampling_exponent: popularity sampling proportional to counts ** sampling_exponent (> 0;
      0.75 is word2vec's).
    estimator_buckets, estimator_hashes, estimator_learning_rate: H per hash function
      (0 = 2 x the catalogue), m and alpha of the "streaming" estimator.
    next_k_mode: how targets 2..K of a position (`data.next_k` > 1) train. "joint" (the
      paper's reading): every target, weighted by its soft label, in every loss term and
      scored by the same user vector as the next item. "auxiliary": the next item alone in
      the main terms; targets 2..K in one extra softmax term (`softmax`'s mode) scored by a
      separate linear head on the user vector (`future_head`, identity-initialised), so that
      the served user vector is trained on the next item only and the future items shape
      the shared encoder through the head. With next_k 1 both modes are the same loss.
    next_k_weight: weight of the "auxiliary" mode's future-target term (its soft labels
      weigh the targets within it).
  """

  softmax: str = "full"
  softmax_weight: float = 1.0
  ctr_weight: float = 0.0
  hinge_weight: float = 0.0
  hinge_margin: float = 1.0
  completion_weight: float = 0.0
  engagement_slope: float = 0.0
  engagement_threshold: float = 0.5
  num_negatives: int = 8
  negative_sampler: str = "rows"
  num_sampled: int = 1024
  sampling_correction: str = "none"
  sampling_exponent: float = 1.0
  estimator_buckets: int = 0
  estimator_hashes: int = 2
  estimator_learning_rate: float = 0.01
  next_k_mode: str = "joint"
  next_k_weight: float = 0.2

  def uses_row_negatives(self) -> bool:
    """Whether a loss term reads each row's negatives (the examples' PHNS negatives, or
    in-batch ones): the CTR or hinge term, or the sampled softmax over the rows' negatives."""
    return (self.ctr_weight > 0 or self.hinge_weight > 0
            or (self.softmax == "sampled" and self.negative_sampler == "rows"))

  def __post_init__(self):
    if self.next_k_mode not in NEXT_K_MODES:
      raise ValueError(f"task.next_k_mode must be one of {NEXT_K_MODES}, got "
                       f"{self.next_k_mode!r}.")
    if self.next_k_weight < 0:
      raise ValueError(f"task.next_k_weight must be >= 0, got {self.next_k_weight}.")
    if self.next_k_mode == "auxiliary" and self.softmax == "none":
      raise ValueError("task.next_k_mode 'auxiliary' trains the future targets with a softmax "
                       "term: it needs task.softmax other than 'none'.")
    if self.softmax not in SOFTMAX_MODES:
      raise ValueError(f"softmax must be one of {SOFTMAX_MODES}, got {self.softmax!r}.")
    weights = (self.softmax_weight, self.ctr_weight, self.hinge_weight, self.completion_weight)
    if min(weights) < 0 or self.num_negatives < 1:
      raise ValueError("loss weights must be >= 0 and num_negatives >= 1.")
    if self.hinge_margin < 0:
      raise ValueError(f"task.hinge_margin must be >= 0, got {self.hinge_margin}.")
    if not 0.0 <= self.engagement_threshold <= 1.0:
      raise ValueError("task.engagement_threshold is a completion rate in [0, 1], got "
                       f"{self.engagement_threshold}.")
    if self.negative_sampler not in NEGATIVE_SAMPLERS:
      raise ValueError(f"task.negative_sampler must be one of {NEGATIVE_SAMPLERS}, got "
                       f"{self.negative_sampler!r}.")
    if self.negative_sampler != "rows" and self.softmax != "sampled":
      raise ValueError(f"task.negative_sampler {self.negative_sampler!r} is the sampled "
                       f"softmax's: it needs task.softmax 'sampled', got {self.softmax!r}.")
    if self.sampling_correction not in SAMPLING_CORRECTIONS:
      raise ValueError(f"task.sampling_correction must be one of {SAMPLING_CORRECTIONS}, got "
                       f"{self.sampling_correction!r}.")
    if self.sampling_correction != "none" and self.negative_sampler != "popularity":
      raise ValueError(f"task.sampling_correction {self.sampling_correction!r} needs "
                       "task.negative_sampler 'popularity' (uniform sampling's Q is one "
                       "constant, which a softmax ignores; the rows' negatives have no known "
                       f"Q), got {self.negative_sampler!r}.")
    if self.num_sampled < 1:
      raise ValueError(f"task.num_sampled must be >= 1, got {self.num_sampled}.")
    if self.sampling_exponent <= 0:
      raise ValueError(f"task.sampling_exponent must be > 0, got {self.sampling_exponent}.")
    if self.estimator_buckets < 0 or self.estimator_hashes < 1:
      raise ValueError("task.estimator_buckets must be >= 0 and task.estimator_hashes >= 1, "
                       f"got {self.estimator_buckets} and {self.estimator_hashes}.")
    if not 0.0 < self.estimator_learning_rate <= 1.0:
      raise ValueError("task.estimator_learning_rate must be in (0, 1], got "
                       f"{self.estimator_learning_rate}.")


def _mean(total: tf.Tensor, denominator: tf.Tensor) -> tf.Tensor:
  """This replica's share of a weighted mean over the global batch (the mean on one device).

  Dividing by the weights summed over all replicas makes the replicas' summed gradients equal
  one device's gradient of the mean over the whole global batch.
  """
  return tf.math.divide_no_nan(total, distribute.global_sum(denominator))


def engagement_weights(engagement: tf.Tensor, slope: float, threshold: float) -> tf.Tensor:
  """W = max(0, 1 + slope * (engagement - threshold)), elementwise."""
  return tf.nn.relu(1.0 + slope * (engagement - threshold))


def in_batch_negatives(positives: tf.Tensor, num_negatives: int,
                       seed: Optional[int] = None) -> tf.Tensor:
  """[P, num_negatives] first positives of other rows, each row shifted by a random offset."""
  num_rows = tf.shape(positives)[0]
  offsets = tf.random.uniform([num_negatives], 1, tf.maximum(num_rows, 2), tf.int32, seed=seed)
  rows = (tf.range(num_rows)[:, tf.newaxis] + offsets[tf.newaxis, :]) % tf.maximum(num_rows, 1)
  return tf.gather(positives[:, 0], rows)


@tf.keras.utils.register_keras_serializable(package="tfrs_smoe")
class EngagementMultitask(tf.keras.layers.Layer):
  """L = softmax_weight L_softmax + l1 L_ctr + l2 L_hinge + l3 L_completion.

  Order of computation: engagement weights W of the positives -> soft-label weights times W ->
  scores of positives and negatives (one `CandidateScorer`) -> each loss normalised by its total
  weight -> weighted sum. Every loss is reported as a metric (`loss_<name>`). The gate's entropy
  term (l4) is a layer loss of the gate, added by the model's train step.

  Rows are the training positions: row p has K next-item targets (soft labels, 0 = missing) and
  M negatives (item index 0 = no negative). Targets of the same row never act as each other's
  negatives, and a negative equal to one of the row's targets (an accidental hit) is dropped.
  Positive weights are soft label x W: a negative's BCE term has weight 1.

  Sampled softmax over catalogue negatives (`negative_sampler` "uniform" / "popularity"): a
  `CatalogueSampler` draws S items per batch, shared by every row, and gives their Q (and
  the positives'). Order, as in `tfrs.tasks.Retrieval`: scores -> logQ correction of sampled
  and positive logits (`tfrs.layers.loss.SamplingProbablityCorrection`, Q divided by its
  largest value in the batch first, which moves every logit by one constant and keeps Q
  inside the layer's clipping range [1e-6, 1] on large catalogues) -> accidental hits (a
  sampled item equal to one of the row's targets) masked for that row -> each target's
  cross-entropy against [its own logit, the row's sampled logits], that is
  softplus(logsumexp(sampled) - positive). The cost is one [P, S] score matrix instead of
  the full softmax's [P, num_items].

  Next-K (`config.next_k_mode`): "joint" keeps all K targets in every term above.
  "auxiliary" splits the rows' targets first: target 1 goes through the terms above, targets
  2..K (soft label x W as weights) through one more softmax term, `loss_next_k`, of the same
  softmax mode, scored by `future_head(query)` against the rows' negatives (or the catalogue)
  instead of by `query`, and weighted by `config.next_k_weight`.

  Args:
    config: `MultitaskConfig`.
    scorer: the model's `CandidateScorer` (shared with the model, so the loss scores with the
      serving weights); `from_config` builds a new one from its config.
    future_head: the layer [P, dim] -> [P, dim] whose output scores targets 2..K in
      "auxiliary" mode (e.g. `default_future_head(dim)`); required in that mode, ignored in
      "joint".
    candidate_counts: [num_items] training positives per item; required with the
      "popularity" sampler (its distribution, and Q with "counts"). Held by the sampler as
      a non-trainable weight, saved with checkpoints.
    num_items: catalogue size when the counts are not given (`from_config`: the counts come
      back with the weights).

  Call args:
    query: [P, dim] user representations.
    targets: [P, K] int item indices; target_weights [P, K] soft labels (0 = missing);
      target_engagement [P, K] completion rates; negatives [P, M] int item indices;
      item_table [num_items, dim] content vectors of every item; completion [P] predicted
      completion of the first target, or None.
    training: False (evaluation losses) leaves the "streaming" estimator unchanged; True or
      None update it with the batch's targets.

  Returns:
    scalar loss.

  Example (P = 2 rows of K = 2 targets and M = 2 negatives, a catalogue of 6 items):
    >>> from tfrs_smoe.layers import candidate_scorer
    >>> scorer = candidate_scorer.CandidateScorer("dot")
    >>> task = EngagementMultitask(MultitaskConfig(**PAPER_MULTITASK), scorer)  # The paper's loss.
    >>> query, item_table = tf.zeros([2, 4]), tf.zeros([6, 4])  # Every score 0.
    >>> targets = tf.constant([[2, 3], [4, 0]])  # Row 1 has one target (0 = missing).
    >>> weights = tf.constant([[1.0, 0.6], [1.0, 0.0]])  # Soft labels.
    >>> engagement = tf.constant([[0.9, 0.5], [0.2, 0.0]])
    >>> negatives = tf.constant([[5, 4], [5, 2]])
    >>> completion = tf.constant([0.5, 0.5])  # Predicted for each row's first target.
    >>> loss = task(query, targets, weights, engagement, negatives, item_table, completion)
    >>> round(float(loss), 4)  # log(4) + 0.1 (log(2) + 1 + 0.125)
    1.5681
    >>> {metric.name: round(float(metric.result()), 4) for metric in task.metrics}
    {'loss_softmax': 1.3863, 'loss_ctr': 0.6931, 'loss_hinge': 1.0, 'loss_completion': 0.125}
    >>> sampled = EngagementMultitask(
    ...     MultitaskConfig(softmax="sampled", negative_sampler="popularity",
    ...                     sampling_correction="counts", num_sampled=4), scorer,
    ...     candidate_counts=np.array([0, 0, 3, 2, 1, 1]))
    >>> sampled(query, targets, weights, engagement, negatives, item_table, completion).shape
    TensorShape([])
    >>> sampled.sampler.distribution, sampled.sampler.num_sampled
    ('popularity', 4)
  """

  def __init__(self, config: MultitaskConfig, scorer: candidate_scorer.CandidateScorer,
               candidate_counts: Optional[np.ndarray] = None, num_items: Optional[int] = None,
               future_head: Optional[tf.keras.layers.Layer] = None, **kwargs):
    super().__init__(**kwargs)
    if config.next_k_mode == "auxiliary" and future_head is None:
      raise ValueError("task.next_k_mode 'auxiliary' needs a future_head layer (e.g. "
                       "default_future_head(dim)).")
    self._future_head = future_head if config.next_k_mode == "auxiliary" else None
    if config.softmax in ("full", "in_batch") and scorer.mode != "dot":
      raise ValueError(f"softmax={config.softmax!r} needs the dot scorer; use 'sampled' with "
                       f"the {scorer.mode!r} scorer.")
    self.config = config
    self._scorer = scorer
    self._retrieval = tfrs.tasks.Retrieval(remove_accidental_hits=True)
    self._sampler = None
    if candidate_counts is not None:
      num_items = len(candidate_counts)
    if config.negative_sampler != "rows":
      if config.negative_sampler == "popularity" and num_items is None:
        raise ValueError("task.negative_sampler 'popularity' needs candidate_counts "
                         "([num_items] training positives per item).")
      self._sampler = catalogue_sampler.CatalogueSampler(
          num_items=num_items, num_sampled=config.num_sampled,
          distribution=config.negative_sampler, correction=config.sampling_correction,
          exponent=config.sampling_exponent, estimator_buckets=config.estimator_buckets,
          estimator_hashes=config.estimator_hashes,
          estimator_learning_rate=config.estimator_learning_rate, name="sampler")
      if candidate_counts is not None and config.negative_sampler == "popularity":
        self._sampler.set_counts(candidate_counts)
    self.num_items = num_items

  @property
  def sampler(self) -> Optional[catalogue_sampler.CatalogueSampler]:
    """The catalogue sampler of the sampled softmax; None with the rows' negatives."""
    return self._sampler

  def call(self, query, targets, target_weights, target_engagement, negatives, item_table,
           completion=None, training=None):
    config = self.config
    future = None
    all_targets = targets  # A row's every target is no negative of it, in any term.
    if self._future_head is not None and targets.shape[1] != 1:
      future = (targets[:, 1:], target_weights[:, 1:], target_engagement[:, 1:])
      targets, target_weights = targets[:, :1], target_weights[:, :1]
      target_engagement = target_engagement[:, :1]
    weights = target_weights * engagement_weights(target_engagement, config.engagement_slope,
                                                  config.engagement_threshold)
    positive_scores = self._scorer((query, tf.gather(item_table, targets)))  # [P, K]
    hit = tf.reduce_any(negatives[:, :, tf.newaxis] == all_targets[:, tf.newaxis, :], axis=-1)
    negative_valid = tf.cast((negatives > 0) & ~hit, query.dtype)  # [P, M]
    negative_scores = self._scorer((query, tf.gather(item_table, negatives)))  # [P, M]
    losses = {}
    if config.softmax_weight > 0 and config.softmax != "none":
      losses["softmax"] = (config.softmax_weight, self._softmax_loss(
          query, targets, weights, positive_scores, negative_scores, negative_valid,
          item_table, training, hit_targets=all_targets))
    if config.ctr_weight > 0:
      bce = tf.nn.sigmoid_cross_entropy_with_logits
      total = (tf.reduce_sum(weights * bce(tf.ones_like(positive_scores), positive_scores))
               + tf.reduce_sum(negative_valid * bce(tf.zeros_like(negative_scores),
                                                    negative_scores)))
      losses["ctr"] = (config.ctr_weight, _mean(
          total, tf.reduce_sum(weights) + tf.reduce_sum(negative_valid)))
    if config.hinge_weight > 0:
      pair_weights = weights[:, :, tf.newaxis] * negative_valid[:, tf.newaxis, :]
      margins = tf.nn.relu(config.hinge_margin - (positive_scores[:, :, tf.newaxis]
                                                  - negative_scores[:, tf.newaxis, :]))
      losses["hinge"] = (config.hinge_weight, _mean(
          tf.reduce_sum(pair_weights * margins), tf.reduce_sum(pair_weights)))
    if config.completion_weight > 0 and completion is not None:
      present = tf.cast(target_weights[:, 0] > 0, query.dtype)
      losses["completion"] = (config.completion_weight, _mean(
          tf.reduce_sum(present * tf.square(completion - target_engagement[:, 0])),
          tf.reduce_sum(present)))
    if future is not None and config.next_k_weight > 0:
      losses["next_k"] = (config.next_k_weight, self._future_loss(
          query, all_targets, future, negatives, item_table))
    total_loss = tf.constant(0.0)
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    for name, (weight, loss) in losses.items():
      # Each replica holds its share of the global mean; the metric averages the replicas.
      self.add_metric(loss * replicas, name=f"loss_{name}")
      total_loss += weight * loss
    return total_loss

  def _future_loss(self, query, all_targets, future, negatives, item_table):
    """The "auxiliary" next-K term: targets 2..K scored by `future_head(query)`."""
    targets, target_weights, target_engagement = future
    future_query = self._future_head(query)
    weights = target_weights * engagement_weights(
        target_engagement, self.config.engagement_slope, self.config.engagement_threshold)
    hit = tf.reduce_any(negatives[:, :, tf.newaxis] == all_targets[:, tf.newaxis, :], axis=-1)
    negative_valid = tf.cast((negatives > 0) & ~hit, query.dtype)
    positive_scores = self._scorer((future_query, tf.gather(item_table, targets)))
    negative_scores = self._scorer((future_query, tf.gather(item_table, negatives)))
    # training=False: the streaming estimator counts each position's next item once, in the
    # main term.
    return self._softmax_loss(future_query, targets, weights, positive_scores, negative_scores,
                              negative_valid, item_table, training=False,
                              hit_targets=all_targets)

  def _softmax_loss(self, query, targets, weights, positive_scores, negative_scores,
                    negative_valid, item_table, training=None, hit_targets=None):
    """Weighted mean cross-entropy of each target against its softmax's candidates;
    `hit_targets` [P, K'] (default `targets`) are the row's items no sampled negative may be."""
    if self._sampler is not None:
      cross_entropy = self._catalogue_cross_entropy(query, targets, weights, positive_scores,
                                                    item_table, training, hit_targets)
    elif self.config.softmax == "full":
      # Reserved indices (padding, out-of-vocabulary) never compete: they are left out of
      # the table instead of masked in the [P, num_items] logits.
      logits = self._scorer.score_all(query, item_table[metrics_lib.NUM_RESERVED_ITEMS:])
      cross_entropy = tf.reduce_logsumexp(logits, axis=-1, keepdims=True) - positive_scores
    elif self.config.softmax == "sampled":
      masked_negatives = tf.where(negative_valid > 0, negative_scores,
                                  tf.cast(-1e9, negative_scores.dtype))
      # Each target competes with the row's negatives only, not with the row's other targets.
      logits = tf.concat([positive_scores[:, :, tf.newaxis],
                          tf.broadcast_to(masked_negatives[:, tf.newaxis, :],
                                          tf.concat([tf.shape(positive_scores),
                                                     tf.shape(masked_negatives)[1:]], 0))],
                         axis=-1)
      cross_entropy = tf.reduce_logsumexp(logits, axis=-1) - positive_scores
    else:
      return self._in_batch_loss(query, targets, weights, item_table)
    return _mean(tf.reduce_sum(weights * cross_entropy), tf.reduce_sum(weights))

  def _catalogue_cross_entropy(self, query, targets, weights, positive_scores, item_table,
                               training, hit_targets=None):
    """[P, K] cross-entropy of each target against the batch's S catalogue negatives."""
    hit_targets = targets if hit_targets is None else hit_targets
    rows = item_table.shape[0]
    if self.num_items is not None and rows is not None and rows != self.num_items:
      raise ValueError(f"item_table has {rows} rows but the sampler's catalogue (the "
                       f"candidate_counts) has {self.num_items} items.")
    sampled, q_positives, q_sampled = self._sampler(
        targets, num_items=tf.shape(item_table)[0], training=training)
    sampled_scores = self._scorer.score_all(query, tf.gather(item_table, sampled))  # [P, S]
    positive_logits = positive_scores
    if self.config.sampling_correction != "none":
      # One factor for every candidate of the batch: every logit moves by the same log.
      largest = tf.maximum(tf.reduce_max(tf.where(weights > 0, q_positives, 0.0)),
                           tf.reduce_max(q_sampled))
      correction = tfrs.layers.loss.SamplingProbablityCorrection()
      positive_logits = correction(positive_scores, q_positives / largest)
      sampled_scores = correction(sampled_scores, (q_sampled / largest)[tf.newaxis, :])
    hit = tf.reduce_any(sampled[tf.newaxis, :, tf.newaxis]
                        == tf.cast(hit_targets, sampled.dtype)[:, tf.newaxis, :],
                        axis=-1)  # [P, S]
    sampled_scores = tf.where(hit, tf.cast(_MASKED_LOGIT, sampled_scores.dtype),
                              sampled_scores)
    negative_lse = tf.reduce_logsumexp(sampled_scores, axis=-1, keepdims=True)  # [P, 1]
    # log(exp(positive) + exp(negative_lse)) - positive.
    return tf.nn.softplus(negative_lse - positive_logits)

  def _in_batch_loss(self, query, targets, weights, item_table):
    """tfrs Retrieval over every (row, target) pair; a row's other targets are masked out."""
    present = tf.where(tf.reshape(weights, [-1]) > 0)[:, 0]
    num_targets = tf.shape(targets)[1]
    rows = tf.gather(tf.repeat(tf.range(tf.shape(targets)[0]), num_targets), present)
    candidate_ids = tf.gather(tf.reshape(targets, [-1]), present)
    same_row = rows[:, tf.newaxis] == rows[tf.newaxis, :]
    score_mask = ~same_row | tf.eye(tf.shape(rows)[0], dtype=tf.bool)
    pair_weights = tf.gather(tf.reshape(weights, [-1]), present)
    loss = self._retrieval(tf.gather(query, rows), tf.gather(item_table, candidate_ids),
                           sample_weight=pair_weights, candidate_ids=candidate_ids,
                           compute_metrics=False, compute_batch_metrics=False,
                           score_mask=score_mask)
    return _mean(loss, tf.reduce_sum(pair_weights))

  def get_config(self):
    config = super().get_config()
    config.update({"config": dataclasses.asdict(self.config),
                   "scorer": tf.keras.layers.serialize(self._scorer),
                   "num_items": self.num_items})
    if self._future_head is not None:
      config["future_head"] = tf.keras.layers.serialize(self._future_head)
    return config

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    task_config = MultitaskConfig(**config.pop("config"))
    scorer = tf.keras.layers.deserialize(config.pop("scorer"))
    if config.get("future_head") is not None:
      config["future_head"] = tf.keras.layers.deserialize(config["future_head"])
    return cls(task_config, scorer, **config)


def default_future_head(dim: int, name: str = "future_head") -> tf.keras.layers.Layer:
  """The "auxiliary" next-K head: a linear map [P, dim] -> [P, dim], initialised to the
  identity (so training starts where "joint" mode would) and free to move the future targets'
  scores away from the served user vector."""
  return tf.keras.layers.Dense(dim, kernel_initializer="identity", name=name)
