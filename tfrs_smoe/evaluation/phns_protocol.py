"""The PHNS test: each target ranked against the user's own hard negatives.

Full ranking rewards a model for putting the target above thousands of items the user would
never consider. The PHNS test instead ranks each target (a positive the user engaged with)
against a small candidate set of hard negatives:

  * the user's own abandoned items (`EvalExamples.abandoned`), most recent first: items the user
    chose to start and then left, the hardest negatives an engagement-aware model must learn;
  * items sampled from the globally TRENDING pool (most interacted with in the recent window),
    which a popularity-driven model over-ranks;
  * items sampled from the globally TAILING pool (least popular overall), which checks that the
    model does not simply invert popularity.

Sampled items are ones the user never touched before the target. Candidate sets are built once
per evaluation with a fixed seed, so every model is ranked against the same negatives.
"""

import dataclasses
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tfrs_smoe.data.examples import EvalExamples
from tfrs_smoe.evaluation import metrics as metrics_lib

ScoreCandidatesFn = Callable[[Mapping[str, tf.Tensor], tf.Tensor], tf.Tensor]

# Random keys drawn per chunk of users when sampling from a pool, to bound memory on big pools.
_MAX_KEYS_PER_CHUNK = 1 << 22


@dataclasses.dataclass(frozen=True)
class PHNSTestConfig:
  """How PHNS candidate sets are built.

  Attributes:
    num_candidates: candidate set size C per example: the target plus C - 1 negatives.
    max_abandoned: at most this many of the user's abandoned items enter the set, the most
      recent first; capped at C - 1.
    trending_share: fraction of the negative slots left after abandoned items that is drawn
      from the trending pool (rounded half up); the rest comes from the tailing pool.
    trending_pool_size: number of items in the trending pool.
    trending_window_fraction: the trending window is this most recent fraction of the training
      log's time span.
    tail_fraction: the tailing pool is this least popular fraction of the real items, by
      interaction count over the whole training log (items never interacted with included).
    seed: seed of the negative sampling; the same seed gives the same candidate sets.
  """

  num_candidates: int = 100
  max_abandoned: int = 49
  trending_share: float = 0.5
  trending_pool_size: int = 200
  trending_window_fraction: float = 0.1
  tail_fraction: float = 0.5
  seed: int = 0

  def __post_init__(self):
    if self.num_candidates < 2:
      raise ValueError(f"num_candidates={self.num_candidates} leaves no room for negatives.")
    if self.max_abandoned < 0 or self.trending_pool_size < 0:
      raise ValueError("max_abandoned and trending_pool_size must be non-negative.")
    for name in ("trending_share", "tail_fraction"):
      if not 0.0 <= getattr(self, name) <= 1.0:
        raise ValueError(f"{name}={getattr(self, name)} must be in [0, 1].")
    if not 0.0 < self.trending_window_fraction <= 1.0:
      raise ValueError(f"trending_window_fraction={self.trending_window_fraction} must be in "
                       "(0, 1].")
    if not 0 <= self.seed < 2**32:
      raise ValueError(f"seed={self.seed} must be in [0, 2**32 - 1].")


