"""Next-K evaluation: how many of a user's next K items one top-k list retrieves.

From one history, the model scores the whole catalogue once, and the top-k list is judged against
the user's next K items (the future), not only the next one. Models trained on next-K soft labels
(S-MoE-BST) aim at exactly this.

Ranking: the same single list as full ranking (`tfrs_smoe.evaluation.full_ranking`). Items of
the user's history (all of it, not only the `max_len` most recent ones the model sees) are
excluded, except the future items themselves: a future item always competes, even when the user
consumed it before, exactly as the next-item protocol lets its target compete. Reserved indices
0 and 1 never compete, and as future entries they mean "missing" and are ignored.

Metrics, per example, with F the distinct real future items (|F| >= 1, duplicates count once)
and rank(i) the 1-based rank of item i in the list:

  next_recall@k = |{i in F : rank(i) <= k}| / |F|
  next_ndcg@k   = DCG@k / IDCG@k,
                  DCG@k  = sum over i in F with rank(i) <= k of 1 / log2(rank(i) + 1),
                  IDCG@k = sum over r = 1 .. min(|F|, k) of 1 / log2(r + 1),

with binary relevance, so a perfect list (F first, in any order) earns 1. next_recall@k is the
denominator-|F| recall of the literature, so it reaches 1 only when k >= |F|. With K = 1 both
reduce to the next-item recall@k and ndcg@k of `FullRankingEvaluator`.

Ties are handled as in `tfrs_smoe.evaluation.metrics`: the exact expectation over a uniformly
random order of tied items. By linearity of expectation each future item contributes its own
expected gain (`metrics.ranking_metrics` of its rank counts), so the values are exact, not
sampled.
"""

from typing import Callable, Dict, Mapping, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tfrs_smoe.data.examples import EvalExamples
from tfrs_smoe.data.splits import Split
from tfrs_smoe.evaluation import metrics as metrics_lib

ScoreFn = Callable[[Mapping[str, tf.Tensor]], tf.Tensor]


