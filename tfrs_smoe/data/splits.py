"""Train / validation / test splits of a watch log, per-user in time order, without leakage.

Positives are interactions with `engagement > abandonment_threshold` (the engagement protocol);
with `implicit=True` every interaction is a positive (the implicit protocol of the sequential
recommendation literature, for comparison with published numbers). Abandonments stay in the
training log, where they feed hard-negative pools, but never become targets or history items.

Two protocols:
- leave-one-out: a user's last positive is the test target, the one before it the validation
  target; the model trains on everything before the validation target. Users with fewer than
  `min_positives` positives only contribute training data.
- global time split: two cut times at the (1 - validation_fraction - test_fraction) and
  (1 - test_fraction) quantiles of all timestamps; the model trains on interactions before the
  first cut; each user's first positive in the validation period (resp. test period) is that
  user's validation (resp. test) target.

An evaluation example's history is every positive of the user strictly before the target in time
order (for the test target of leave-one-out that includes the validation target).
"""

import dataclasses
from typing import Any, Dict, Optional

import numpy as np

from tfrs_smoe.data import examples as examples_lib
from tfrs_smoe.data import schema
from tfrs_smoe.data import vocabulary as vocabulary_lib


@dataclasses.dataclass
class IndexedLog:
  """Interactions as vocabulary indices, sorted by user then time; arrays are [n].

  Attributes:
    user: [n] int32 user index.
    item: [n] int32 item index.
    timestamp: [n] int64.
    engagement: [n] float32.
    positive: [n] bool, engagement above the abandonment threshold (or all, implicit protocol).

  Example:
    >>> log = IndexedLog(user=np.zeros(4, np.int32), item=np.array([2, 3, 4, 5], np.int32),
    ...                  timestamp=np.arange(4), engagement=np.array([.9, .01, .8, .7], np.float32),
    ...                  positive=np.array([True, False, True, True]))
    >>> len(log.take(np.flatnonzero(log.positive)))
    3
  """

  user: np.ndarray
  item: np.ndarray
  timestamp: np.ndarray
  engagement: np.ndarray
  positive: np.ndarray

  def __len__(self) -> int:
    return len(self.user)

  def take(self, rows: np.ndarray) -> "IndexedLog":
    return IndexedLog(**{f.name: getattr(self, f.name)[rows] for f in dataclasses.fields(self)})


@dataclasses.dataclass
class Split:
  """A split ready for training and evaluation.

  Attributes:
    train: the interactions a model may learn from.
    validation: one validation target per eligible user.
    test: one test target per eligible user.
    item_vocabulary: raw item id <-> index (catalogue order).
    user_vocabulary: raw user id <-> index.
    items: the item catalogue (metadata for `item_features.ItemFeatureTables`).
    users: the log's user features, if any (for `user_features.UserFeatureTables`).
    metadata: the log's `WatchLog.metadata` (where its files came from, their SHA-256).
  """

  train: IndexedLog
  validation: examples_lib.EvalExamples
  test: examples_lib.EvalExamples
  item_vocabulary: vocabulary_lib.IdVocabulary
  user_vocabulary: vocabulary_lib.IdVocabulary
  items: schema.ItemCatalog
  users: Optional[schema.UserTable] = None
  metadata: Dict[str, Any] = dataclasses.field(default_factory=dict)

  def positive_counts(self) -> np.ndarray:
    """[num_items] int64 training positives per item index."""
    return np.bincount(self.train.item[self.train.positive],
                       minlength=self.item_vocabulary.size).astype(np.int64)


def index_log(log: schema.WatchLog, implicit: bool = False,
              abandonment_threshold: float = None) -> tuple:
  """Indexes and sorts a log by (user, timestamp); ties keep the log's order.

  Returns:
    (IndexedLog, item vocabulary, user vocabulary).
  """
  threshold = log.abandonment_threshold if abandonment_threshold is None else abandonment_threshold
  if not 0.0 <= threshold < 1.0:
    raise ValueError(f"abandonment_threshold must be in [0, 1), got {threshold}.")
  items = vocabulary_lib.IdVocabulary(log.items.item_id)
  users = vocabulary_lib.IdVocabulary(np.unique(log.interactions.user_id))
  data = log.interactions
  user = users.lookup(data.user_id)
  order = np.lexsort((np.arange(len(data)), data.timestamp, user))
  positive = np.ones(len(data), bool) if implicit else data.engagement > threshold
  indexed = IndexedLog(user=user[order], item=items.lookup(data.item_id)[order],
                       timestamp=data.timestamp[order], engagement=data.engagement[order],
                       positive=positive[order])
  return indexed, items, users


def _user_starts(log: IndexedLog) -> np.ndarray:
  """[n] int64: for each row, the row where its user's block starts."""
  new_user = np.concatenate([[True], log.user[1:] != log.user[:-1]])
  return np.maximum.accumulate(np.where(new_user, np.arange(len(log)), 0))


