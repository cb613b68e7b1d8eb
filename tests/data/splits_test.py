"""Tests of leave-one-out and global time splits on a hand-built log."""

import numpy as np
import pytest

from tfrs_smoe.data import schema
from tfrs_smoe.data import splits


def _log(rows, threshold=0.05):
  """rows: (user, item, timestamp, engagement)."""
  users, items, times, engagement = zip(*rows)
  item_ids = sorted(set(items))
  return schema.WatchLog(
      name="hand", abandonment_threshold=threshold, users=None,
      interactions=schema.Interactions(user_id=users, item_id=items, timestamp=times,
                                       engagement=engagement),
      items=schema.ItemCatalog(item_id=item_ids, title=item_ids, genres=[""] * len(item_ids),
                               year=[0] * len(item_ids), runtime_seconds=[0] * len(item_ids)))


# User u1: a(1) b(2) x(3, abandoned) c(4) d(5) y(6, abandoned after the last positive).
# User u2: only two positives -> training only. Rows are given out of time order on purpose.
_ROWS = [
    ("u1", "c", 4, 0.9), ("u1", "a", 1, 1.0), ("u1", "b", 2, 0.5), ("u1", "x", 3, 0.01),
    ("u1", "d", 5, 0.8), ("u1", "y", 6, 0.0),
    ("u2", "a", 10, 1.0), ("u2", "d", 11, 1.0), ("u2", "x", 12, 0.02),
]


def _ids(split, indices):
  return list(split.item_vocabulary.to_ids(indices))


def test_leave_one_out_targets_history_and_training_rows():
  log = _log(_ROWS)
  split = splits.leave_one_out(log)
  assert split.items is log.items
  assert _ids(split, split.test.target) == ["d"]
  assert _ids(split, split.validation.target) == ["c"]
  assert _ids(split, split.test.history.row(0)) == ["a", "b", "c"]
  assert list(split.test.history_timestamps.row(0)) == [1, 2, 4]
  assert _ids(split, split.validation.history.row(0)) == ["a", "b"]
  assert _ids(split, split.test.abandoned.row(0)) == ["x"]
  assert _ids(split, split.test.seen.row(0)) == ["a", "b", "x", "c"]
  assert split.test.target_timestamp[0] == 5
  np.testing.assert_allclose(split.test.target_engagement, [0.8])
  # Training: u1 before its validation target (a, b, x), and all of u2.
  train_users = split.user_vocabulary.to_ids(split.train.user)
  assert list(zip(train_users, _ids(split, split.train.item), split.train.positive)) == [
      ("u1", "a", True), ("u1", "b", True), ("u1", "x", False),
      ("u2", "a", True), ("u2", "d", True), ("u2", "x", False)]


def test_implicit_protocol_counts_abandonments_as_positives():
  split = splits.leave_one_out(_log(_ROWS), implicit=True)
  assert _ids(split, split.test.target) == ["y", "x"]
  assert _ids(split, split.validation.target) == ["d", "d"]
  assert split.test.abandoned.values.size == 0


def test_threshold_override_changes_positives():
  # With threshold 0.6 the 0.5-engagement "b" is an abandonment.
  split = splits.leave_one_out(_log(_ROWS), abandonment_threshold=0.6)
  assert _ids(split, split.test.history.row(0)) == ["a", "c"]
  assert _ids(split, split.test.abandoned.row(0)) == ["b", "x"]


def test_leave_one_out_rejects_too_few_positives():
  with pytest.raises(ValueError, match="min_positives"):
    splits.leave_one_out(_log(_ROWS), min_positives=2)


def test_time_split_trains_before_the_cut_and_targets_first_positive_per_period():
  # u1 watches a..j at even times 0..18; u2 watches k..t at odd times 1..19 and abandons r (15).
  rows = [("u1", item, 2 * t, 1.0) for t, item in enumerate("abcdefghij")]
  rows += [("u2", item, 2 * t + 1, 0.0 if item == "r" else 1.0)
           for t, item in enumerate("klmnopqrst")]
  split = splits.time_split(_log(rows), validation_fraction=0.2, test_fraction=0.2)
  # 20 timestamps 0..19: the "lower" 0.6 and 0.8 quantiles are 11 and 15.
  assert list(split.train.timestamp) == [0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9]
  # Validation period [11, 15): u1 g(12), h(14); u2 p(11), q(13). Test period: u1 i(16); u2 s(17)
  # because r(15) is abandoned.
  assert _ids(split, split.validation.target) == ["g", "p"]
  assert _ids(split, split.test.target) == ["i", "s"]
  assert _ids(split, split.test.history.row(1)) == list("klmnopq")
  assert _ids(split, split.test.abandoned.row(1)) == ["r"]


@pytest.mark.parametrize("make_split", [splits.leave_one_out, splits.time_split])
def test_splits_carry_the_logs_users_and_metadata(make_split):
  log = _log(_ROWS)
  log.users = schema.UserTable(user_id=["u1", "u2"], features={"plan": np.array(["a", "b"])})
  log.metadata = {"source_files": {"interactions.csv": "0" * 64}}
  split = make_split(log)
  assert split.users is log.users and split.metadata == log.metadata
