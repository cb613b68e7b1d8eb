"""Tests for tfrs_smoe.evaluation.metrics against hand-computed values."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfrs_smoe.evaluation import metrics


def _ranking(greater, ties, ks=(1, 5, 10)):
  values = metrics.ranking_metrics(tf.constant(greater), tf.constant(ties), ks)
  return {name: value.numpy() for name, value in values.items()}


def test_rank_counts_ignores_reserved_and_counts_ties():
  # Columns 0 and 1 (padding, OOV) score highest but never compete; item 3 beats the target
  # (item 2, score 0.5) and item 4 ties with it.
  greater, ties = metrics.rank_counts(
      tf.constant([[9.0, 9.0, 0.5, 0.7, 0.5, 0.1]]), tf.constant([2]), tf.zeros([1, 6], tf.bool))
  assert greater.numpy().tolist() == [1]
  assert ties.numpy().tolist() == [1]


def test_rank_counts_exclusion_never_removes_the_target():
  scores = tf.constant([[0.0, 0.0, 0.5, 0.7, 0.5, 0.1],
                        [0.0, 0.0, 0.5, 0.7, 0.5, 0.1]])
  # Row 0 excludes item 3 (the only better item) and item 4 (the tie). Row 1 marks the target
  # itself as excluded, which must change nothing.
  excluded = tf.constant([[False, False, False, True, True, False],
                          [False, False, True, False, False, False]])
  greater, ties = metrics.rank_counts(scores, tf.constant([2, 2]), excluded)
  assert greater.numpy().tolist() == [0, 1]
  assert ties.numpy().tolist() == [0, 1]


def test_rank_counts_without_reserved_columns():
  # Candidate slots: column 0 is the target and columns 1.. are competitors.
  greater, ties = metrics.rank_counts(
      tf.constant([[0.5, 0.9, 0.5, 0.1]]), tf.constant([0]), tf.zeros([1, 4], tf.bool),
      num_reserved=0)
  assert greater.numpy().tolist() == [1]
  assert ties.numpy().tolist() == [1]


def test_ranking_metrics_without_ties():
  # greater=2, ties=0 -> rank 3.
  # ndcg@1 = 0, ndcg@5 = ndcg@10 = 1/log2(4) = 0.5; recall@1 = 0, recall@5 = 1; mrr@5 = 1/3.
  values = _ranking([2], [0])
  np.testing.assert_allclose(values["ndcg@1"], [0.0])
  np.testing.assert_allclose(values["ndcg@5"], [0.5])
  np.testing.assert_allclose(values["ndcg@10"], [0.5])
  np.testing.assert_allclose(values["recall@1"], [0.0])
  np.testing.assert_allclose(values["recall@5"], [1.0])
  np.testing.assert_allclose(values["mrr@5"], [1 / 3], rtol=1e-6)
  np.testing.assert_allclose(values["mrr@10"], [1 / 3], rtol=1e-6)


def test_ranking_metrics_with_ties_is_the_expectation():
  values = _ranking([1, 0, 3, 10], [1, 3, 4, 0])
  # Row 0: greater=1, ties=1 -> rank 2 or 3 with probability 1/2 each.
  #   ndcg@5 = (1/log2(3) + 1/log2(4)) / 2, recall@5 = 1, mrr@5 = (1/2 + 1/3) / 2 = 5/12,
  #   ndcg@1 = recall@1 = 0.
  # Row 1: greater=0, ties=3 -> rank uniform on 1..4.
  #   recall@1 = ndcg@1 = mrr@1 = 1/4, mrr@5 = (1 + 1/2 + 1/3 + 1/4) / 4 = 25/48.
  # Row 2: greater=3, ties=4 -> rank uniform on 4..8.
  #   recall@5 = 2/5 (ranks 4, 5), ndcg@5 = (1/log2(5) + 1/log2(6)) / 5, mrr@5 = (1/4 + 1/5) / 5,
  #   recall@10 = 1, mrr@10 = (1/4 + 1/5 + 1/6 + 1/7 + 1/8) / 5.
  # Row 3: greater=10 -> rank 11, beyond every cutoff: all zero.
  np.testing.assert_allclose(
      values["ndcg@5"],
      [(1 / math.log2(3) + 0.5) / 2, (1 + 1 / math.log2(3) + 0.5 + 1 / math.log2(5)) / 4,
       (1 / math.log2(5) + 1 / math.log2(6)) / 5, 0.0], rtol=1e-6)
  np.testing.assert_allclose(values["recall@1"], [0.0, 0.25, 0.0, 0.0])
  np.testing.assert_allclose(values["ndcg@1"], [0.0, 0.25, 0.0, 0.0])
  np.testing.assert_allclose(values["mrr@1"], [0.0, 0.25, 0.0, 0.0])
  np.testing.assert_allclose(values["recall@5"], [1.0, 1.0, 0.4, 0.0], rtol=1e-6)
  np.testing.assert_allclose(values["mrr@5"], [5 / 12, 25 / 48, (1 / 4 + 1 / 5) / 5, 0.0],
                             rtol=1e-6)
  np.testing.assert_allclose(values["recall@10"], [1.0, 1.0, 1.0, 0.0])
  np.testing.assert_allclose(values["mrr@10"][2], (1 / 4 + 1 / 5 + 1 / 6 + 1 / 7 + 1 / 8) / 5,
                             rtol=1e-6)


def test_constant_scorer_gets_no_credit_from_ties():
  # 12 items, 10 real: a constant scorer ties the target with the 9 other real items, so its
  # rank is uniform on 1..10 and recall@5 = 5/10, not 1 (target first) nor 0 (target last).
  greater, ties = metrics.rank_counts(tf.zeros([1, 12]), tf.constant([4]), tf.zeros([1, 12], bool))
  values = metrics.ranking_metrics(greater, ties, ks=(5,))
  np.testing.assert_allclose(values["recall@5"].numpy(), [0.5])


def test_metric_names_and_order():
  values = _ranking([0], [0], ks=(1, 5))
  assert list(values) == ["ndcg@1", "ndcg@5", "recall@1", "recall@5", "mrr@1", "mrr@5"]
  # Rank 1 scores 1 everywhere.
  assert all(value.tolist() == [1.0] for value in values.values())


@pytest.mark.parametrize("ks", [(), (0, 5), (5, 5)])
def test_invalid_cutoffs_raise(ks):
  with pytest.raises(ValueError):
    metrics.ranking_metrics(tf.constant([0]), tf.constant([0]), ks)


def test_accumulator_means_over_batches():
  accumulator = metrics.MetricsAccumulator()
  accumulator.update({"ndcg@5": tf.constant([1.0, 0.5]), "recall@5": tf.constant([1.0, 1.0])})
  accumulator.update({"ndcg@5": tf.constant([0.0]), "recall@5": tf.constant([0.0])})
  assert accumulator.count == 3
  result = accumulator.result()
  assert result["ndcg@5"] == pytest.approx(0.5)
  assert result["recall@5"] == pytest.approx(2 / 3)


def test_accumulator_rejects_inconsistent_batches():
  accumulator = metrics.MetricsAccumulator()
  with pytest.raises(ValueError):
    accumulator.result()
  with pytest.raises(ValueError):
    accumulator.update({"a": tf.constant([1.0]), "b": tf.constant([1.0, 2.0])})
  accumulator.update({"a": tf.constant([1.0])})
  with pytest.raises(ValueError):
    accumulator.update({"b": tf.constant([1.0])})


def test_accumulator_keeps_every_example_when_asked():
  accumulator = metrics.MetricsAccumulator(keep_values=True)
  accumulator.update({"ndcg@5": tf.constant([1.0, 0.5])})
  accumulator.update({"ndcg@5": tf.constant([0.25])})
  values = accumulator.values()["ndcg@5"]
  np.testing.assert_array_equal(values, [1.0, 0.5, 0.25])
  assert values.mean() == pytest.approx(accumulator.result()["ndcg@5"], abs=1e-12)
  with pytest.raises(ValueError, match="keep_values=True"):
    metrics.MetricsAccumulator().values()
