"""Tests for tfrs_smoe.evaluation.full_ranking."""

import numpy as np
import pytest
import tensorflow as tf

from tfrs_smoe.data.examples import EvalExamples, RaggedArray
from tfrs_smoe.evaluation.full_ranking import FullRankingEvaluator


def _examples(targets, histories):
  n = len(targets)
  return EvalExamples(
      user_index=np.arange(n, dtype=np.int32),
      target=np.asarray(targets, np.int32),
      target_engagement=np.ones([n], np.float32),
      target_timestamp=np.full([n], 1000, np.int64),
      history=RaggedArray.from_rows(histories, np.int32),
      history_timestamps=RaggedArray.from_rows([np.arange(len(h)) for h in histories], np.int64),
      abandoned=RaggedArray.from_rows([[] for _ in range(n)], np.int32),
      seen=RaggedArray.from_rows(histories, np.int32))


def _fixed_scorer(item_scores):
  """Scores every example with the same [num_items] table."""
  table = tf.constant(item_scores, tf.float32)
  return lambda features: tf.tile(table[tf.newaxis], [tf.shape(features["user_index"])[0], 1])


# Items 2..7; item 7 scores highest, then 6, 5, ...; reserved 0 and 1 score higher still and must
# never count.
_DESCENDING = [100.0, 100.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]


def test_history_items_are_excluded():
  evaluator = FullRankingEvaluator(num_items=8, ks=(1, 5))
  # History {7, 6} is excluded, so only item 5 beats target 4: rank 2.
  # ndcg@1 = 0, ndcg@5 = 1/log2(3), recall@5 = 1, mrr@5 = 1/2.
  results = evaluator.evaluate(_fixed_scorer(_DESCENDING), _examples([4], [[7, 6]]))
  assert results["ndcg@1"] == 0.0
  assert results["ndcg@5"] == pytest.approx(1 / np.log2(3))
  assert results["mrr@5"] == pytest.approx(0.5)
  assert results["recall@5"] == 1.0
  assert results["num_examples"] == 1


def test_full_history_is_excluded_not_only_the_model_window():
  # max_len=1 shows the model only item 5, but 7 and 6 are excluded too: target 4 ranks first.
  evaluator = FullRankingEvaluator(num_items=8, ks=(1,), max_len=1)
  results = evaluator.evaluate(_fixed_scorer(_DESCENDING), _examples([4], [[7, 6, 5]]))
  assert results["ndcg@1"] == 1.0


def test_target_in_history_still_competes():
  # Target 4 was consumed before: it stays ranked. History item 7 is excluded, so 6 and 5 beat
  # it: rank 3, mrr@5 = 1/3, ndcg@5 = 1/log2(4) = 0.5.
  evaluator = FullRankingEvaluator(num_items=8, ks=(5,))
  results = evaluator.evaluate(_fixed_scorer(_DESCENDING), _examples([4], [[4, 7]]))
  assert results["mrr@5"] == pytest.approx(1 / 3)
  assert results["ndcg@5"] == pytest.approx(0.5)


def test_ties_with_constant_scores():
  # 10 real items all tie: rank uniform on 1..10 after excluding nothing, recall@5 = 1/2.
  evaluator = FullRankingEvaluator(num_items=12, ks=(5,))
  results = evaluator.evaluate(_fixed_scorer(np.zeros([12])), _examples([3], [[]]))
  assert results["recall@5"] == pytest.approx(0.5)


def _random_examples(num_examples=7, num_items=30, seed=0):
  rng = np.random.default_rng(seed)
  targets = rng.integers(2, num_items, size=num_examples)
  histories = [rng.integers(2, num_items, size=rng.integers(0, 12)) for _ in range(num_examples)]
  return _examples(targets, histories)


def _hashed_scorer(num_items):
  """A deterministic scorer that depends on the user, with few ties."""
  items = tf.range(num_items, dtype=tf.float32)[tf.newaxis]

  def score(features):
    user = tf.cast(features["user_index"], tf.float32)[:, tf.newaxis] + 1.0
    return tf.sin(user * items * 0.37)

  return score


