"""The per-shard steps: ids to indices, duplicates dropped, events sorted per user, the split.

A shard's events form one block: every user of the shard ((u - 2) % num_shards for user index
u, i.e. line u - 2 of user_ids.txt) with all its events,
sorted by (user, timestamp, item id), as `splits.index_log` sorts the in-memory log (ties in
time keep the log's (timestamp, user id, item id) order, i.e. item id order). Each user's split
is a set of prefix lengths of its events, since every split rule cuts a user's time-ordered
events at a row:

  leave-one-out  test target = the last positive, validation target = the one before, for
                 users with at least `min_positives` positives; training = the events before the
                 validation target (every event of the other users).
  time split     training = the events before the validation cut; validation (test) target =
                 the first positive in [validation cut, test cut) (at or after the test cut).

An evaluation example's context is every event of the user before its target (positives give
the history, the others the abandoned items, all of them the seen items), as in
`splits._examples_before`.
"""

import dataclasses
from typing import Iterator, Optional, Tuple

import numpy as np

from tfrs_smoe.data import vocabulary
from tfrs_smoe.data.preparation import event_batch


def index_and_shard(batch: event_batch.EventBatch, user_ids: np.ndarray, item_ids: np.ndarray,
                    num_shards: int) -> Iterator[Tuple[int, event_batch.EventBatch]]:
  """Looks a raw batch's ids up and yields (shard, the shard's events) for every shard in it.

  Args:
    batch: a raw EventBatch.
    user_ids: [u] str, every user id of the log, sorted (the user vocabulary's ids).
    item_ids: [i] str, every item id of the log, sorted (before min_item_count / max_items).
    num_shards: the number of shards.

  Yields:
    (shard, EventBatch) with "user" the user vocabulary index and "item" the position of the
    item id in `item_ids` (its item code).
  """
  user = (np.searchsorted(user_ids, batch.ids["user"]) + vocabulary.NUM_RESERVED).astype(
      np.int32)[batch.columns["user"]]
  item = np.searchsorted(item_ids, batch.ids["item"]).astype(np.int32)[batch.columns["item"]]
  indexed = batch.with_columns(user=user, item=item)
  shard = (user - vocabulary.NUM_RESERVED) % num_shards
  order = np.argsort(shard, kind="stable")
  bounds = np.searchsorted(shard[order], np.arange(num_shards + 1))
  for index in np.flatnonzero(np.diff(bounds)):
    yield int(index), indexed.take(order[bounds[index]:bounds[index + 1]])


def clean(batches) -> Tuple[event_batch.EventBatch, int]:
  """One shard's batches as a block: duplicates dropped, sorted by (user, timestamp, item).

  A duplicate (user, item, timestamp) event is dropped, the first in reading order kept, as
  `watch_log_files.WatchLogFiles.read` does.

  Returns:
    (the block, the number of duplicate events dropped).
  """
  block = event_batch.EventBatch.concatenate(list(batches))
  user, item, timestamp = (block.columns[n] for n in ("user", "item", "timestamp"))
  order = np.lexsort((block.columns["order"], timestamp, item, user))
  same = ((user[order][1:] == user[order][:-1]) & (item[order][1:] == item[order][:-1]) &
          (timestamp[order][1:] == timestamp[order][:-1]))
  keep = np.ones(len(block), bool)
  keep[order[1:][same]] = False
  rows = np.flatnonzero(keep)
  rows = rows[np.lexsort((item[rows], timestamp[rows], user[rows]))]
  return block.take(rows), int(np.sum(~keep))


def select_items(counts: np.ndarray, min_count: int = 1, max_items: int = 0) -> np.ndarray:
  """The item vocabulary index of every item code: the kept items in id order from 2, else -1.

  Args:
    counts: [i] events per item code (item codes are positions in the sorted item ids).
    min_count: items with fewer events are left out.
    max_items: keep only the max_items most frequent of the others (ties: lower id); 0: all.

  Example:
    >>> select_items(np.array([5, 1, 3, 3]), min_count=2, max_items=2).tolist()
    [2, -1, 3, -1]
  """
  codes = np.flatnonzero(counts >= min_count)
  if max_items and len(codes) > max_items:
    codes = np.sort(codes[np.lexsort((codes, -counts[codes]))][:max_items])
  index = np.full(len(counts), -1, np.int32)
  index[codes] = np.arange(len(codes)) + vocabulary.NUM_RESERVED
  return index