@dataclasses.dataclass
class PopularityPools:
  """Disjoint pools of item indices that PHNS negatives are sampled from.

  Attributes:
    trending: [t] int32 items most interacted with in the recent window, most first.
    tailing: [u] int32 least popular items overall, least first, without trending items: an item
      both rare overall and trending recently (a new release) counts as trending.
    num_items: vocabulary size including the reserved indices 0 and 1.
  """

  trending: np.ndarray
  tailing: np.ndarray
  num_items: int

  def __post_init__(self):
    self.trending = np.asarray(self.trending, dtype=np.int32)
    self.tailing = np.asarray(self.tailing, dtype=np.int32)
    for name, pool in (("trending", self.trending), ("tailing", self.tailing)):
      if pool.ndim != 1 or len(np.unique(pool)) != len(pool):
        raise ValueError(f"The {name} pool must be a 1-D array of distinct items.")
      if pool.size and (pool.min() < metrics_lib.NUM_RESERVED_ITEMS or
                        pool.max() >= self.num_items):
        raise ValueError(f"The {name} pool must hold real items in [2, {self.num_items}).")
    if np.intersect1d(self.trending, self.tailing).size:
      raise ValueError("The trending and tailing pools must be disjoint.")

  @classmethod
  def from_log(cls,
               item_index: np.ndarray,
               timestamp: np.ndarray,
               num_items: int,
               config: PHNSTestConfig = PHNSTestConfig()) -> "PopularityPools":
    """Builds the pools from the training interactions.

    Ties in counts are broken by the lower item index, so the pools are reproducible.

    Args:
      item_index: [n] int item index of every training interaction.
      timestamp: [n] int64 its time.
      num_items: vocabulary size including the reserved indices 0 and 1.
      config: supplies trending_pool_size, trending_window_fraction and tail_fraction.

    Example:
      >>> from tfrs_smoe.data import splits, synthetic
      >>> split = splits.leave_one_out(synthetic.generate_watch_log(
      ...     synthetic.SyntheticConfig(num_users=20, num_titles=30))[0])
      >>> train = split.train
      >>> pools = PopularityPools.from_log(train.item, train.timestamp, split.item_vocabulary.size)
      >>> pools.trending[:5]  # The items most watched in the last 10% of the log's span (3).
      array([21, 40, 41], dtype=int32)
    """
    item_index = np.asarray(item_index, dtype=np.int64)
    timestamp = np.asarray(timestamp, dtype=np.int64)
    if item_index.ndim != 1 or item_index.shape != timestamp.shape or not item_index.size:
      raise ValueError("item_index and timestamp must be non-empty 1-D arrays of equal length.")
    if item_index.min() < 0 or item_index.max() >= num_items:
      raise ValueError(f"Training items must be in [0, {num_items}).")
    is_real = item_index >= metrics_lib.NUM_RESERVED_ITEMS
    first, last = timestamp.min(), timestamp.max()
    window_start = last - config.trending_window_fraction * float(last - first)
    in_window = is_real & (timestamp >= window_start)
    recent_counts = np.bincount(item_index[in_window], minlength=num_items)
    counts = np.bincount(item_index[is_real], minlength=num_items)
    return cls.from_counts(counts, recent_counts, config)

  @classmethod
  def from_counts(cls, counts: np.ndarray, recent_counts: np.ndarray,
                  config: PHNSTestConfig = PHNSTestConfig()) -> "PopularityPools":
    """Builds the pools from per-item training counts (what `from_log` counts).

    Ties in counts are broken by the lower item index. The counts of the reserved indices 0
    and 1 are ignored.

    Args:
      counts: [num_items] training interactions per item index.
      recent_counts: [num_items] those in the trending window (the last
        `trending_window_fraction` of the training log's time span).
      config: supplies trending_pool_size and tail_fraction.

    Example:
      >>> pools = PopularityPools.from_counts(np.array([0, 0, 5, 1, 3, 0]),
      ...                                     np.array([0, 0, 0, 1, 2, 0]))
      >>> pools.trending, pools.tailing  # Trending: 4 then 3; tailing: the 2 least watched.
      (array([4, 3], dtype=int32), array([5], dtype=int32))
    """
    counts = np.asarray(counts, dtype=np.int64)
    recent_counts = np.asarray(recent_counts, dtype=np.int64)
    if counts.ndim != 1 or counts.shape != recent_counts.shape:
      raise ValueError("counts and recent_counts must be 1-D arrays of equal length, got shapes "
                       f"{counts.shape} and {recent_counts.shape}.")
    num_items = len(counts)
    items = np.arange(metrics_lib.NUM_RESERVED_ITEMS, num_items)
    by_recent_count = items[np.lexsort((items, -recent_counts[items]))]
    trending = by_recent_count[recent_counts[by_recent_count] > 0][:config.trending_pool_size]
    by_count = items[np.lexsort((items, counts[items]))]
    tail = by_count[:int(config.tail_fraction * len(items))]
    return cls(trending=trending, tailing=tail[~np.isin(tail, trending)], num_items=num_items)


