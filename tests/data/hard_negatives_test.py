"""Tests of PHNS training negatives: pools, quotas, top-ups, determinism, no leaked positives."""

import numpy as np
import pytest
import tensorflow as tf

from tfrs_smoe.data import hard_negatives
from tfrs_smoe.data import sequences
from tfrs_smoe.data import splits

NUM_ITEMS = 40


def _log():
  """Users 2 and 3; items 2..39. User 2 abandoned 30, 31, 32 (and 33, which it also liked)."""
  rows = []  # (user, item, time, positive)
  for t, item in enumerate([10, 11, 12, 13, 30, 31, 32, 33, 33]):
    rows.append((2, item, t, item < 30 or (item == 33 and t == 8)))
  for t, item in enumerate([10, 14, 15, 16, 17]):
    rows.append((3, item, t, True))
  # Background users make 10..19 popular and recent (trending), 20..39 the tail.
  for user in range(4, 30):
    for t, item in enumerate(range(10, 20)):
      rows.append((user, item, 100 + t, True))
  user, item, time, positive = (np.array(c) for c in zip(*rows))
  order = np.lexsort((time, user))
  return splits.IndexedLog(user=user[order].astype(np.int32), item=item[order].astype(np.int32),
                           timestamp=time[order].astype(np.int64),
                           engagement=positive[order].astype(np.float32),
                           positive=positive[order].astype(bool))


def _sampler(**config):
  config = hard_negatives.PHNSConfig(**{"preset": "hard", "num_negatives": 10,
                                        "trending_pool_size": 10, "tail_fraction": 0.6,
                                        **config})
  return hard_negatives.HardNegativeSampler.from_log(_log(), NUM_ITEMS, config)


def _negatives(sampler, user, positions=400, seed=(1, 2)):
  """The negatives of one user's positions, sampled in a batch with another user."""
  batch = {"user_index": tf.constant([user, 3], tf.int32),
           "targets": tf.zeros([2, positions, 3], tf.int32)}
  return sampler(batch, tf.constant(seed, tf.int64))["negatives"].numpy()[0]


def test_quotas_of_the_presets():
  assert hard_negatives.PHNSConfig("easy", num_negatives=10).quotas() == (2, 4, 4)
  assert hard_negatives.PHNSConfig("medium", num_negatives=10).quotas() == (3, 4, 3)
  assert hard_negatives.PHNSConfig("hard", num_negatives=10, trending_share=1.0).quotas() == (
      5, 5, 0)
  assert hard_negatives.PHNSConfig("easy", hard_share=0.7, num_negatives=10).quotas()[0] == 7


def test_pools_follow_the_log():
  sampler = _sampler()
  np.testing.assert_array_equal(sampler.hard.values[sampler.hard.row_splits[2]:
                                                    sampler.hard.row_splits[3]],
                                [32, 31, 30])  # 33 is also a positive; most recent first.
  assert set(sampler.trending.numpy()) == set(range(10, 20))
  assert set(sampler.tailing.numpy()) <= set(range(2, 10)) | set(range(20, 40))


def test_shares_hold_and_no_negative_is_a_touched_item():
  negatives = _negatives(_sampler(), user=2)
  assert negatives.shape == (400, 10)
  hard = np.isin(negatives, [30, 31, 32])
  np.testing.assert_array_equal(hard.sum(1), np.full(400, 3))  # 3 abandoned < quota 5: all.
  touched = [10, 11, 12, 13, 30, 31, 32, 33]
  easy = negatives[~hard]
  assert not np.isin(easy, touched).any() and (easy > 0).all()
  trending_share = np.isin(easy, range(10, 20)).mean()
  # Quotas 5 hard, 3 trending (of which 10 - 4 touched remain), 2 tailing; the 2 missing hard
  # slots are topped up from both easy pools.
  assert 0.3 < trending_share < 0.7


def test_user_without_abandoned_items_gets_easy_negatives_only():
  negatives = _negatives(_sampler(preset="medium"), user=3)
  assert not np.isin(negatives, [10, 14, 15, 16, 17]).any()
  assert (negatives > 0).all()


def test_same_seed_same_negatives_other_seed_other_negatives():
  sampler = _sampler()
  np.testing.assert_array_equal(_negatives(sampler, 2), _negatives(sampler, 2))
  assert not np.array_equal(_negatives(sampler, 2), _negatives(sampler, 2, seed=(3, 4)))


def test_empty_pools_give_padding_not_errors():
  sampler = _sampler(trending_pool_size=0, tail_fraction=0.0)
  negatives = _negatives(sampler, user=3, positions=5)  # No hard pool either.
  np.testing.assert_array_equal(negatives, np.zeros([5, 10]))
  unknown_user = _negatives(_sampler(), user=500, positions=2)  # Easy pools only.
  assert (unknown_user > 0).all() and not np.isin(unknown_user, [30, 31, 32]).any()


def test_sequences_get_negatives_per_position_redrawn_each_epoch():
  log = _log()
  pipeline = sequences.SequencePipeline(max_len=6, next_k=2, soft_labels=(1.0, 0.5))
  dataset = _sampler().add_negatives(pipeline.sequences(log).batch(4))
  first = [e["negatives"].numpy() for e in dataset]
  second = [e["negatives"].numpy() for e in dataset]
  assert first[0].shape == (4, 6, 10)
  assert any(not np.array_equal(a, b) for a, b in zip(first, second))
  again = [e["negatives"].numpy()
           for e in _sampler().add_negatives(pipeline.sequences(log).batch(4))]
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a, b)
  windows = _sampler().add_negatives(pipeline.windows(log).batch(5))
  assert next(iter(windows))["negatives"].shape == (5, 10)


def test_default_presets_have_distinct_hard_quotas():
  hard = [hard_negatives.PHNSConfig(preset).quotas()[0] for preset in ("easy", "medium", "hard")]
  assert hard == [2, 3, 5]


@pytest.mark.parametrize("kwargs", [{"preset": "extreme"}, {"hard_share": 1.5},
                                    {"trending_share": -0.1}, {"num_negatives": 0}])
def test_bad_config_is_an_error(kwargs):
  with pytest.raises(ValueError):
    hard_negatives.PHNSConfig(**kwargs)


def test_preset_none_cannot_sample():
  with pytest.raises(ValueError, match="none"):
    _sampler(preset="none")


@pytest.mark.parametrize("kwargs, key", [
    ({"trending_pool_size": -1}, "trending_pool_size"),
    ({"trending_window_fraction": 0.0}, "trending_window_fraction"),
    ({"tail_fraction": 1.5}, "tail_fraction"),
    ({"seed": -1}, "seed")])
def test_bad_pool_settings_name_the_key(kwargs, key):
  with pytest.raises(ValueError, match=key):
    hard_negatives.PHNSConfig(**kwargs)