def test_batch_size_invariance():
  examples = _random_examples()
  results = [
      FullRankingEvaluator(num_items=30, batch_size=batch_size).evaluate(_hashed_scorer(30),
                                                                         examples)
      for batch_size in (1, 3, 1000)
  ]
  for other in results[1:]:
    assert other.keys() == results[0].keys()
    for name, value in results[0].items():
      assert other[name] == pytest.approx(value, abs=1e-6), name


def _target_table(examples, num_items):
  return tf.one_hot(examples.target, num_items)


def test_oracle_scores_one_and_anti_oracle_scores_zero():
  examples = _random_examples()
  table = _target_table(examples, 30)
  evaluator = FullRankingEvaluator(num_items=30)
  oracle = evaluator.evaluate(lambda f: tf.gather(table, f["user_index"]), examples)
  anti = evaluator.evaluate(lambda f: -tf.gather(table, f["user_index"]), examples)
  for name in oracle:
    if name != "num_examples":
      assert oracle[name] == pytest.approx(1.0), name
      # At most 11 history items are excluded, so at least 16 real items beat the target.
      assert anti[name] == pytest.approx(0.0), name
  assert oracle["num_examples"] == anti["num_examples"] == 7


def test_smaller_last_batch_does_not_retrace(capsys):
  evaluator = FullRankingEvaluator(num_items=30, batch_size=3)
  evaluator.evaluate(_hashed_scorer(30), _random_examples(num_examples=7), progress=True)
  evaluator.evaluate(_hashed_scorer(30), _random_examples(num_examples=5, seed=1))
  assert evaluator._batch_metrics.experimental_get_tracing_count() == 1
  assert "7/7" in capsys.readouterr().out


def test_bad_inputs_raise():
  evaluator = FullRankingEvaluator(num_items=8)
  with pytest.raises(ValueError, match="score_fn must return"):
    evaluator.evaluate(_fixed_scorer(np.zeros([7])), _examples([4], [[]]))
  with pytest.raises(ValueError, match="real items"):
    evaluator.evaluate(_fixed_scorer(np.zeros([8])), _examples([1], [[]]))
  with pytest.raises(ValueError, match="History"):
    evaluator.evaluate(_fixed_scorer(np.zeros([8])), _examples([4], [[8]]))


def test_batch_size_is_capped_for_large_catalogues():
  evaluator = FullRankingEvaluator(num_items=100_000, batch_size=256,
                                  max_scores_per_batch=1_000_000)
  assert evaluator.batch_size == 10
  assert FullRankingEvaluator(num_items=10, batch_size=256).batch_size == 256


def test_per_example_values_are_what_the_summary_averages():
  examples = _random_examples(num_examples=9)
  evaluator = FullRankingEvaluator(num_items=30, ks=(1, 5), batch_size=4)
  summary, per_example = evaluator.evaluate_per_example(_hashed_scorer(30), examples)
  assert summary == evaluator.evaluate(_hashed_scorer(30), examples)
  assert list(per_example) == ["ndcg@1", "ndcg@5", "recall@1", "recall@5", "mrr@1", "mrr@5"]
  for name, values in per_example.items():
    assert values.shape == (9,)
    assert values.mean() == pytest.approx(summary[name], abs=1e-12), name


def test_per_example_rows_follow_the_examples_with_ties_split():
  evaluator = FullRankingEvaluator(num_items=12, ks=(1, 5))
  examples = _examples([10, 3], [[11], []])
  descending = np.arange(12, dtype=np.float32)
  scores = tf.constant(np.stack([descending, np.zeros([12], np.float32)]))
  summary, per_example = evaluator.evaluate_per_example(
      lambda f: tf.gather(scores, f["user_index"]), examples)
  # Row 0: item 11 excluded, target 10 ranks first. Row 1: 10 tied items, rank uniform 1..10.
  np.testing.assert_allclose(per_example["ndcg@1"], [1.0, 0.1], rtol=1e-6)
  np.testing.assert_allclose(per_example["recall@5"], [1.0, 0.5], rtol=1e-6)
  assert summary["recall@5"] == pytest.approx(0.75)
