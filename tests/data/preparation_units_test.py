"""The preparation's pieces against hand computations and numpy: time cuts, item selection,
per-user split rules, batches, report merging and the config's checks (no Beam run)."""

import itertools
import re

import numpy as np
import pytest

from tfrs_smoe import config as config_lib
from tfrs_smoe.data.preparation import combiners
from tfrs_smoe.data.preparation import config as preparation_config
from tfrs_smoe.data.preparation import event_batch
from tfrs_smoe.data.preparation import time_cuts
from tfrs_smoe.data.preparation import user_blocks


def _cuts_in_parts(timestamps, parts, validation_fraction, test_fraction):
  """time_cuts' two passes over `timestamps` cut into `parts` pieces."""
  pieces = np.array_split(timestamps, parts)
  buckets = time_cuts.merge_counts(
      [time_cuts.value_counts(p >> time_cuts.BUCKET_BITS) for p in pieces])
  ranks = time_cuts.quantile_ranks(len(timestamps), validation_fraction, test_fraction)
  where = time_cuts.locate(buckets, ranks)
  values = time_cuts.merge_counts([time_cuts.value_counts(
      p[np.isin(p >> time_cuts.BUCKET_BITS, where[0])]) for p in pieces])
  return time_cuts.cut_values(values, *where)


@pytest.mark.parametrize("size,spread,fractions", list(itertools.product(
    [1, 2, 7, 1000], [3, 10_000, 10**9], [(0.1, 0.1), (0.15, 0.1), (0.3, 0.05)])))
def test_time_cuts_are_numpys_lower_quantiles(size, spread, fractions):
  rng = np.random.RandomState(size + spread)
  timestamps = 1_700_000_000 + rng.randint(0, spread, size=size).astype(np.int64)  # Ties too.
  expected = np.quantile(timestamps, [1 - fractions[0] - fractions[1], 1 - fractions[1]],
                         method="lower")
  np.testing.assert_array_equal(_cuts_in_parts(timestamps, 3, *fractions), expected)


def test_equal_cuts_fail_as_the_time_split_does():
  with pytest.raises(ValueError, match="too many interactions share one timestamp"):
    time_cuts.check_cuts(np.array([5, 5]))


def test_select_items_by_count_then_id():
  counts = np.array([4, 9, 1, 4, 4, 0])
  assert user_blocks.select_items(counts).tolist() == [2, 3, 4, 5, 6, -1]  # count >= 1
  assert user_blocks.select_items(counts, min_count=4).tolist() == [2, 3, -1, 4, 5, -1]
  # Top 3: item 1 (9), then the ties at 4 by lower id: items 0 and 3.
  assert user_blocks.select_items(counts, max_items=3).tolist() == [2, 3, -1, 4, -1, -1]


def _block(user, timestamp, positive):
  n = len(user)
  return event_batch.EventBatch({
      "user": np.asarray(user, np.int32), "item": np.arange(2, n + 2, dtype=np.int32),
      "timestamp": np.asarray(timestamp, np.int64), "engagement": np.ones(n, np.float32),
      "order": np.arange(n), "positive": np.asarray(positive, bool)})


def test_split_block_matches_the_in_memory_leave_one_out_rules():
  rng = np.random.RandomState(0)
  user = np.sort(rng.randint(2, 12, size=80)).astype(np.int32)
  timestamp = np.concatenate([np.sort(rng.randint(0, 100, size=c))
                              for c in np.bincount(user)[2:]])
  positive = rng.rand(80) < 0.6
  block = _block(user, timestamp, positive)
  for min_positives in (3, 5):
    cut = user_blocks.split_block(block, "leave_one_out", min_positives)
    for g, u in enumerate(cut.user):
      rows = np.flatnonzero(user == u)
      positives = rows[positive[rows]]
      if len(positives) >= min_positives:
        assert (cut.test_row[g], cut.validation_row[g]) == (positives[-1], positives[-2])
        assert cut.train_length[g] == positives[-2] - rows[0]
      else:
        assert (cut.test_row[g], cut.validation_row[g]) == (-1, -1)
        assert cut.train_length[g] == len(rows)


