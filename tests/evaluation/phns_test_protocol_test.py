"""Tests for tfrs_smoe.evaluation.phns_protocol: pools, candidate sets and the evaluator."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tfrs_smoe.data.examples import EvalExamples, RaggedArray
from tfrs_smoe.evaluation import phns_protocol
from tfrs_smoe.evaluation.phns_protocol import (PHNSTestConfig, PHNSTestEvaluator, PopularityPools,
                                            build_candidates)


def _examples(targets, histories, abandoned, extra_seen=None):
  """Examples whose `seen` is history + abandoned (+ extra_seen)."""
  n = len(targets)
  extra_seen = extra_seen or [[] for _ in range(n)]
  seen = [list(h) + list(a) + list(e) for h, a, e in zip(histories, abandoned, extra_seen)]
  return EvalExamples(
      user_index=np.arange(n, dtype=np.int32),
      target=np.asarray(targets, np.int32),
      target_engagement=np.ones([n], np.float32),
      target_timestamp=np.full([n], 1000, np.int64),
      history=RaggedArray.from_rows(histories, np.int32),
      history_timestamps=RaggedArray.from_rows([np.arange(len(h)) for h in histories], np.int64),
      abandoned=RaggedArray.from_rows(abandoned, np.int32),
      seen=RaggedArray.from_rows(seen, np.int32))


# 200 items: trending 2..51, tailing 100..199, items 52..99 in neither pool.
_POOLS = PopularityPools(trending=np.arange(2, 52), tailing=np.arange(100, 200), num_items=200)


def _user_examples():
  # User 0: abandoned 60, 61, 60, 62 in time order (most recent last); has seen trending items
  # 2..11 and tailing items 100..109.
  # User 1: abandoned its own target 70 and item 80, which it also watched positively; neither
  # can be a negative. User 2: no abandoned items.
  return _examples(
      targets=[70, 70, 3],
      histories=[[52, 53], [80, 81], [4]],
      abandoned=[[60, 61, 60, 62], [70, 80, 90], []],
      extra_seen=[list(range(2, 12)) + list(range(100, 110)), [], []])


def test_candidates_layout_and_exclusions():
  examples = _user_examples()
  config = PHNSTestConfig(num_candidates=20, max_abandoned=2)
  candidates, valid = build_candidates(examples, _POOLS, config)
  assert candidates.shape == valid.shape == (3, 20)
  assert candidates.dtype == np.int32 and valid.all()
  np.testing.assert_array_equal(candidates[:, 0], [70, 70, 3])
  # The two most recent distinct abandoned items: 62, then 60 (its later occurrence).
  np.testing.assert_array_equal(candidates[0, 1:3], [62, 60])
  # User 1 keeps only 90: 70 is its target and 80 a positive.
  assert candidates[1, 1] == 90
  for row, example_seen in enumerate([examples.seen.row(i) for i in range(3)]):
    assert len(set(candidates[row])) == 20
    sampled = candidates[row, 1 + [2, 1, 0][row]:]
    assert not set(sampled) & set(example_seen)
    # 19 negatives minus abandoned ones, split half up between the pools:
    # user 0: 17 slots -> 9 trending + 8 tailing; user 1: 18 -> 9 + 9; user 2: 19 -> 10 + 9.
    num_trending = np.isin(sampled, _POOLS.trending).sum()
    assert (num_trending, len(sampled) - num_trending) == [(9, 8), (9, 9), (10, 9)][row]
    assert np.isin(sampled, np.concatenate([_POOLS.trending, _POOLS.tailing])).all()


def test_candidates_are_deterministic_by_seed():
  examples = _user_examples()
  config = PHNSTestConfig(num_candidates=30)
  first, _ = build_candidates(examples, _POOLS, config)
  second, _ = build_candidates(examples, _POOLS, config)
  other, _ = build_candidates(examples, _POOLS, dataclasses.replace(config, seed=1))
  np.testing.assert_array_equal(first, second)
  assert not np.array_equal(first, other)


def test_small_pools_are_topped_up_then_padded():
  examples = _examples(targets=[70], histories=[[3]], abandoned=[[60]])
  config = PHNSTestConfig(num_candidates=10)
  # Trending pool of 3 of which the user saw item 3: 2 trending items, 6 tailing ones top up.
  pools = PopularityPools(trending=[2, 3, 4], tailing=np.arange(100, 200), num_items=200)
  candidates, valid = build_candidates(examples, pools, config)
  assert valid.all()
  assert sorted(candidates[0, 2:4]) == [2, 4]
  assert np.isin(candidates[0, 4:], pools.tailing).all()
  # Tailing pool of 2: 8 slots -> 2 tailing, 6 trending.
  pools = PopularityPools(trending=np.arange(2, 52), tailing=[100, 101], num_items=200)
  candidates, valid = build_candidates(examples, pools, config)
  assert valid.all()
  assert np.isin(candidates[0, 2:], pools.trending).sum() == 6
  assert set(candidates[0, 2:]) >= {100, 101}
  # Both pools nearly empty: target, abandoned 60, items 2 and 100, then padding.
  pools = PopularityPools(trending=[2, 3], tailing=[100], num_items=200)
  candidates, valid = build_candidates(examples, pools, config)
  np.testing.assert_array_equal(valid[0], [True] * 4 + [False] * 6)
  np.testing.assert_array_equal(candidates[0, :2], [70, 60])
  assert sorted(candidates[0, 2:4]) == [2, 100]
  np.testing.assert_array_equal(candidates[0, 4:], 0)


def test_sampling_in_chunks_and_uniformity(monkeypatch):
  # One user per chunk exercises the chunked path; 2000 users each draw 2 of 10 allowed
  # trending items (10 of 12, the user saw items 2 and 3), so each is drawn ~400 times.
  monkeypatch.setattr(phns_protocol, "_MAX_KEYS_PER_CHUNK", 1)
  num_users = 2000
  examples = _examples(targets=[70] * num_users, histories=[[2, 3]] * num_users,
                       abandoned=[[]] * num_users)
  pools = PopularityPools(trending=np.arange(2, 14), tailing=np.arange(100, 102), num_items=200)
  candidates, valid = build_candidates(examples, pools, PHNSTestConfig(num_candidates=5))
  assert valid.all()
  trending = candidates[:, 1:][np.isin(candidates[:, 1:], pools.trending)].reshape(num_users, 2)
  assert (trending[:, 0] != trending[:, 1]).all()
  counts = np.bincount(trending.ravel(), minlength=14)
  assert counts[2] == counts[3] == 0
  assert counts[4:].min() > 300 and counts[4:].max() < 500


def test_pools_from_hand_built_log():
  # Span 0..100, window fraction 0.1 -> recent window [90, 100].
  # Overall counts: 2:5, 3:3, 4:2, 5:1, 6:1, 9:1, 7 and 8 never; reserved 1 ignored.
  # Recent counts: 4:2 (t=95, 96), 5:1 (t=100), 9:1 (t=92).
  log = [(2, 0), (2, 1), (2, 2), (2, 3), (2, 4), (3, 10), (3, 11), (3, 12), (4, 95), (4, 96),
         (5, 100), (6, 50), (9, 92), (1, 99), (1, 98)]
  items, times = np.array(log).T
  pools = PopularityPools.from_log(items, times, num_items=10)
  # Trending by recent count, ties (5 vs 9) by lower index.
  np.testing.assert_array_equal(pools.trending, [4, 5, 9])
  # Least popular half of the 8 real items by (count, index): 7, 8, 5, 6; 5 is trending.
  np.testing.assert_array_equal(pools.tailing, [7, 8, 6])
  small = PopularityPools.from_log(items, times, num_items=10,
                                   config=PHNSTestConfig(trending_pool_size=1, tail_fraction=0.25))
  np.testing.assert_array_equal(small.trending, [4])
  np.testing.assert_array_equal(small.tailing, [7, 8])


def test_invalid_pools_and_config_raise():
  with pytest.raises(ValueError, match="disjoint"):
    PopularityPools(trending=[2, 3], tailing=[3, 4], num_items=10)
  with pytest.raises(ValueError, match="real items"):
    PopularityPools(trending=[1], tailing=[], num_items=10)
  with pytest.raises(ValueError):
    PHNSTestConfig(num_candidates=1)
  with pytest.raises(ValueError):
    PHNSTestConfig(trending_share=1.5)


def test_evaluator_oracle_anti_oracle_and_padding():
  examples = _examples(targets=[70, 71, 72], histories=[[3], [], []],
                       abandoned=[[60, 61], [62], []])
  pools = PopularityPools(trending=[2, 3], tailing=[100], num_items=200)
  evaluator = PHNSTestEvaluator(PHNSTestConfig(num_candidates=10), ks=(1, 5), batch_size=2)

  def oracle(features, candidates):
    # The target (column 0) scores 1, negatives 0 and padding (item 0) 100, which must not count.
    del features
    return tf.where(candidates == 0, 100.0,
                    tf.one_hot(tf.zeros_like(candidates[:, 0]), tf.shape(candidates)[1]))

  results = evaluator.evaluate(oracle, examples, pools)
  for name in ("ndcg@1", "ndcg@5", "recall@1", "recall@5", "mrr@1", "mrr@5"):
    assert results[name] == pytest.approx(1.0), name
  assert results["num_examples"] == 3
  # Abandoned items used: 2, 1, 0.
  assert results["mean_abandoned"] == pytest.approx(1.0)

  # Target scores lowest, so it ranks after every valid negative. User 0: 61, 60, 2 and 100
  # (3 is seen) -> rank 5, mrr@5 = 1/5; user 1: 62, 2, 3, 100 -> rank 5; user 2: 2, 3, 100
  # -> rank 4, mrr@5 = 1/4.
  results = evaluator.evaluate(lambda f, c: -oracle(f, c), examples, pools)
  assert results["recall@1"] == 0.0
  assert results["mrr@5"] == pytest.approx((1 / 5 + 1 / 5 + 1 / 4) / 3)
  assert evaluator._batch_metrics.experimental_get_tracing_count() == 1


def test_evaluator_per_example_values_average_to_the_summary():
  examples = _examples(targets=[70, 71, 72], histories=[[3], [], []],
                       abandoned=[[60, 61], [62], []])
  pools = PopularityPools(trending=[2, 3], tailing=[100], num_items=200)
  evaluator = PHNSTestEvaluator(PHNSTestConfig(num_candidates=10), ks=(5,), batch_size=2)
  # The target scores lowest: ranks 5, 5 and 4 (see the anti-oracle above).
  anti = lambda f, c: -tf.one_hot(tf.zeros_like(c[:, 0]), tf.shape(c)[1])
  summary, per_example = evaluator.evaluate_per_example(anti, examples, pools)
  assert summary == evaluator.evaluate(anti, examples, pools)
  np.testing.assert_allclose(per_example["mrr@5"], [1 / 5, 1 / 5, 1 / 4], rtol=1e-6)
  for name, values in per_example.items():
    assert values.mean() == pytest.approx(summary[name], abs=1e-12), name


def test_a_negative_seed_is_an_error():
  with pytest.raises(ValueError, match="seed"):
    phns_protocol.PHNSTestConfig(seed=-1)
