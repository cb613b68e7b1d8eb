"""The Beam preparation gives the in-memory path's answers: vocabularies, splits, pools, counts.

Each test runs `PreparationPipeline` on the local runner over a tiny log in a tmp_path and
compares what it wrote (read back by `PreparedShards`) with `splits.leave_one_out` /
`splits.time_split` and `PopularityPools.from_log` on the same log loaded in memory.
"""

import json
import os

import numpy as np
import pytest

from tfrs_smoe import config as config_lib
from tfrs_smoe.data import movielens_files
from tfrs_smoe.data import records
from tfrs_smoe.data import schema
from tfrs_smoe.data import splits
from tfrs_smoe.data import synthetic
from tfrs_smoe.data import watch_log_files
from tfrs_smoe.data.preparation import config as preparation_config
from tfrs_smoe.data.preparation import pipeline
from tfrs_smoe.data.preparation import shards
from tfrs_smoe.evaluation import phns_protocol

_SYNTHETIC = synthetic.SyntheticConfig(num_users=30, num_titles=40)


def _prepare(output_dir, data, **settings):
  config = preparation_config.PreparationConfig(data, str(output_dir), **settings)
  return pipeline.PreparationPipeline(config).run()


def _assert_ragged_equal(actual, expected, name):
  np.testing.assert_array_equal(actual.row_splits, expected.row_splits, err_msg=name)
  np.testing.assert_array_equal(actual.values, expected.values, err_msg=name)
  assert actual.values.dtype == expected.values.dtype, name


def _assert_same_answers(output_dir, split: splits.Split):
  """Everything the prepared output holds equals the in-memory split's counterpart."""
  prepared = shards.PreparedShards(output_dir)
  assert prepared.item_vocabulary() == split.item_vocabulary
  assert prepared.user_vocabulary() == split.user_vocabulary
  train = prepared.train()
  for name in ("user", "item", "timestamp", "engagement", "positive"):
    np.testing.assert_array_equal(getattr(train, name), getattr(split.train, name), err_msg=name)
    assert getattr(train, name).dtype == getattr(split.train, name).dtype, name
  for which in ("validation", "test"):
    actual, expected = prepared.examples(which), getattr(split, which)
    for name in ("user_index", "target", "target_engagement", "target_timestamp"):
      np.testing.assert_array_equal(getattr(actual, name), getattr(expected, name),
                                    err_msg=f"{which}.{name}")
    for name in ("history", "history_timestamps", "abandoned", "seen"):
      _assert_ragged_equal(getattr(actual, name), getattr(expected, name), f"{which}.{name}")
  expected_pools = phns_protocol.PopularityPools.from_log(
      split.train.item, split.train.timestamp, split.item_vocabulary.size)
  pools = prepared.pools()
  np.testing.assert_array_equal(pools.trending, expected_pools.trending)
  np.testing.assert_array_equal(pools.tailing, expected_pools.tailing)
  popularity = prepared.popularity()
  np.testing.assert_array_equal(popularity["counts"], np.bincount(
      split.train.item, minlength=split.item_vocabulary.size))
  np.testing.assert_array_equal(popularity["positive_counts"], np.bincount(
      split.train.item[split.train.positive], minlength=split.item_vocabulary.size))
  statistics = prepared.statistics
  assert statistics["num_users"] == split.user_vocabulary.size - 2
  assert statistics["num_items"] == split.item_vocabulary.size - 2
  assert statistics["splits"]["train"]["events"] == len(split.train)
  assert statistics["splits"]["train"]["positives"] == int(split.train.positive.sum())
  assert statistics["splits"]["validation"]["users"] == len(split.validation)
  assert statistics["splits"]["test"]["users"] == len(split.test)
  return prepared


@pytest.fixture(scope="module")
def synthetic_log():
  return synthetic.generate_watch_log(_SYNTHETIC)[0]


