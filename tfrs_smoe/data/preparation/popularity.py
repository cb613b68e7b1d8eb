"""The training split's item counts and the trending / tailing pools of PHNS and the PHNS test.

`phns_protocol.PopularityPools.from_log` builds the pools from the whole training log in
memory. Out of core the log comes in per-shard parts, so the same pools are built from counts
merged over the parts, in two passes: `TrainingCounts` (interactions and positives per item,
first and last training time), then, once the recent window's start is known from the first and
last time, each part's counts inside the window (`recent_counts`). `pools` ranks the items with
`PopularityPools.from_counts`, the ranking `from_log` itself uses.
"""

import dataclasses
from typing import Sequence

import numpy as np

from tfrs_smoe.evaluation import phns_protocol


@dataclasses.dataclass
class TrainingCounts:
  """Counts of (part of) the training split.

  Attributes:
    counts: [num_items] int64 training interactions per item index.
    positive_counts: [num_items] int64 training positives per item index.
    first, last: the earliest and latest training time (None without interactions).

  Example:
    >>> part = TrainingCounts.of(np.array([2, 3, 3]), np.array([10, 20, 90]),
    ...                          np.array([True, False, True]), num_items=5)
    >>> both = TrainingCounts.merge([part, part])
    >>> both.counts.tolist(), both.positive_counts.tolist(), both.first, both.last
    ([0, 0, 2, 4, 0], [0, 0, 2, 2, 0], 10, 90)
    >>> window_start = both.window_start(0.1)  # The last 10 % of [10, 90].
    >>> recent = recent_counts(np.array([2, 3, 3]), np.array([10, 20, 90]), window_start, 5)
    >>> pools(both.counts, recent, trending_pool_size=200, tail_fraction=0.5).trending.tolist()
    [3]
  """

  counts: np.ndarray
  positive_counts: np.ndarray
  first: int = None
  last: int = None

  @classmethod
  def of(cls, item: np.ndarray, timestamp: np.ndarray, positive: np.ndarray,
         num_items: int) -> "TrainingCounts":
    """The counts of [n] training items, times and positive flags."""
    return cls(counts=np.bincount(item, minlength=num_items).astype(np.int64),
               positive_counts=np.bincount(item[positive], minlength=num_items).astype(np.int64),
               first=int(timestamp.min()) if len(timestamp) else None,
               last=int(timestamp.max()) if len(timestamp) else None)

  @classmethod
  def merge(cls, parts: Sequence["TrainingCounts"]) -> "TrainingCounts":
    """The counts of all `parts` (at least one) together."""
    firsts = [p.first for p in parts if p.first is not None]
    lasts = [p.last for p in parts if p.last is not None]
    return cls(counts=np.sum([p.counts for p in parts], axis=0),
               positive_counts=np.sum([p.positive_counts for p in parts], axis=0),
               first=min(firsts) if firsts else None, last=max(lasts) if lasts else None)

  def window_start(self, window_fraction: float) -> float:
    """The start of the trending window, as `PopularityPools.from_log` computes it."""
    if self.first is None:
      raise ValueError("The training split is empty: there are no popularity pools.")
    first, last = np.int64(self.first), np.int64(self.last)
    return last - window_fraction * float(last - first)


def recent_counts(item: np.ndarray, timestamp: np.ndarray, window_start: float,
                  num_items: int) -> np.ndarray:
  """[num_items] int64 training interactions per item at or after `window_start`."""
  in_window = np.asarray(timestamp, np.int64) >= window_start
  return np.bincount(item[in_window], minlength=num_items).astype(np.int64)


def pools(counts: np.ndarray, recent: np.ndarray, trending_pool_size: int,
          tail_fraction: float) -> phns_protocol.PopularityPools:
  """The trending and tailing pools of `PopularityPools.from_log`, from merged counts.

  Args:
    counts: [num_items] training interactions per item index (reserved indices 0).
    recent: [num_items] those in the trending window.
    trending_pool_size: items in the trending pool.
    tail_fraction: the tailing pool's share of the real items.
  """
  return phns_protocol.PopularityPools.from_counts(counts, recent, phns_protocol.PHNSTestConfig(
      trending_pool_size=trending_pool_size, tail_fraction=tail_fraction))