def test_split_block_time_rules():
  block = _block([2, 2, 2, 2, 2, 3, 3], [1, 5, 6, 8, 9, 7, 9],
                 [True, False, True, True, True, False, True])
  cut = user_blocks.split_block(block, "time", cuts=(5, 8))
  assert cut.train_length.tolist() == [1, 0]  # Before the validation cut.
  assert cut.validation_row.tolist() == [2, -1]  # First positive in [5, 8): row 2 (time 6).
  assert cut.test_row.tolist() == [3, 6]  # First positive at or after 8.
  with pytest.raises(ValueError, match="Unknown split 'random'"):
    user_blocks.split_block(block, "random")


def test_clean_drops_duplicates_keeping_the_first_read_and_sorts_per_user():
  batch = event_batch.EventBatch({
      "user": np.array([3, 2, 3, 2, 2], np.int32), "item": np.array([5, 4, 5, 9, 4], np.int32),
      "timestamp": np.array([7, 8, 7, 1, 8]), "engagement": np.array([.1, .2, .3, .4, .5],
                                                                     np.float32),
      "order": np.array([4, 3, 0, 1, 2])})
  block, duplicates = user_blocks.clean([batch.take([0, 1]), batch.take([2, 3, 4])])
  assert duplicates == 2
  assert block.columns["user"].tolist() == [2, 2, 3]
  assert block.columns["timestamp"].tolist() == [1, 8, 7]
  # (2, 4, 8) was read first at order 2 (0.5), (3, 5, 7) at order 0 (0.3).
  np.testing.assert_allclose(block.columns["engagement"], [.4, .5, .3])


def test_index_and_shard_looks_ids_up_and_keys_users_by_index():
  batch = event_batch.EventBatch.from_ids(["b", "c", "a", "c"], ["y", "x", "x", "z"],
                                          [1, 2, 3, 4], [1, 1, 1, 1], order=np.arange(4))
  users, items = np.array(["a", "b", "c"]), np.array(["w", "x", "y", "z"])
  shards = dict(user_blocks.index_and_shard(batch, users, items, num_shards=2))
  assert sorted(shards) == [0, 1]
  assert shards[0].columns["user"].tolist() == [4, 2, 4]  # c -> 4, a -> 2: even indices.
  assert shards[0].columns["item"].tolist() == [1, 1, 3]  # x, x, z as codes into `items`.
  assert shards[1].columns["user"].tolist() == [3] and not shards[1].ids


def test_ties_in_time_are_in_item_id_order():
  # Two events of one user at one time: index_log keeps the log's (time, user, item id) order,
  # which clean() reproduces with item codes (positions among the sorted item ids).
  block, _ = user_blocks.clean([event_batch.EventBatch({
      "user": np.array([2, 2], np.int32), "item": np.array([7, 3], np.int32),
      "timestamp": np.array([5, 5]), "engagement": np.ones(2, np.float32),
      "order": np.array([0, 1])})])
  assert block.columns["item"].tolist() == [3, 7]


def test_merge_reports_sums_numbers_and_files():
  merged = combiners.merge_reports([{"rows_read": 1, "splits": {"train": {"users": 2}}},
                                    {"rows_read": 4, "splits": {"train": {"users": 3}}}])
  assert merged == {"rows_read": 5, "splits": {"train": {"users": 5}}}


@pytest.mark.parametrize("key,value,message", [
    ("num_shards", 0, "preparation.num_shards must be an integer in [1, 100000], got 0."),
    ("min_item_count", 0, "preparation.min_item_count must be an integer >= 1, got 0."),
    ("max_items", -1, "preparation.max_items must be an integer >= 0"),
    ("trending_window_fraction", 0.0, "preparation.trending_window_fraction must be in (0, 1]"),
    ("tail_fraction", 1.5, "preparation.tail_fraction must be in [0, 1], got 1.5."),
    ("batch_size", 0, "preparation.batch_size must be an integer >= 1, got 0."),
])
def test_config_names_the_bad_key(key, value, message):
  with pytest.raises(ValueError, match="^" + re.escape(message)):
    preparation_config.PreparationConfig(config_lib.DataConfig(), "out", **{key: value})


def test_synthetic_settings_need_streaming_logs():
  with pytest.raises(ValueError, match="preparation.synthetic is for streaming_logs only"):
    preparation_config.PreparationConfig(
        config_lib.DataConfig(dataset="watch_log", data_dir="x"), "out",
        synthetic=preparation_config.synthetic_catalog.SyntheticConfig())