def test_synthetic_leave_one_out_gives_the_in_memory_answers(tmp_path, synthetic_log):
  output_dir = tmp_path / "prepared"
  statistics = _prepare(output_dir, config_lib.DataConfig(), num_shards=3, synthetic=_SYNTHETIC)
  prepared = _assert_same_answers(output_dir, splits.leave_one_out(synthetic_log))
  assert statistics["events"] == statistics["rows_read"] == len(synthetic_log.interactions)
  assert statistics["duplicate_rows"] == statistics["bad_rows_total"] == 0
  # Every split has num_shards files; user u is in shard (u - 2) % 3.
  assert [len(prepared.files(s)) for s in ("train", "validation", "test")] == [3, 3, 3]
  # The vocab files are byte for byte those of IdVocabulary.write (the run directory's).
  split = splits.leave_one_out(synthetic_log)
  split.item_vocabulary.write(str(tmp_path / "item_ids.txt"))
  assert ((output_dir / "vocabularies" / "item_ids.txt").read_bytes() ==
          (tmp_path / "item_ids.txt").read_bytes())


def test_synthetic_time_split_gives_the_in_memory_answers(tmp_path, synthetic_log):
  data = config_lib.DataConfig(split="time", validation_fraction=0.15, test_fraction=0.1)
  statistics = _prepare(tmp_path, data, num_shards=2, synthetic=_SYNTHETIC)
  split = splits.time_split(synthetic_log, validation_fraction=0.15, test_fraction=0.1)
  _assert_same_answers(tmp_path, split)
  expected_cuts = np.quantile(synthetic_log.interactions.timestamp, [0.75, 0.9], method="lower")
  assert statistics["protocol"]["time_cuts"] == expected_cuts.tolist()


def test_implicit_protocol_and_another_threshold(tmp_path, synthetic_log):
  data = config_lib.DataConfig(implicit=True)
  _prepare(tmp_path / "implicit", data, num_shards=1, synthetic=_SYNTHETIC)
  _assert_same_answers(tmp_path / "implicit", splits.leave_one_out(synthetic_log, implicit=True))
  data = config_lib.DataConfig(abandonment_threshold=0.5, min_positives=4)
  _prepare(tmp_path / "strict", data, num_shards=4, synthetic=_SYNTHETIC)
  _assert_same_answers(tmp_path / "strict", splits.leave_one_out(
      synthetic_log, min_positives=4, abandonment_threshold=0.5))


def _dirty_watch_log(directory):
  """Two interaction shards (duplicates across them), capped completions, 4 bad rows, and an
  items file with a bad row and a missing item."""
  rng = np.random.default_rng(7)
  rows = []
  for user in range(6):
    times = np.sort(rng.choice(10_000, size=9, replace=False)) + 1_704_067_200
    for time, item in zip(times, rng.choice(12, size=9, replace=False)):
      watched = rng.choice([1, 50, 55, 60, 90])  # 1/60 is an abandonment, 90/60 capped at 1.
      rows.append(f"acct-{user},tt-{item:02d},{time},{watched},60")
  first = rows[:30] + ["acct-0,tt-99,yesterday evening,30,60",  # Not a time.
                       "acct-1,tt-01,1704067200,-5,60",  # Negative seconds.
                       "acct-2,tt-01,1704067200,30"]  # A field missing.
  second = rows[30:] + [rows[3].replace(",60", ",61"), rows[40], ",tt-01,1704067200,30,60"]
  os.makedirs(directory / "interactions")
  header = "user_id,item_id,timestamp,watch_seconds,runtime_seconds\n"
  for name, lines in (("part-0.csv", first), ("part-1.csv", second)):
    (directory / "interactions" / name).write_text(header + "\n".join(lines) + "\n")
  items = "".join(f"tt-{i:02d},Title {i},Drama,20{i:02d}\n" for i in range(11))
  (directory / "items.csv").write_text("item_id,title,genres,year\n" + items +
                                       "tt-03,Again,Drama,2001\n")
  return str(directory)


def test_dirty_watch_log_gives_the_in_memory_answers_and_counts(tmp_path):
  directory = _dirty_watch_log(tmp_path / "log")
  data = config_lib.DataConfig(dataset="watch_log", data_dir=directory, skip_bad_lines=True)
  statistics = _prepare(tmp_path / "prepared", data, num_shards=2)
  log = watch_log_files.WatchLogFiles(directory, watch_log_files.WatchLogFormat(
      skip_bad_lines=True)).read()
  _assert_same_answers(tmp_path / "prepared", splits.leave_one_out(log))
  metadata = log.metadata
  assert statistics["bad_rows"] == metadata["skipped_rows"] == {
      "interactions/part-0.csv": 3, "interactions/part-1.csv": 1, "items.csv": 1}
  assert statistics["duplicate_rows"] == metadata["duplicate_rows"] == 2
  assert statistics["capped_completions"] == metadata["capped_completions"] > 0
  assert statistics["items_without_metadata"] == metadata["items_without_metadata"] == 1
  assert statistics["rows_read"] == len(log.interactions) + 2
  assert statistics["events"] == len(log.interactions)
  assert statistics["source"]["source_files"] == metadata["source_files"]
  # Same stored statistics as returned.
  assert json.loads((tmp_path / "prepared" / "statistics.json").read_text()) == statistics


