"""Single-target ranking metrics, exact under random tie-breaking.

Every evaluation example has one held-out positive (the target). A protocol scores a set of
items, and `rank_counts` reduces the scores to two numbers per example: how many eligible items
score strictly above the target, and how many tie with it. `ranking_metrics` turns those into
NDCG@k, Recall@k and MRR@k.

Ties are resolved by taking the exact expectation over a uniformly random order of the tied
items, instead of placing the target first (optimistic) or last (pessimistic). A scorer that
cannot tell items apart, such as popularity over items with equal counts or any constant
scorer, then earns what a random guess among the tied items would earn and no credit from
the tie itself; placing the target last instead would penalise honest ties.
"""

from typing import Dict, Iterator, Mapping, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tfrs_smoe.data.examples import EvalExamples

# Item indices 0 (padding) and 1 (out-of-vocabulary) are never recommendable.
NUM_RESERVED_ITEMS = 2


def rank_counts(scores: tf.Tensor,
                target: tf.Tensor,
                excluded_mask: tf.Tensor,
                num_reserved: int = NUM_RESERVED_ITEMS):
  """Counts the eligible items that beat or tie the target.

  Args:
    scores: [B, N] float scores of N items (or candidate slots) per example.
    target: [B] int index of the target column in `scores`.
    excluded_mask: [B, N] bool, True for items that do not compete with the target (already
      consumed, invalid padding slots, ...). The target is never excluded, even when marked.
    num_reserved: the first `num_reserved` columns are always excluded; the default covers
      item indices 0 (padding) and 1 (out-of-vocabulary). Use 0 when columns are candidate
      slots rather than item indices.

  Returns:
    (greater, ties): [B] int32 each, the number of eligible items other than the target with a
    score strictly above the target's, and equal to it.

  Example:
    >>> greater, ties = rank_counts(
    ...     scores=tf.constant([[9., 9., 0.5, 0.7, 0.5, 0.1]]),
    ...     target=tf.constant([2]),
    ...     excluded_mask=tf.zeros([1, 6], tf.bool))
    >>> # Columns 0 and 1 are reserved, item 3 beats the target, item 4 ties with it.
    >>> greater.numpy(), ties.numpy()
    (array([1], dtype=int32), array([1], dtype=int32))
  """
  scores = tf.convert_to_tensor(scores)
  target = tf.cast(target, tf.int32)
  num_columns = tf.shape(scores)[1]
  columns = tf.range(num_columns)[tf.newaxis, :]
  is_target = tf.equal(columns, target[:, tf.newaxis])
  eligible = ~tf.cast(excluded_mask, tf.bool) & (columns >= num_reserved) & ~is_target
  target_score = tf.gather(scores, target, axis=1, batch_dims=1)[:, tf.newaxis]
  greater = tf.reduce_sum(tf.cast(eligible & (scores > target_score), tf.int32), axis=1)
  ties = tf.reduce_sum(tf.cast(eligible & tf.equal(scores, target_score), tf.int32), axis=1)
  return greater, ties