def _check_item_range(examples: EvalExamples, num_items: int) -> None:
  if not len(examples):
    raise ValueError("No evaluation examples.")
  if examples.target.min() < metrics_lib.NUM_RESERVED_ITEMS or examples.target.max() >= num_items:
    raise ValueError(f"Targets must be real items in [2, {num_items}).")
  for name in ("history", "abandoned", "seen"):
    values = getattr(examples, name).values
    if values.size and (values.min() < 0 or values.max() >= num_items):
      raise ValueError(f"examples.{name} items must be in [0, {num_items}).")


def _row_ids(ragged) -> np.ndarray:
  return np.repeat(np.arange(len(ragged)), ragged.lengths())


def _recent_abandoned(examples: EvalExamples, num_items: int,
                      limit: int) -> Tuple[np.ndarray, np.ndarray]:
  """The distinct, most recent abandoned items of every example.

  Excludes reserved ids, the target, and items also in the user's positive history: an item the
  user engaged with is not a clean negative even if another session was abandoned.

  Returns:
    (items [n, limit] int32 most recent first, zero-padded; counts [n] int64).
  """
  abandoned = examples.abandoned
  rows = _row_ids(abandoned)
  values = abandoned.values.astype(np.int64)
  recency = abandoned.row_splits[rows + 1] - np.arange(len(values))  # 1 = most recent.
  # (row, item) pairs as single integers, for vectorised membership and deduplication.
  pair = rows * num_items + values
  history_pair = _row_ids(examples.history) * num_items + examples.history.values
  keep = ((values >= metrics_lib.NUM_RESERVED_ITEMS) &
          (values != examples.target[rows]) & ~np.isin(pair, history_pair))
  order = np.flatnonzero(keep)[np.lexsort((recency[keep], rows[keep]))]
  # np.unique returns first occurrences, which in this order are the most recent ones.
  _, first = np.unique(pair[order], return_index=True)
  kept = order[np.sort(first)]
  kept_rows = rows[kept]
  rank = np.arange(len(kept)) - np.searchsorted(kept_rows, kept_rows, side="left")
  used = rank < limit
  items = np.zeros([len(examples), limit], dtype=np.int32)
  items[kept_rows[used], rank[used]] = values[kept][used]
  return items, np.bincount(kept_rows[used], minlength=len(examples))


