"""Tests for tfrs_smoe.evaluation.next_k."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tfrs_smoe.data import schema
from tfrs_smoe.data import splits
from tfrs_smoe.data.examples import EvalExamples, RaggedArray
from tfrs_smoe.evaluation.full_ranking import FullRankingEvaluator
from tfrs_smoe.evaluation.next_k import NextKEvaluator


def _examples(histories, targets=None):
  n = len(histories)
  targets = np.full([n], 2, np.int32) if targets is None else np.asarray(targets, np.int32)
  return EvalExamples(
      user_index=np.arange(n, dtype=np.int32),
      target=targets,
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


def _hashed_scorer(num_items):
  """A deterministic scorer that depends on the user, with few ties."""
  items = tf.range(num_items, dtype=tf.float32)[tf.newaxis]

  def score(features):
    user = tf.cast(features["user_index"], tf.float32)[:, tf.newaxis] + 1.0
    return tf.sin(user * items * 0.37)

  return score


def _discount(rank):
  return 1.0 / np.log2(rank + 1.0)


# Items 2..7; item 7 scores highest, then 6, 5, ...; reserved 0 and 1 score higher still and must
# never count.
_DESCENDING = [100.0, 100.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]


def test_hand_computed_values_with_history_exclusion_missing_and_reserved_entries():
  evaluator = NextKEvaluator(num_items=8, ks=(1, 2, 5))
  examples = _examples([
      [7],     # Row 0: list 6 5 4 3 2; future 6 (rank 1), 3 (rank 4).
      [7, 5],  # Row 1: 5 is in the history but is the future: it competes; list 6 5 4 3 2.
      [],      # Row 2: future [1, 4]: the reserved 1 is ignored; list 7 6 5 4 3 2, 4 at rank 4.
      [],      # Row 3: future [3, 3] counts once; 3 at rank 5.
      [6],     # Row 4: both future items compete, the history item 6 included: 7, 6 first.
  ])
  future = np.array([[6, 3], [5, 0], [1, 4], [3, 3], [7, 6]])
  summary, per_example = evaluator.evaluate_per_example(_fixed_scorer(_DESCENDING), examples,
                                                        future)
  ideal_2 = 1.0 + _discount(2)
  expected = {
      "next_ndcg@1": [1.0, 0.0, 0.0, 0.0, 1.0],
      "next_ndcg@2": [1.0 / ideal_2, _discount(2), 0.0, 0.0, 1.0],
      "next_ndcg@5": [(1.0 + _discount(4)) / ideal_2, _discount(2), _discount(4), _discount(5),
                      1.0],
      "next_recall@1": [0.5, 0.0, 0.0, 0.0, 0.5],
      "next_recall@2": [0.5, 1.0, 0.0, 0.0, 1.0],
      "next_recall@5": [1.0, 1.0, 1.0, 1.0, 1.0],
  }
  assert list(per_example) == list(expected)
  for name, values in expected.items():
    np.testing.assert_allclose(per_example[name], values, rtol=1e-6, err_msg=name)
    assert summary[name] == pytest.approx(np.mean(values), rel=1e-6), name
  assert summary["num_examples"] == 5
  assert summary["k_future"] == 2


def test_full_history_is_excluded_not_only_the_model_window():
  # max_len=1 shows the model only item 5, but 7 and 6 are excluded too: 4 and 3 rank 1 and 2.
  evaluator = NextKEvaluator(num_items=8, ks=(2,), max_len=1)
  results = evaluator.evaluate(_fixed_scorer(_DESCENDING), _examples([[7, 6, 5]]),
                               np.array([[4, 3]]))
  assert results["next_recall@2"] == 1.0
  assert results["next_ndcg@2"] == pytest.approx(1.0)


def test_ties_take_the_expectation_over_random_order():
  # 10 real items all tie: each future item's rank is uniform on 1..10.
  evaluator = NextKEvaluator(num_items=12, ks=(5,))
  results = evaluator.evaluate(_fixed_scorer(np.zeros([12])), _examples([[]]),
                               np.array([[3, 4]]))
  assert results["next_recall@5"] == pytest.approx(0.5)
  expected_dcg = 2 * sum(_discount(r) for r in range(1, 6)) / 10
  assert results["next_ndcg@5"] == pytest.approx(expected_dcg / (1.0 + _discount(2)), rel=1e-6)


def _random_case(num_examples=9, num_items=30, k_future=3, seed=0):
  rng = np.random.default_rng(seed)
  histories = [rng.integers(2, num_items, size=rng.integers(0, 12)) for _ in range(num_examples)]
  future = rng.integers(2, num_items, size=[num_examples, k_future])
  # Missing entries, reserved ids, repeats, and future items from the history in the last column.
  future[0, 1:] = 0
  future[1, 2:] = 1
  future[2, 1:] = future[2, 0]
  for row in range(3, num_examples):
    if len(histories[row]):
      future[row, -1] = histories[row][0]
  return _examples(histories), future


def _reference(scores, histories, future, ks):
  """Sorts each row (no ties) and counts the future items in the top k, in plain numpy."""
  results = {f"next_{name}@{k}": [] for name in ("ndcg", "recall") for k in ks}
  for row_scores, history, row_future in zip(scores, histories, future):
    relevant = set(int(i) for i in row_future if i >= 2)
    eligible = [i for i in range(2, len(row_scores)) if i in relevant or i not in set(history)]
    ranking = sorted(eligible, key=lambda i: -row_scores[i])
    for k in ks:
      hit_ranks = [r + 1 for r, i in enumerate(ranking[:k]) if i in relevant]
      ideal = sum(_discount(r) for r in range(1, min(len(relevant), k) + 1))
      results[f"next_ndcg@{k}"].append(sum(_discount(r) for r in hit_ranks) / ideal)
      results[f"next_recall@{k}"].append(len(hit_ranks) / len(relevant))
  return results


def test_matches_a_plain_numpy_reference():
  examples, future = _random_case()
  scorer = _hashed_scorer(30)
  evaluator = NextKEvaluator(num_items=30, ks=(1, 3, 10), batch_size=4)
  _, per_example = evaluator.evaluate_per_example(scorer, examples, future)
  scores = scorer(examples.model_inputs(50)).numpy()
  histories = [examples.history.row(i) for i in range(len(examples))]
  for name, values in _reference(scores, histories, future, (1, 3, 10)).items():
    np.testing.assert_allclose(per_example[name], values, rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("scores", ["hashed", "constant"])
def test_one_future_item_reduces_to_full_ranking(scores):
  examples, future = _random_case(k_future=1)
  scorer = _hashed_scorer(30) if scores == "hashed" else _fixed_scorer(np.zeros([30]))
  next_k = NextKEvaluator(num_items=30, ks=(1, 5)).evaluate(scorer, examples, future)
  examples.target = future[:, 0].astype(np.int32)
  full = FullRankingEvaluator(num_items=30, ks=(1, 5)).evaluate(scorer, examples)
  for name in ("ndcg@1", "ndcg@5", "recall@1", "recall@5"):
    assert next_k[f"next_{name}"] == pytest.approx(full[name], abs=1e-6), name
  assert next_k["k_future"] == 1


def test_per_example_values_are_what_the_summary_averages_for_every_batch_size():
  examples, future = _random_case()
  reference = None
  for batch_size in (1, 4, 1000):
    evaluator = NextKEvaluator(num_items=30, ks=(1, 5), batch_size=batch_size)
    summary, per_example = evaluator.evaluate_per_example(_hashed_scorer(30), examples, future)
    assert summary == evaluator.evaluate(_hashed_scorer(30), examples, future)
    for name, values in per_example.items():
      assert values.shape == (9,)
      assert values.mean() == pytest.approx(summary[name], abs=1e-12), name
    # One trace serves the smaller last batch and a second call.
    assert evaluator._batch_metrics(3).experimental_get_tracing_count() == 1
    if reference is None:
      reference = per_example
    for name, values in per_example.items():
      np.testing.assert_allclose(values, reference[name], atol=1e-6, err_msg=name)


def _log(rows):
  """rows: (user, item, timestamp, engagement), as in tests/data/splits_test.py."""
  users, items, times, engagement = zip(*rows)
  item_ids = sorted(set(items))
  return schema.WatchLog(
      name="hand", abandonment_threshold=0.05, users=None,
      interactions=schema.Interactions(user_id=users, item_id=items, timestamp=times,
                                       engagement=engagement),
      items=schema.ItemCatalog(item_id=item_ids, title=item_ids, genres=[""] * len(item_ids),
                               year=[0] * len(item_ids), runtime_seconds=[0] * len(item_ids)))


# u1: a b c d e; u2: a d b (three positives: validation d, test b); u3: two positives, training
# only. Rows out of time order on purpose.
_ROWS = [
    ("u1", "c", 3, 1.0), ("u1", "a", 1, 1.0), ("u1", "b", 2, 1.0), ("u1", "x", 4, 0.01),
    ("u1", "d", 5, 1.0), ("u1", "e", 6, 1.0),
    ("u2", "a", 10, 1.0), ("u2", "d", 11, 1.0), ("u2", "b", 12, 1.0),
    ("u3", "a", 20, 1.0), ("u3", "e", 21, 1.0),
]


def _take(examples, rows):
  """The examples at `rows`."""
  fields = {}
  for field in dataclasses.fields(examples):
    value = getattr(examples, field.name)
    if isinstance(value, RaggedArray):
      value = RaggedArray.from_rows([value.row(i) for i in rows], value.values.dtype)
    else:
      value = value[rows]
    fields[field.name] = value
  return EvalExamples(**fields)


def test_leave_one_out_future_pairs_validation_and_test_targets():
  split = splits.leave_one_out(_log(_ROWS))
  examples, future = NextKEvaluator.leave_one_out_future(split)
  assert examples is split.validation
  assert future.shape == (2, 2) and future.dtype == np.int32
  assert list(split.user_vocabulary.to_ids(examples.user_index)) == ["u1", "u2"]
  assert [list(split.item_vocabulary.to_ids(row)) for row in future] == [["d", "e"], ["d", "b"]]
  np.testing.assert_array_equal(future[:, 0], examples.target)
  # End to end: an oracle that scores each row's two future items 1 and the rest 0 retrieves
  # both in its top 2 (one batch, so row i of the table is example i).
  table = np.zeros([2, split.item_vocabulary.size], np.float32)
  np.put_along_axis(table, future, 1.0, axis=1)
  scores = tf.constant(table)
  results = NextKEvaluator(num_items=split.item_vocabulary.size, ks=(2,)).evaluate(
      lambda f: tf.gather(scores, tf.range(tf.shape(f["user_index"])[0])), examples, future)
  assert results["next_recall@2"] == 1.0
  assert results["next_ndcg@2"] == pytest.approx(1.0)


def test_leave_one_out_future_without_a_test_example_keeps_the_validation_target():
  split = splits.leave_one_out(_log(_ROWS))
  u2 = split.user_vocabulary.lookup(np.array(["u2"]))[0]
  only_u1 = np.flatnonzero(split.test.user_index != u2)
  _, future = NextKEvaluator.leave_one_out_future(
      dataclasses.replace(split, test=_take(split.test, only_u1)))
  assert [list(split.item_vocabulary.to_ids(row[:1])) for row in future] == [["d"], ["d"]]
  assert list(future[:, 1] == 0) == [False, True]


def test_leave_one_out_future_rejects_a_time_split():
  # u1 watches a..j at even times; the validation target g (12) and the test target i (16) have
  # h (14) between them, so i is not the item after g.
  rows = [("u1", item, 2 * t, 1.0) for t, item in enumerate("abcdefghij")]
  rows += [("u2", item, 2 * t + 1, 1.0) for t, item in enumerate("klmnopqrst")]
  split = splits.time_split(_log(rows), validation_fraction=0.2, test_fraction=0.2)
  with pytest.raises(ValueError, match="not the positive right after"):
    NextKEvaluator.leave_one_out_future(split)


def test_bad_inputs_raise():
  evaluator = NextKEvaluator(num_items=8)
  scorer = _fixed_scorer(np.zeros([8]))
  examples = _examples([[], []])
  with pytest.raises(ValueError, match="has 1 rows but there are 2 examples"):
    evaluator.evaluate(scorer, examples, np.array([[3, 4]]))
  with pytest.raises(ValueError, match="K >= 1"):
    evaluator.evaluate(scorer, examples, np.zeros([2, 0], np.int64))
  with pytest.raises(ValueError, match=r"\[0, 8\).*range \[0, 8\]"):
    evaluator.evaluate(scorer, examples, np.array([[3, 8], [2, 0]]))
  with pytest.raises(ValueError, match=r"range \[-1, 3\]"):
    evaluator.evaluate(scorer, examples, np.array([[3, -1], [2, 0]]))
  with pytest.raises(ValueError, match="integer"):
    evaluator.evaluate(scorer, examples, np.array([[3.0], [2.0]]))
  with pytest.raises(ValueError, match=r"\[num_examples, K\]"):
    evaluator.evaluate(scorer, examples, np.array([3, 4]))
  with pytest.raises(ValueError, match="1 rows of future_targets hold no real item.*row 1"):
    evaluator.evaluate(scorer, examples, np.array([[3, 0], [1, 0]]))
  with pytest.raises(ValueError, match="score_fn must return"):
    evaluator.evaluate(_fixed_scorer(np.zeros([7])), examples, np.array([[3], [4]]))
  with pytest.raises(ValueError, match="History"):
    evaluator.evaluate(scorer, _examples([[8], []]), np.array([[3], [4]]))
  with pytest.raises(ValueError, match="No evaluation examples"):
    evaluator.evaluate(scorer, _examples([]), np.zeros([0, 2], np.int64))
  with pytest.raises(ValueError, match="ks must be"):
    NextKEvaluator(num_items=8, ks=(0,))