def apply_vocabulary(block: event_batch.EventBatch, item_index: np.ndarray, implicit: bool,
                     threshold: float) -> Tuple[event_batch.EventBatch, int]:
  """Item codes to item vocabulary indices, events of left-out items dropped, positives marked.

  Args:
    block: a cleaned block (item codes).
    item_index: [i] int32, the vocabulary index of each item code, -1 for a left-out item.
    implicit: every event is a positive.
    threshold: otherwise engagement above it is a positive.

  Returns:
    (the block with "item" indices and "positive" [n] bool, the number of events dropped).
  """
  index = item_index[block.columns["item"]]
  kept = block.take(index >= 0)
  engagement = kept.columns["engagement"]
  positive = np.ones(len(kept), bool) if implicit else engagement > threshold
  return kept.with_columns(item=index[index >= 0], positive=positive), int(np.sum(index < 0))


@dataclasses.dataclass
class UserSplits:
  """Every user of a block and where its events are cut; arrays are [num users of the block].

  Attributes:
    user: user vocabulary index.
    start: the block row of the user's first event; the user's events are rows
      [start, start + length).
    length: the user's number of events.
    train_length: the user's first train_length events are its training events.
    validation_row, test_row: the block row of the user's validation / test target, -1 for none;
      the example's context is rows [start, target row).
  """

  user: np.ndarray
  start: np.ndarray
  length: np.ndarray
  train_length: np.ndarray
  validation_row: np.ndarray
  test_row: np.ndarray


def _groups(block: event_batch.EventBatch):
  user = block.columns["user"]
  new_user = np.concatenate([[True], user[1:] != user[:-1]]) if len(user) else np.zeros(0, bool)
  start = np.flatnonzero(new_user)
  group = np.cumsum(new_user) - 1
  length = np.diff(np.concatenate([start, [len(user)]]))
  return user[start], start, length, group


def _first_in(mask: np.ndarray, group: np.ndarray, num_groups: int) -> np.ndarray:
  """[num_groups] the first row of each group where `mask` holds, -1 where none."""
  first = np.full(num_groups, -1, np.int64)
  rows = np.flatnonzero(mask)
  groups, at = np.unique(group[rows], return_index=True)
  first[groups] = rows[at]
  return first


def split_block(block: event_batch.EventBatch, protocol: str, min_positives: int = 3,
                cuts: Optional[Tuple[int, int]] = None) -> UserSplits:
  """Where each user's events are cut (see the module docstring).

  Args:
    block: an indexed block, sorted by (user, timestamp, item), with "positive".
    protocol: "leave_one_out" or "time".
    min_positives: leave-one-out: users with fewer positives only train.
    cuts: time split: (validation cut, test cut), from `time_cuts`.

  Example:
    >>> block = event_batch.EventBatch({  # User 2: positives at 1, 2, 4; user 3: one.
    ...     "user": np.array([2, 2, 2, 2, 3], np.int32), "item": np.arange(5, dtype=np.int32),
    ...     "timestamp": np.array([1, 2, 3, 4, 1]), "engagement": np.ones(5, np.float32),
    ...     "order": np.arange(5), "positive": np.array([True, True, False, True, True])})
    >>> cut = split_block(block, "leave_one_out")
    >>> cut.train_length.tolist(), cut.validation_row.tolist(), cut.test_row.tolist()
    ([1, 1], [1, -1], [3, -1])
    >>> split_block(block, "time", cuts=(2, 4)).train_length.tolist()
    [1, 1]
  """
  user, start, length, group = _groups(block)
  positive = block.columns["positive"]
  rows = np.arange(len(block))
  if protocol == "leave_one_out":
    count = np.bincount(group[positive], minlength=len(user))
    # For each positive, how many positives of the same user come after it.
    after = np.zeros(len(block), np.int64)
    positive_rows = rows[positive]
    last = np.zeros(len(user), np.int64)
    np.maximum.at(last, group[positive_rows], np.arange(len(positive_rows)))
    after[positive_rows] = last[group[positive_rows]] - np.arange(len(positive_rows))
    eligible = (count >= min_positives)[group] & positive
    test_row = _first_in(eligible & (after == 0), group, len(user))
    validation_row = _first_in(eligible & (after == 1), group, len(user))
    train_length = np.where(validation_row >= 0, validation_row - start, length)
  elif protocol == "time":
    validation_cut, test_cut = cuts
    timestamp = block.columns["timestamp"]
    train_length = np.bincount(group[timestamp < validation_cut], minlength=len(user))
    validation_row = _first_in(positive & (timestamp >= validation_cut) & (timestamp < test_cut),
                               group, len(user))
    test_row = _first_in(positive & (timestamp >= test_cut), group, len(user))
  else:
    raise ValueError(f"Unknown split {protocol!r}; use leave_one_out or time.")
  return UserSplits(user=user, start=start, length=length, train_length=train_length,
                    validation_row=validation_row, test_row=test_row)