def _examples_before(log: IndexedLog, target_rows: np.ndarray) -> examples_lib.EvalExamples:
  """Evaluation examples for `target_rows`, each with the user's rows strictly before it."""
  starts = _user_starts(log)[target_rows]
  lengths = target_rows - starts
  example_of_row = np.repeat(np.arange(len(target_rows)), lengths)
  # Row indices of every example's prefix, concatenated: start_e + 0 .. start_e + length_e - 1.
  prefix_rows = np.repeat(starts, lengths) + (
      np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths))

  def ragged(mask: np.ndarray, column: np.ndarray) -> examples_lib.RaggedArray:
    counts = np.bincount(example_of_row[mask], minlength=len(target_rows))
    return examples_lib.RaggedArray(column[prefix_rows[mask]],
                                    np.concatenate([[0], np.cumsum(counts)]))

  positive = log.positive[prefix_rows]
  everything = np.ones_like(positive)
  return examples_lib.EvalExamples(
      user_index=log.user[target_rows],
      target=log.item[target_rows],
      target_engagement=log.engagement[target_rows],
      target_timestamp=log.timestamp[target_rows],
      history=ragged(positive, log.item),
      history_timestamps=ragged(positive, log.timestamp),
      abandoned=ragged(~positive, log.item),
      seen=ragged(everything, log.item))


def leave_one_out(log: schema.WatchLog, implicit: bool = False, min_positives: int = 3,
                  abandonment_threshold: float = None) -> Split:
  """Leave-one-out split (see the module docstring).

  Args:
    log: the watch log.
    implicit: every interaction is a positive.
    min_positives: users with fewer positives get no validation/test target.
    abandonment_threshold: overrides the data set's threshold.
  """
  if min_positives < 3:
    raise ValueError(f"min_positives must be >= 3 (test, validation and one history item), got "
                     f"{min_positives}.")
  indexed, items, users = index_log(log, implicit, abandonment_threshold)
  rows = np.arange(len(indexed))
  positive_rows = rows[indexed.positive]
  positive_users = indexed.user[positive_rows]
  positives_per_user = np.bincount(positive_users, minlength=users.size)
  # For each positive row: how many positives of the same user come after it.
  last_positive_of_user = np.zeros(users.size, np.int64)
  np.maximum.at(last_positive_of_user, positive_users, np.arange(len(positive_rows)))
  after = last_positive_of_user[positive_users] - np.arange(len(positive_rows))
  eligible = positives_per_user[positive_users] >= min_positives
  test_rows = positive_rows[eligible & (after == 0)]
  validation_rows = positive_rows[eligible & (after == 1)]
  # Train rows: all rows of ineligible users, rows before the validation target otherwise.
  validation_row_of_user = np.full(users.size, len(indexed), np.int64)
  validation_row_of_user[indexed.user[validation_rows]] = validation_rows
  train_rows = rows[rows < validation_row_of_user[indexed.user]]
  return Split(train=indexed.take(train_rows),
               validation=_examples_before(indexed, validation_rows),
               test=_examples_before(indexed, test_rows),
               item_vocabulary=items, user_vocabulary=users, items=log.items,
               users=log.users, metadata=log.metadata)


def time_split(log: schema.WatchLog, implicit: bool = False, validation_fraction: float = 0.1,
               test_fraction: float = 0.1, abandonment_threshold: float = None) -> Split:
  """Global time split (see the module docstring).

  Args:
    log: the watch log.
    implicit: every interaction is a positive.
    validation_fraction: share of interactions (by time quantile) in the validation period.
    test_fraction: share of interactions in the test period.
    abandonment_threshold: overrides the data set's threshold.
  """
  if not (0 < validation_fraction and 0 < test_fraction and
          validation_fraction + test_fraction < 1):
    raise ValueError("validation_fraction and test_fraction must be positive with a sum below 1, "
                     f"got {validation_fraction} and {test_fraction}.")
  indexed, items, users = index_log(log, implicit, abandonment_threshold)
  validation_cut, test_cut = np.quantile(
      indexed.timestamp, [1 - validation_fraction - test_fraction, 1 - test_fraction],
      method="lower")
  if not validation_cut < test_cut:
    raise ValueError("time_split: the validation and test periods are empty because too many "
                     "interactions share one timestamp; use leave-one-out.")

  def first_positive_per_user(in_period: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(in_period & indexed.positive)
    _, first = np.unique(indexed.user[rows], return_index=True)
    return rows[first]

  timestamp = indexed.timestamp
  validation_rows = first_positive_per_user((timestamp >= validation_cut) & (timestamp < test_cut))
  test_rows = first_positive_per_user(timestamp >= test_cut)
  return Split(train=indexed.take(np.flatnonzero(timestamp < validation_cut)),
               validation=_examples_before(indexed, validation_rows),
               test=_examples_before(indexed, test_rows),
               item_vocabulary=items, user_vocabulary=users, items=log.items,
               users=log.users, metadata=log.metadata)
