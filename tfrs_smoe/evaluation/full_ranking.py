"""Full-ranking evaluation: every target ranked against the whole catalogue.

The model scores all `num_items` items for each example. Items in the user's history (all of it,
not only the `max_len` most recent items the model sees) are excluded, since recommending what
the user already consumed is neither rewarded nor penalised; the target itself always competes,
even when the user consumed it before. Reserved indices 0 and 1 never compete.
"""

from typing import Callable, Dict, Mapping, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tfrs_smoe.data.examples import EvalExamples
from tfrs_smoe.evaluation import metrics as metrics_lib

ScoreFn = Callable[[Mapping[str, tf.Tensor]], tf.Tensor]


class FullRankingEvaluator:
  """Ranks each target among all items and averages NDCG@k, Recall@k and MRR@k.

  Args:
    num_items: vocabulary size including the reserved indices 0 and 1.
    ks: distinct positive cutoffs; the default reports NDCG, Recall and MRR at 1, 5 and 10.
    batch_size: examples scored per `score_fn` call, at most; capped so that a batch holds at
      most `max_scores_per_batch` scores.
    max_len: history length of the model inputs (`EvalExamples.model_inputs`).
    max_scores_per_batch: cap on batch_size * num_items. The [batch, num_items] score and mask
      tensors stop fitting in the CPU caches beyond a few million entries: at 100k items a
      batch of 256 ran 5x slower per user than a batch of 64 here
      (benchmarks/full_ranking_evaluation.py).

  Example (the popularity baseline on a tiny synthetic log):
    >>> from tfrs_smoe.data import splits, synthetic
    >>> split = splits.leave_one_out(synthetic.generate_watch_log(
    ...     synthetic.SyntheticConfig(num_users=20, num_titles=30))[0])
    >>> from tfrs_smoe.models import popularity
    >>> model = popularity.PopularityModel(split.item_vocabulary.size)
    >>> model.fit_counts(split.train.item[split.train.positive])
    >>> evaluator = FullRankingEvaluator(num_items=split.item_vocabulary.size)
    >>> results = evaluator.evaluate(lambda features: model(features), split.test)
    >>> round(results["ndcg@10"], 3), results["num_examples"]
    (0.254, 20)
  """

  def __init__(self,
               num_items: int,
               ks: Sequence[int] = (1, 5, 10),
               batch_size: int = 256,
               max_len: int = 50,
               max_scores_per_batch: int = 1 << 23):
    self.batch_size = metrics_lib.full_catalogue_batch_size(num_items, batch_size, max_len,
                                                            max_scores_per_batch)
    self.num_items = num_items
    self.ks = metrics_lib.validate_ks(ks)
    self.max_len = max_len
    # One trace serves every batch, the smaller last one included.
    self._batch_metrics = tf.function(
        self._compute_batch_metrics,
        input_signature=[
            tf.TensorSpec([None, num_items], tf.float32),
            tf.TensorSpec([None], tf.int32),
            tf.RaggedTensorSpec([None, None], tf.int32, ragged_rank=1,
                                row_splits_dtype=tf.int64),
        ])

  def _compute_batch_metrics(self, scores: tf.Tensor, target: tf.Tensor,
                             history: tf.RaggedTensor) -> Dict[str, tf.Tensor]:
    """Per-example metrics of one batch.

    Args:
      scores: [B, num_items] float32.
      target: [B] int32 target item indices.
      history: ragged [B, (h)] int32, the full history of every example.

    Returns:
      Metric name -> [B] float32.
    """
    tf.debugging.assert_equal(
        tf.reduce_any(tf.math.is_nan(scores)), False,
        message="score_fn returned NaN scores; a NaN target score would rank first.")
    # Scatter the history into a dense mask: one vectorised op for all rows. Float counts keep
    # the scatter on accelerators, which lack boolean scatter kernels; repeats just add up.
    positions = tf.stack(
        [tf.cast(history.value_rowids(), tf.int32), history.flat_values], axis=1)
    excluded = tf.scatter_nd(positions, tf.ones([tf.shape(positions)[0]], tf.float32),
                             tf.shape(scores)) > 0.0
    greater, ties = metrics_lib.rank_counts(scores, target, excluded)
    return metrics_lib.ranking_metrics(greater, ties, self.ks)

  def evaluate(self,
               score_fn: ScoreFn,
               examples: EvalExamples,
               progress: bool = False) -> Dict[str, float]:
    """Scores every example against the full catalogue.

    Args:
      score_fn: maps a batch of `examples.model_inputs(max_len)` (a dict of tensors with
        batch dimension B) to [B, num_items] scores; higher means more relevant.
      examples: the evaluation examples; targets must be real items (2 .. num_items - 1).
      progress: show a progress bar.

    Returns:
      The mean of every metric over the examples ("ndcg@k", "recall@k", "mrr@k") and
      "num_examples".
    """
    accumulator = self._accumulate(score_fn, examples, progress, keep_values=False)
    return {**accumulator.result(), "num_examples": accumulator.count}

  def evaluate_per_example(self,
                           score_fn: ScoreFn,
                           examples: EvalExamples,
                           progress: bool = False
                           ) -> Tuple[Dict[str, float], Dict[str, np.ndarray]]:
    """`evaluate`, plus every example's own metric values, from one scoring pass.

    The per-example values are the ones `evaluate` averages (same tie handling), so their
    mean is the summary up to float64 rounding. Paired comparisons between models join them
    on the user (`tfrs_smoe.evaluation.paired_comparison`).

    Args:
      score_fn: as in `evaluate`.
      examples: as in `evaluate`.
      progress: show a progress bar.

    Returns:
      (summary, per_example): summary is what `evaluate` returns; per_example maps every
      metric name to [n] float64 values in the order of `examples`.

    Example (the popularity baseline on a tiny synthetic log):
      >>> from tfrs_smoe.data import splits, synthetic
      >>> split = splits.leave_one_out(synthetic.generate_watch_log(
      ...     synthetic.SyntheticConfig(num_users=20, num_titles=30))[0])
      >>> from tfrs_smoe.models import popularity
      >>> model = popularity.PopularityModel(split.item_vocabulary.size)
      >>> model.fit_counts(split.train.item[split.train.positive])
      >>> evaluator = FullRankingEvaluator(num_items=split.item_vocabulary.size)
      >>> summary, per_example = evaluator.evaluate_per_example(model, split.test)
      >>> per_example["ndcg@10"].shape  # (len(split.test),)
      (20,)
      >>> bool(abs(per_example["ndcg@10"].mean() - summary["ndcg@10"]) < 1e-9)  # Up to rounding.
      True
    """
    accumulator = self._accumulate(score_fn, examples, progress, keep_values=True)
    return {**accumulator.result(), "num_examples": accumulator.count}, accumulator.values()

  def _accumulate(self, score_fn: ScoreFn, examples: EvalExamples, progress: bool,
                  keep_values: bool) -> metrics_lib.MetricsAccumulator:
    """Scores all examples batch by batch into an accumulator."""
    if not len(examples):
      raise ValueError("No evaluation examples.")
    target = examples.target.astype(np.int32)
    if target.min() < metrics_lib.NUM_RESERVED_ITEMS or target.max() >= self.num_items:
      raise ValueError(f"Targets must be real items in [2, {self.num_items}), got range "
                       f"[{target.min()}, {target.max()}].")
    history_values = examples.history.values.astype(np.int32)
    history_splits = examples.history.row_splits
    if history_values.size and (history_values.min() < 0 or
                                history_values.max() >= self.num_items):
      raise ValueError(f"History items must be in [0, {self.num_items}).")
    accumulator = metrics_lib.MetricsAccumulator(keep_values=keep_values)
    for start, end, batch_features in metrics_lib.batched_model_inputs(
        examples, self.max_len, self.batch_size, progress):
      scores = tf.cast(score_fn(batch_features), tf.float32)
      if tuple(scores.shape) != (end - start, self.num_items):
        raise ValueError(f"score_fn must return [{end - start}, {self.num_items}] scores, got "
                         f"{tuple(scores.shape)}.")
      batch_history = tf.RaggedTensor.from_row_splits(
          history_values[history_splits[start]:history_splits[end]],
          history_splits[start:end + 1] - history_splits[start])
      accumulator.update(self._batch_metrics(scores, tf.constant(target[start:end]),
                                             batch_history))
    return accumulator