class NextKEvaluator:
  """Ranks the catalogue once per example and scores the list against its next K items.

  See the module docstring for the ranking, the metric formulas and the tie handling.

  Args:
    num_items: int. Vocabulary size including the reserved indices 0 and 1.
    ks: sequence of int. Distinct positive cutoffs of the top-k list.
    batch_size: int. Examples scored per `score_fn` call, at most; capped so that a batch
      holds at most `max_scores_per_batch` scores.
    max_len: int. History length of the model inputs (`EvalExamples.model_inputs`).
    max_scores_per_batch: int. Cap on batch_size * num_items, as in `FullRankingEvaluator`.

  Example (the popularity baseline on a tiny synthetic log):
    >>> from tfrs_smoe.data import splits, synthetic
    >>> split = splits.leave_one_out(synthetic.generate_watch_log(
    ...     synthetic.SyntheticConfig(num_users=20, num_titles=30))[0])
    >>> from tfrs_smoe.models import popularity
    >>> model = popularity.PopularityModel(split.item_vocabulary.size)
    >>> model.fit_counts(split.train.item[split.train.positive])
    >>> evaluator = NextKEvaluator(num_items=split.item_vocabulary.size, ks=(5, 10))
    >>> examples, future = NextKEvaluator.leave_one_out_future(split)
    >>> future.shape  # [n, 2]: the validation and test targets of each user.
    (20, 2)
    >>> summary = evaluator.evaluate(model, examples, future)
    >>> round(summary["next_recall@10"], 3), summary["k_future"]
    (0.436, 2)
  """

  def __init__(self,
               num_items: int,
               ks: Sequence[int] = (5, 10),
               batch_size: int = 256,
               max_len: int = 50,
               max_scores_per_batch: int = 1 << 23):
    self.batch_size = metrics_lib.full_catalogue_batch_size(num_items, batch_size, max_len,
                                                            max_scores_per_batch)
    self.num_items = num_items
    self.ks = metrics_lib.validate_ks(ks)
    self.max_len = max_len
    # One trace per K serves every batch, the smaller last one included.
    self._batch_metrics_by_k: Dict[int, Callable] = {}

  def metric_names(self):
    """The per-example metric keys, in order: next_ndcg@k for every k, then next_recall@k."""
    return [f"next_{name}@{k}" for name in ("ndcg", "recall") for k in self.ks]

  def _batch_metrics(self, k_future: int) -> Callable:
    """The traced per-batch computation for futures of width `k_future`."""
    if k_future not in self._batch_metrics_by_k:
      self._batch_metrics_by_k[k_future] = tf.function(
          self._compute_batch_metrics,
          input_signature=[
              tf.TensorSpec([None, self.num_items], tf.float32),
              tf.TensorSpec([None, k_future], tf.int32),
              tf.TensorSpec([None, k_future], tf.bool),
              tf.RaggedTensorSpec([None, None], tf.int32, ragged_rank=1,
                                  row_splits_dtype=tf.int64),
          ])
    return self._batch_metrics_by_k[k_future]

  def _compute_batch_metrics(self, scores: tf.Tensor, future: tf.Tensor, valid: tf.Tensor,
                             history: tf.RaggedTensor) -> Dict[str, tf.Tensor]:
    """Per-example next-K metrics of one batch.

    Args:
      scores: [B, num_items] float32.
      future: [B, K] int32 future item indices.
      valid: [B, K] bool, True for the first occurrence of each real future item of a row;
        every row has at least one.
      history: ragged [B, (h)] int32, the full history of every example.

    Returns:
      Metric name -> [B] float32.
    """
    tf.debugging.assert_equal(
        tf.reduce_any(tf.math.is_nan(scores)), False,
        message="score_fn returned NaN scores; a NaN future item's score would rank first.")
    shape = tf.shape(scores)
    # Dense masks by scatter, as in FullRankingEvaluator (float counts: accelerators lack
    # boolean scatter kernels; repeats add up).
    history_positions = tf.stack(
        [tf.cast(history.value_rowids(), tf.int32), history.flat_values], axis=1)
    in_history = tf.scatter_nd(history_positions,
                               tf.ones([tf.shape(history_positions)[0]], tf.float32), shape) > 0.0
    future_positions = tf.gather_nd(
        tf.stack([tf.broadcast_to(tf.range(shape[0])[:, tf.newaxis], tf.shape(future)), future],
                 axis=2), tf.where(valid))
    is_future = tf.scatter_nd(future_positions,
                              tf.ones([tf.shape(future_positions)[0]], tf.float32), shape) > 0.0
    # One list for all K future items: history out, future items in.
    excluded = in_history & ~is_future
    valid_float = tf.cast(valid, tf.float32)
    dcg = {k: tf.zeros([shape[0]], tf.float32) for k in self.ks}
    hits = {k: tf.zeros([shape[0]], tf.float32) for k in self.ks}
    for j in range(future.shape[1]):
      # rank_counts never excludes the target itself; the other future items compete with it.
      greater, ties = metrics_lib.rank_counts(scores, future[:, j], excluded)
      item_metrics = metrics_lib.ranking_metrics(greater, ties, self.ks)
      for k in self.ks:
        dcg[k] += valid_float[:, j] * item_metrics[f"ndcg@{k}"]
        hits[k] += valid_float[:, j] * item_metrics[f"recall@{k}"]
    num_future = tf.reduce_sum(valid_float, axis=1)
    ranks = tf.range(1, max(self.ks) + 1, dtype=tf.float32)
    # ideal[r - 1]: DCG of r relevant items on ranks 1..r.
    ideal = tf.cumsum(1.0 / (tf.math.log(ranks + 1.0) / tf.math.log(2.0)))
    metrics = {}
    for k in self.ks:
      ideal_hits = tf.minimum(tf.cast(num_future, tf.int32), k)
      metrics[f"next_ndcg@{k}"] = dcg[k] / tf.gather(ideal, ideal_hits - 1)
      metrics[f"next_recall@{k}"] = hits[k] / num_future
    return {name: metrics[name] for name in self.metric_names()}

  def evaluate(self,
               score_fn: ScoreFn,
               examples: EvalExamples,
               future_targets: np.ndarray,
               progress: bool = False) -> Dict[str, float]:
    """Scores every example against the full catalogue and its next K items.

    Args:
      score_fn: maps a batch of `examples.model_inputs(max_len)` (a dict of tensors with
        batch dimension B) to [B, num_items] scores; higher means more relevant.
      examples: the evaluation examples: their histories and model inputs. `examples.target`
        is not read; `future_targets` holds the targets.
      future_targets: [n, K] int item indices, row i the next K items of `examples` row i; 0
        (and the out-of-vocabulary 1) marks a missing entry. Every row needs at least one
        real item (2 .. num_items - 1); repeated items count once.
      progress: show a progress bar.

    Returns:
      The mean of every metric over the examples ("next_ndcg@k", "next_recall@k"),
      "num_examples" and "k_future" (K).

    Raises:
      ValueError: `future_targets` is not [len(examples), K >= 1] integers in
        [0, num_items), a row has no real future item, a history item is out of range, or
        `score_fn` returns the wrong shape.
    """
    accumulator, k_future = self._accumulate(score_fn, examples, future_targets, progress,
                                             keep_values=False)
    return {**accumulator.result(), "num_examples": accumulator.count, "k_future": k_future}

  def evaluate_per_example(self,
                           score_fn: ScoreFn,
                           examples: EvalExamples,
                           future_targets: np.ndarray,
                           progress: bool = False
                           ) -> Tuple[Dict[str, float], Dict[str, np.ndarray]]:
    """`evaluate`, plus every example's own metric values, from one scoring pass.

    Args:
      score_fn: as in `evaluate`.
      examples: as in `evaluate`.
      future_targets: as in `evaluate`, [n, K].
      progress: show a progress bar.

    Returns:
      (summary, per_example): summary is what `evaluate` returns; per_example maps every
      metric name to [n] float64 values in the order of `examples`, whose means are the
      summary up to float64 rounding.

    Example (the popularity baseline on a tiny synthetic log):
      >>> from tfrs_smoe.data import splits, synthetic
      >>> split = splits.leave_one_out(synthetic.generate_watch_log(
      ...     synthetic.SyntheticConfig(num_users=20, num_titles=30))[0])
      >>> from tfrs_smoe.models import popularity
      >>> model = popularity.PopularityModel(split.item_vocabulary.size)
      >>> model.fit_counts(split.train.item[split.train.positive])
      >>> evaluator = NextKEvaluator(num_items=split.item_vocabulary.size, ks=(5, 10))
      >>> examples, future = NextKEvaluator.leave_one_out_future(split)
      >>> summary, per_example = evaluator.evaluate_per_example(model, examples, future)
      >>> per_example["next_recall@10"].shape  # (len(examples),)
      (20,)
      >>> bool(abs(per_example["next_recall@10"].mean() - summary["next_recall@10"]) < 1e-9)
      True
    """
    accumulator, k_future = self._accumulate(score_fn, examples, future_targets, progress,
                                             keep_values=True)
    summary = {**accumulator.result(), "num_examples": accumulator.count, "k_future": k_future}
    return summary, accumulator.values()

  @staticmethod
  def leave_one_out_future(split: Split) -> Tuple[EvalExamples, np.ndarray]:
    """Next-2 targets of a leave-one-out split: the validation and test items of each user.

    The validation example's history is the training sequence; its next two items are the
    validation target and, in leave-one-out, the same user's test target. A user without a
    test example keeps only the validation target (second column 0).

    Args:
      split: a leave-one-out split (`tfrs_smoe.data.splits.leave_one_out`).

    Returns:
      (examples, future): `split.validation` itself, and [n, 2] int32 future items, row i
      [validation target, test target or 0] of validation row i.

    Raises:
      ValueError: a user has several validation or test examples, or a test target is not
        the positive right after that user's validation target (its history is not the
        validation history plus the validation target), as in a global time split.

    Example (a tiny synthetic log):
      >>> from tfrs_smoe.data import splits, synthetic
      >>> log = synthetic.generate_watch_log(
      ...     synthetic.SyntheticConfig(num_users=20, num_titles=30))[0]
      >>> examples, future = NextKEvaluator.leave_one_out_future(splits.leave_one_out(log))
      >>> future.shape, bool((future[:, 0] == examples.target).all())
      ((20, 2), True)
    """
    validation, test = split.validation, split.test
    for name, examples in (("validation", validation), ("test", test)):
      if len(np.unique(examples.user_index)) != len(examples):
        raise ValueError(f"leave_one_out_future: some users have several {name} examples; "
                         "expected one per user, as in a leave-one-out split.")
    future = np.zeros([len(validation), 2], np.int32)
    future[:, 0] = validation.target
    test_row_of_user = {int(user): row for row, user in enumerate(test.user_index)}
    for row, user in enumerate(validation.user_index):
      test_row = test_row_of_user.get(int(user))
      if test_row is None:
        continue
      validation_history = validation.history.row(row)
      test_history = test.history.row(test_row)
      if (len(test_history) != len(validation_history) + 1 or
          test_history[-1] != validation.target[row]):
        raise ValueError(
            f"leave_one_out_future: the test target of user index {int(user)} is not the "
            "positive right after its validation target (the test history is not the "
            "validation history plus the validation target); use a leave-one-out split.")
      future[row, 1] = test.target[test_row]
    return validation, future

  def _validated_future(self, examples: EvalExamples,
                        future_targets: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Checks `future_targets`; returns it as int32 and its [n, K] validity mask."""
    future = np.asarray(future_targets)
    if future.ndim != 2:
      raise ValueError(f"future_targets must be [num_examples, K], got shape {future.shape}.")
    if future.shape[0] != len(examples):
      raise ValueError(f"future_targets has {future.shape[0]} rows but there are "
                       f"{len(examples)} examples; row i must hold the future of example i.")
    if future.shape[1] < 1:
      raise ValueError("future_targets must have K >= 1 columns, got 0.")
    if not np.issubdtype(future.dtype, np.integer):
      raise ValueError(f"future_targets must hold integer item indices, got {future.dtype}.")
    if future.min() < 0 or future.max() >= self.num_items:
      raise ValueError(f"future_targets must be item indices in [0, {self.num_items}) "
                       f"(0 = missing), got range [{future.min()}, {future.max()}].")
    future = future.astype(np.int32)
    # A real item counts once per row: drop entries equal to an earlier entry of the row.
    repeated = np.any((future[:, :, None] == future[:, None, :]) &
                      np.tri(future.shape[1], k=-1, dtype=bool)[None], axis=2)
    valid = (future >= metrics_lib.NUM_RESERVED_ITEMS) & ~repeated
    empty = np.flatnonzero(~valid.any(axis=1))
    if empty.size:
      raise ValueError(f"{empty.size} rows of future_targets hold no real item (indices >= 2), "
                       f"first row {empty[0]}; next-K metrics need at least one future item.")
    return future, valid

  def _accumulate(self, score_fn: ScoreFn, examples: EvalExamples, future_targets: np.ndarray,
                  progress: bool, keep_values: bool
                  ) -> Tuple[metrics_lib.MetricsAccumulator, int]:
    """Scores all examples batch by batch into an accumulator; also returns K."""
    if not len(examples):
      raise ValueError("No evaluation examples.")
    future, valid = self._validated_future(examples, future_targets)
    history_values = examples.history.values.astype(np.int32)
    history_splits = examples.history.row_splits
    if history_values.size and (history_values.min() < 0 or
                                history_values.max() >= self.num_items):
      raise ValueError(f"History items must be in [0, {self.num_items}).")
    k_future = future.shape[1]
    batch_metrics = self._batch_metrics(k_future)
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
      accumulator.update(batch_metrics(scores, tf.constant(future[start:end]),
                                       tf.constant(valid[start:end]), batch_history))
    return accumulator, k_future