def test_a_bad_row_fails_with_the_in_memory_message(tmp_path):
  directory = _dirty_watch_log(tmp_path / "log")
  with pytest.raises(schema.DataError) as expected:
    watch_log_files.WatchLogFiles(directory, watch_log_files.WatchLogFormat()).read()
  data = config_lib.DataConfig(dataset="watch_log", data_dir=directory)
  with pytest.raises(schema.DataError) as raised:
    _prepare(tmp_path / "prepared", data)
  assert str(raised.value) == str(expected.value)
  assert "part-0.csv: line 34: expected 5 fields, found 4" in str(raised.value)
  assert not (tmp_path / "prepared" / "statistics.json").exists()


def test_movielens_gives_the_in_memory_answers(tmp_path):
  directory = tmp_path / "ml"
  directory.mkdir()
  movies = "".join(f"{m},Film {m} (19{m + 50}),Drama|Action\n" for m in range(1, 9))
  (directory / "movies.csv").write_text("movieId,title,genres\n" + movies)
  rng = np.random.default_rng(3)
  ratings = [f"{u},{m},{rng.choice([1.0, 2.5, 4.0, 5.0])},{964_982_000 + int(t)}"
             for u in range(1, 6) for m, t in zip(rng.choice(np.arange(1, 9), 6, replace=False),
                                                  rng.choice(5000, 6, replace=False))]
  (directory / "ratings.csv").write_text("userId,movieId,rating,timestamp\n"
                                         + "\n".join(ratings + ["1,x,4.0,964982000"]) + "\n")
  data = config_lib.DataConfig(dataset="movielens/latest-small", data_dir=str(directory),
                               skip_bad_lines=True)
  statistics = _prepare(tmp_path / "prepared", data, num_shards=2)
  result = movielens_files.read_movielens(str(directory), "latest-small", skip_bad_lines=True)
  log = records.watch_log_from_columns("movielens/latest-small", result.columns, 0.4)
  _assert_same_answers(tmp_path / "prepared", splits.leave_one_out(log))
  assert statistics["bad_rows"] == result.skipped == {"movies.csv": 0, "ratings.csv": 1}
  assert statistics["protocol"]["abandonment_threshold"] == 0.4


def test_min_item_count_and_max_items_leave_rare_items_out(tmp_path, synthetic_log):
  statistics = _prepare(tmp_path, config_lib.DataConfig(), num_shards=2, synthetic=_SYNTHETIC,
                        min_item_count=5, max_items=20)
  ids, counts = np.unique(synthetic_log.interactions.item_id, return_counts=True)
  frequent = ids[counts >= 5]
  order = np.lexsort((np.arange(len(frequent)), -counts[counts >= 5]))
  kept = np.sort(frequent[order][:20])
  prepared = shards.PreparedShards(tmp_path)
  np.testing.assert_array_equal(prepared.item_vocabulary().ids, kept)
  left_out = ~np.isin(synthetic_log.interactions.item_id, kept)
  assert statistics["vocabulary"]["events_of_left_out_items"] == int(left_out.sum())
  assert statistics["events"] == int((~left_out).sum())
  # The splits are those of the log without the left-out items' events.
  reduced = schema.WatchLog(
      name="streaming_logs", interactions=schema.Interactions(
          **{n: v[~left_out] for n, v in synthetic_log.interactions.columns().items()}),
      items=schema.ItemCatalog(item_id=kept, title=kept, genres=kept, year=np.zeros(len(kept)),
                               runtime_seconds=np.zeros(len(kept))),
      users=None, abandonment_threshold=synthetic_log.abandonment_threshold)
  # Every user keeps events here, so the user vocabularies agree too.
  _assert_same_answers(tmp_path, splits.leave_one_out(reduced))