def full_catalogue_batch_size(num_items: int, batch_size: int, max_len: int,
                              max_scores_per_batch: int) -> int:
  """The examples per scoring batch of a full-catalogue evaluator, after checking its settings.

  Checks that the catalogue has real items besides the reserved ones and that `batch_size` and
  `max_len` are positive, then caps the batch so that it holds at most `max_scores_per_batch`
  scores (the [batch, num_items] score and mask tensors stop fitting in the CPU caches beyond
  a few million entries).

  Example:
    >>> full_catalogue_batch_size(num_items=100_000, batch_size=256, max_len=50,
    ...                           max_scores_per_batch=1 << 23)
    83
  """
  if num_items <= NUM_RESERVED_ITEMS:
    raise ValueError(f"num_items={num_items} leaves no real items besides the reserved 0 and 1.")
  if batch_size < 1 or max_len < 1:
    raise ValueError(f"batch_size={batch_size} and max_len={max_len} must be positive.")
  return max(1, min(batch_size, max_scores_per_batch // num_items))


def metric_names(ks: Sequence[int]):
  """The keys `ranking_metrics` returns, in order: ndcg@k for every k, then recall@k, mrr@k."""
  return [f"{name}@{k}" for name in ("ndcg", "recall", "mrr") for k in ks]


def validate_ks(ks: Sequence[int]) -> tuple:
  """Returns `ks` as a tuple of distinct positive ints, or raises ValueError."""
  ks = tuple(int(k) for k in ks)
  if not ks or any(k < 1 for k in ks) or len(set(ks)) != len(ks):
    raise ValueError(f"ks must be distinct positive cutoffs, got {ks}.")
  return ks


def ranking_metrics(greater: tf.Tensor,
                    ties: tf.Tensor,
                    ks: Sequence[int] = (1, 5, 10)) -> Dict[str, tf.Tensor]:
  """NDCG@k, Recall@k and MRR@k of one target, in expectation over random tie-breaking.

  With `greater` items above it and `ties` items level with it, the target's 1-based rank is
  uniform on greater + 1 .. greater + ties + 1, so every metric is the mean of its per-rank
  value over that range:

    NDCG@k = 1 / log2(rank + 1), Recall@k = 1, MRR@k = 1 / rank   if rank <= k, else 0.

  Args:
    greater: [B] int, eligible items scoring strictly above the target (see `rank_counts`).
    ties: [B] int, eligible items scoring equal to the target.
    ks: distinct positive cutoffs.

  Returns:
    "ndcg@k", "recall@k" and "mrr@k" for every k in `ks`: [B] float32 per-example values.

  Example:
    >>> metrics = ranking_metrics(tf.constant([2, 1]), tf.constant([0, 1]), ks=(5,))
    >>> # Rank 3: ndcg = 1/log2(4) = 0.5. Rank 2 or 3: ndcg = (1/log2(3) + 0.5) / 2 = 0.565.
    >>> metrics["ndcg@5"].numpy()
    array([0.5       , 0.56546485], dtype=float32)
  """
  ks = validate_ks(ks)
  max_k = max(ks)
  greater = tf.cast(greater, tf.float32)[:, tf.newaxis]
  ties = tf.cast(ties, tf.float32)[:, tf.newaxis]
  ranks = tf.range(1, max_k + 1, dtype=tf.float32)[tf.newaxis, :]
  # [B, max_k] probability that the target lands exactly on each rank up to max_k.
  in_range = (ranks >= greater + 1.0) & (ranks <= greater + ties + 1.0)
  rank_probability = tf.cast(in_range, tf.float32) / (ties + 1.0)
  gains = {
      "ndcg": 1.0 / (tf.math.log(ranks + 1.0) / tf.math.log(2.0)),
      "recall": tf.ones_like(ranks),
      "mrr": 1.0 / ranks,
  }
  metrics = {}
  for name, gain in gains.items():
    # Column k - 1 of the running sum is the expected metric at cutoff k.
    expected = tf.cumsum(rank_probability * gain, axis=1)
    for k in ks:
      metrics[f"{name}@{k}"] = expected[:, k - 1]
  return {name: metrics[name] for name in metric_names(ks)}


class MetricsAccumulator:
  """Sums per-example metrics over batches and reports their means.

  Sums are kept in float64 on the host so that means over millions of examples do not lose
  precision.

  Args:
    keep_values: also keep every example's values, for `values` (per-user results and paired
      comparisons between models); costs 8 bytes per example and metric.

  Example:
    >>> accumulator = MetricsAccumulator(keep_values=True)
    >>> accumulator.update({"ndcg@5": tf.constant([1.0, 0.5])})
    >>> accumulator.update({"ndcg@5": tf.constant([0.0])})
    >>> accumulator.count, accumulator.result()
    (3, {'ndcg@5': 0.5})
    >>> accumulator.values()["ndcg@5"]
    array([1. , 0.5, 0. ])
  """

  def __init__(self, keep_values: bool = False):
    self._sums: Dict[str, float] = {}
    self._values: Dict[str, list] = {} if keep_values else None
    self.count = 0

  def update(self, metrics: Mapping[str, tf.Tensor]) -> None:
    """Adds one batch.

    Args:
      metrics: name -> [B] per-example values; every batch must carry the same names and B.
    """
    values = {name: np.asarray(value, dtype=np.float64) for name, value in metrics.items()}
    sizes = {value.shape for value in values.values()}
    if len(sizes) != 1 or len(next(iter(sizes))) != 1:
      raise ValueError(f"Metrics of one batch must all have the same shape [B], got {sizes}.")
    if self._sums and set(values) != set(self._sums):
      raise ValueError(f"Batch metrics {sorted(values)} differ from earlier batches' "
                       f"{sorted(self._sums)}.")
    for name, value in values.items():
      self._sums[name] = self._sums.get(name, 0.0) + float(value.sum())
      if self._values is not None:
        self._values.setdefault(name, []).append(value)
    self.count += next(iter(values.values())).shape[0]

  def result(self) -> Dict[str, float]:
    """Mean of every metric over all examples added so far."""
    if not self.count:
      raise ValueError("No examples were accumulated.")
    return {name: total / self.count for name, total in self._sums.items()}

  def values(self) -> Dict[str, np.ndarray]:
    """Every example's values: name -> [count] float64, in the order the examples were added.

    The float32 values the protocols compute are held exactly, so their mean equals `result`
    up to float64 rounding.

    Raises:
      ValueError: the accumulator was built without keep_values, or holds no examples.
    """
    if self._values is None:
      raise ValueError("Per-example values were not kept; build the accumulator with "
                       "MetricsAccumulator(keep_values=True).")
    if not self.count:
      raise ValueError("No examples were accumulated.")
    return {name: np.concatenate(parts) for name, parts in self._values.items()}


def batched_model_inputs(examples: EvalExamples, max_len: int, batch_size: int,
                         progress: bool = False
                         ) -> Iterator[Tuple[int, int, Dict[str, tf.Tensor]]]:
  """Yields (start, end, model inputs of examples[start:end]) batch after batch.

  Args:
    examples: the evaluation examples.
    max_len: history length of `examples.model_inputs`.
    batch_size: examples per batch; the last batch may be smaller.
    progress: show a progress bar that advances as batches are consumed.
  """
  num_examples = len(examples)
  features = examples.model_inputs(max_len)
  progress_bar = tf.keras.utils.Progbar(num_examples) if progress else None
  for start in range(0, num_examples, batch_size):
    end = min(start + batch_size, num_examples)
    yield start, end, {name: tf.constant(value[start:end]) for name, value in features.items()}
    if progress_bar is not None:
      progress_bar.update(end)