def _sample_pool(pool: np.ndarray, num_items: int, forbidden_rows: np.ndarray,
                 forbidden_items: np.ndarray, num_rows: int, max_take: int,
                 rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
  """Draws up to `max_take` pool items per row without replacement, avoiding forbidden ones.

  Args:
    pool: [P] distinct items.
    forbidden_rows: [f] row of every forbidden (row, item) pair, sorted.
    forbidden_items: [f] item of every forbidden pair.

  Returns:
    (sampled [num_rows, min(max_take, P)] int32 in random order, of which the first
    `available[i]` of row i are allowed; available [num_rows]).
  """
  width = min(max_take, len(pool))
  sampled = np.zeros([num_rows, width], dtype=np.int32)
  available = np.zeros([num_rows], dtype=np.int64)
  if not width:
    return sampled, available
  position = np.full([num_items], -1, dtype=np.int64)
  position[pool] = np.arange(len(pool))
  chunk = max(1, _MAX_KEYS_PER_CHUNK // len(pool))
  for start in range(0, num_rows, chunk):
    end = min(start + chunk, num_rows)
    # Uniform keys in [0, 1) give a random order; forbidden items get key 2 and sort last.
    keys = rng.random([end - start, len(pool)])
    lo, hi = np.searchsorted(forbidden_rows, [start, end])
    slot = position[forbidden_items[lo:hi]]
    in_pool = slot >= 0
    keys[forbidden_rows[lo:hi][in_pool] - start, slot[in_pool]] = 2.0
    # The `width` smallest keys are a uniform sample; sorting them keeps the allowed ones first.
    smallest = np.argpartition(keys, width - 1, axis=1)[:, :width]
    smallest = np.take_along_axis(
        smallest, np.argsort(np.take_along_axis(keys, smallest, axis=1), axis=1), axis=1)
    sampled[start:end] = pool[smallest]
    available[start:end] = np.minimum((keys < 1.0).sum(axis=1), width)
  return sampled, available


def _build_candidates(examples: EvalExamples, pools: PopularityPools,
                      config: PHNSTestConfig) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """`build_candidates`, plus [n] the number of abandoned items in every candidate set."""
  _check_item_range(examples, pools.num_items)
  num_rows, num_negatives = len(examples), config.num_candidates - 1
  target = examples.target.astype(np.int64)
  abandoned, num_abandoned = _recent_abandoned(examples, pools.num_items,
                                               min(config.max_abandoned, num_negatives))

  # Sampled negatives avoid everything the user touched; history and abandoned items are listed
  # too so the guarantee does not rest on `seen` being their superset.
  touched = [examples.seen, examples.history, examples.abandoned]
  forbidden_rows = np.concatenate([_row_ids(r) for r in touched] + [np.arange(num_rows)])
  forbidden_items = np.concatenate([r.values.astype(np.int64) for r in touched] + [target])
  by_row = np.argsort(forbidden_rows, kind="stable")
  forbidden_rows, forbidden_items = forbidden_rows[by_row], forbidden_items[by_row]
  rng = np.random.default_rng(config.seed)
  trending, trending_available = _sample_pool(pools.trending, pools.num_items, forbidden_rows,
                                              forbidden_items, num_rows, num_negatives, rng)
  tailing, tailing_available = _sample_pool(pools.tailing, pools.num_items, forbidden_rows,
                                            forbidden_items, num_rows, num_negatives, rng)

  slots = num_negatives - num_abandoned
  num_trending = np.minimum(np.floor(config.trending_share * slots + 0.5).astype(np.int64),
                            trending_available)
  num_tailing = np.minimum(slots - num_trending, tailing_available)
  # Top up from the trending pool when the tailing pool ran short.
  num_trending = np.minimum(slots - num_tailing, trending_available)

  # Lay the three parts side by side in each row, then pad: column j takes part p when j falls
  # inside p's span [offset, offset + count).
  column = np.arange(num_negatives)[np.newaxis, :]
  negatives = np.zeros([num_rows, num_negatives], dtype=np.int32)
  offset = np.zeros([num_rows, 1], dtype=np.int64)
  for items, count in ((abandoned, num_abandoned), (trending, num_trending),
                       (tailing, num_tailing)):
    items = np.pad(items, [(0, 0), (0, num_negatives - items.shape[1])])
    local = column - offset
    inside = (local >= 0) & (local < count[:, np.newaxis])
    negatives = np.where(
        inside, np.take_along_axis(items, np.clip(local, 0, num_negatives - 1), axis=1),
        negatives)
    offset = offset + count[:, np.newaxis]
  candidates = np.concatenate([target[:, np.newaxis].astype(np.int32), negatives], axis=1)
  valid = np.concatenate([np.ones([num_rows, 1], bool), column < offset], axis=1)
  return candidates, valid, num_abandoned


def build_candidates(examples: EvalExamples, pools: PopularityPools,
                     config: PHNSTestConfig) -> Tuple[np.ndarray, np.ndarray]:
  """The PHNS candidate set of every example.

  Each row holds the target, then the user's most recent distinct abandoned items (see
  `PHNSTestConfig.max_abandoned`), then items drawn without replacement from the trending and
  tailing pools in the `trending_share` proportion. Drawn items are never the target nor
  anything in the user's `seen`, `history` or `abandoned` rows. When one pool has too few
  allowed items the other tops up; only when both run out are the remaining slots padded.

  Args:
    examples: evaluation examples; targets must be real items.
    pools: the trending and tailing pools.
    config: candidate set size, abandoned cap, trending share and seed.

  Returns:
    (candidates [n, C] int32 item indices with the target in column 0, valid_mask [n, C] bool,
    False for padding slots, which hold item 0).

  Example:
    >>> from tfrs_smoe.data import splits, synthetic
    >>> split = splits.leave_one_out(synthetic.generate_watch_log(
    ...     synthetic.SyntheticConfig(num_users=20, num_titles=30))[0])
    >>> pools = PopularityPools.from_log(split.train.item, split.train.timestamp,
    ...                                  split.item_vocabulary.size)
    >>> candidates, valid = build_candidates(split.test, pools, PHNSTestConfig(num_candidates=20))
    >>> candidates.shape  # (n, num_candidates)
    (20, 20)
    >>> bool((candidates[:, 0] == split.test.target).all())  # The target is column 0.
    True
  """
  candidates, valid, _ = _build_candidates(examples, pools, config)
  return candidates, valid


class PHNSTestEvaluator:
  """Ranks each target among its PHNS candidates and averages NDCG@k, Recall@k and MRR@k.

  Args:
    config: how candidate sets are built.
    ks: distinct positive cutoffs.
    batch_size: examples scored per `score_candidates_fn` call.
    max_len: history length of the model inputs (`EvalExamples.model_inputs`).

  Example (the popularity baseline on a tiny synthetic log):
    >>> from tfrs_smoe.data import splits, synthetic
    >>> split = splits.leave_one_out(synthetic.generate_watch_log(
    ...     synthetic.SyntheticConfig(num_users=20, num_titles=30))[0])
    >>> from tfrs_smoe.models import popularity
    >>> model = popularity.PopularityModel(split.item_vocabulary.size)
    >>> model.fit_counts(split.train.item[split.train.positive])
    >>> pools = PopularityPools.from_log(split.train.item, split.train.timestamp,
    ...                                  split.item_vocabulary.size)
    >>> evaluator = PHNSTestEvaluator(PHNSTestConfig(num_candidates=20, seed=0))
    >>> results = evaluator.evaluate(model.score_candidates, split.test, pools)
    >>> round(results["ndcg@10"], 3), results["mean_abandoned"]
    (0.385, 12.05)
  """

  def __init__(self,
               config: PHNSTestConfig = PHNSTestConfig(),
               ks: Sequence[int] = (1, 5, 10),
               batch_size: int = 256,
               max_len: int = 50):
    if batch_size < 1 or max_len < 1:
      raise ValueError(f"batch_size={batch_size} and max_len={max_len} must be positive.")
    self.config = config
    self.ks = metrics_lib.validate_ks(ks)
    self.batch_size = batch_size
    self.max_len = max_len
    self._batch_metrics = tf.function(
        self._compute_batch_metrics,
        input_signature=[
            tf.TensorSpec([None, config.num_candidates], tf.float32),
            tf.TensorSpec([None, config.num_candidates], tf.bool),
        ])

  def _compute_batch_metrics(self, scores: tf.Tensor, valid: tf.Tensor) -> Dict[str, tf.Tensor]:
    """Per-example metrics of one batch: scores and valid_mask [B, C] -> name -> [B]."""
    tf.debugging.assert_equal(
        tf.reduce_any(tf.math.is_nan(scores)), False,
        message="score_candidates_fn returned NaN scores; a NaN target score would rank first.")
    # Columns are candidate slots, not item indices, so no column is reserved.
    greater, ties = metrics_lib.rank_counts(
        scores, tf.zeros(tf.shape(scores)[:1], tf.int32), ~valid, num_reserved=0)
    return metrics_lib.ranking_metrics(greater, ties, self.ks)

  def evaluate(self,
               score_candidates_fn: ScoreCandidatesFn,
               examples: EvalExamples,
               pools: PopularityPools,
               progress: bool = False) -> Dict[str, float]:
    """Builds the candidate sets and scores every example against its own.

    Args:
      score_candidates_fn: maps a batch of `examples.model_inputs(max_len)` (a dict of tensors
        with batch dimension B) and [B, C] int32 candidate items to [B, C] scores. Padding
        candidates (item 0) are ignored whatever their score.
      examples: the evaluation examples.
      pools: the trending and tailing pools, built from the training log.
      progress: show a progress bar.

    Returns:
      The mean of every metric ("ndcg@k", "recall@k", "mrr@k"), "num_examples" and
      "mean_abandoned", the mean number of the user's abandoned items among the candidates.
    """
    summary, _ = self._evaluate(score_candidates_fn, examples, pools, progress,
                                keep_values=False)
    return summary

  def evaluate_per_example(self,
                           score_candidates_fn: ScoreCandidatesFn,
                           examples: EvalExamples,
                           pools: PopularityPools,
                           progress: bool = False
                           ) -> Tuple[Dict[str, float], Dict[str, np.ndarray]]:
    """`evaluate`, plus every example's own metric values, from one scoring pass.

    Args:
      score_candidates_fn: as in `evaluate`.
      examples: as in `evaluate`.
      pools: as in `evaluate`.
      progress: show a progress bar.

    Returns:
      (summary, per_example): summary is what `evaluate` returns; per_example maps every
      metric name ("ndcg@k", "recall@k", "mrr@k") to [n] float64 values in the order of
      `examples`, whose mean is the summary's up to float64 rounding.

    Example (the popularity baseline on a tiny synthetic log):
      >>> from tfrs_smoe.data import splits, synthetic
      >>> split = splits.leave_one_out(synthetic.generate_watch_log(
      ...     synthetic.SyntheticConfig(num_users=20, num_titles=30))[0])
      >>> from tfrs_smoe.models import popularity
      >>> model = popularity.PopularityModel(split.item_vocabulary.size)
      >>> model.fit_counts(split.train.item[split.train.positive])
      >>> pools = PopularityPools.from_log(split.train.item, split.train.timestamp,
      ...                                  split.item_vocabulary.size)
      >>> evaluator = PHNSTestEvaluator(PHNSTestConfig(num_candidates=20))
      >>> summary, per_example = evaluator.evaluate_per_example(
      ...     model.score_candidates, split.test, pools)
      >>> per_example["ndcg@10"].shape  # (len(split.test),)
      (20,)
    """
    return self._evaluate(score_candidates_fn, examples, pools, progress, keep_values=True)

  def _evaluate(self, score_candidates_fn: ScoreCandidatesFn, examples: EvalExamples,
                pools: PopularityPools, progress: bool, keep_values: bool
                ) -> Tuple[Dict[str, float], Optional[Dict[str, np.ndarray]]]:
    """(summary, per-example values or None) of one scoring pass."""
    if not len(examples):
      raise ValueError("No evaluation examples.")
    candidates, valid, num_abandoned = _build_candidates(examples, pools, self.config)

    accumulator = metrics_lib.MetricsAccumulator(keep_values=keep_values)
    for start, end, batch_features in metrics_lib.batched_model_inputs(
        examples, self.max_len, self.batch_size, progress):
      scores = tf.cast(score_candidates_fn(batch_features, tf.constant(candidates[start:end])),
                       tf.float32)
      if tuple(scores.shape) != candidates[start:end].shape:
        raise ValueError(f"score_candidates_fn must return {candidates[start:end].shape} "
                         f"scores, got {tuple(scores.shape)}.")
      accumulator.update(self._batch_metrics(scores, tf.constant(valid[start:end])))
    summary = {
        **accumulator.result(),
        "num_examples": accumulator.count,
        "mean_abandoned": float(num_abandoned.mean()),
    }
    return summary, accumulator.values() if keep_values else None
