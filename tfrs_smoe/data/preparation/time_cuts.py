"""The cut times of the global time split, exact, computed out of core in two passes.

`splits.time_split` cuts at `np.quantile(timestamps, [1 - v - t, 1 - t], method="lower")`: the
sorted timestamps' elements number floor((n - 1) q). Sorting every timestamp is what an
out-of-core pass avoids, so the same elements are found with two counting passes:

  1. counts per coarse bucket (timestamp >> BUCKET_BITS, about an hour), merged over the log;
     the bucket of each wanted rank follows from the cumulative counts (`locate`);
  2. counts per distinct timestamp inside those buckets only (at most 2 ** BUCKET_BITS values
     each), merged; the wanted elements follow from them (`cut_values`).

Counts are (keys [k] sorted distinct int64, counts [k] int64) pairs, merged by `merge_counts`.
"""

from typing import Sequence, Tuple

import numpy as np

BUCKET_BITS = 12
Counts = Tuple[np.ndarray, np.ndarray]


def value_counts(values: np.ndarray) -> Counts:
  """(sorted distinct values, their counts) of [n] int64 `values`."""
  keys, counts = np.unique(np.asarray(values, np.int64), return_counts=True)
  return keys, counts.astype(np.int64)


def merge_counts(parts: Sequence[Counts]) -> Counts:
  """The counts of several `value_counts` results together.

  Example:
    >>> merge_counts([value_counts([3, 1, 3]), value_counts([3, 7])])
    (array([1, 3, 7]), array([1, 3, 1]))
  """
  parts = [part for part in parts if len(part[0])]
  if not parts:
    return np.zeros([0], np.int64), np.zeros([0], np.int64)
  keys, inverse = np.unique(np.concatenate([k for k, _ in parts]), return_inverse=True)
  counts = np.bincount(inverse.reshape(-1), weights=np.concatenate([c for _, c in parts]),
                       minlength=len(keys))
  return keys, counts.astype(np.int64)


def quantile_ranks(num_values: int, validation_fraction: float,
                   test_fraction: float) -> np.ndarray:
  """[2] the ranks (0-based, in sorted order) of the validation and test cuts among n values.

  The ranks of numpy's "lower" quantile method, with the quantiles computed as `time_split`
  computes them.

  Example:
    >>> ranks = quantile_ranks(101, 0.1, 0.1)
    >>> ranks.tolist(), np.quantile(np.arange(101), [0.8, 0.9], method="lower").tolist()
    ([80, 90], [80, 90])
  """
  quantiles = np.asarray([1 - validation_fraction - test_fraction, 1 - test_fraction])
  return np.clip(np.floor((num_values - 1) * quantiles).astype(np.intp), 0, num_values - 1)


def locate(buckets: Counts, ranks: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """(the bucket of every rank, the rank within its bucket), from pass 1's bucket counts."""
  keys, counts = buckets
  cumulative = np.cumsum(counts)
  index = np.searchsorted(cumulative, ranks, side="right")
  before = np.where(index > 0, cumulative[np.maximum(index - 1, 0)], 0)
  return keys[index], ranks - before


def cut_values(values: Counts, buckets: np.ndarray, within: np.ndarray) -> np.ndarray:
  """[2] the timestamps at rank `within` of `buckets`, from pass 2's counts of their values."""
  keys, counts = values
  result = []
  for bucket, rank in zip(buckets, within):
    mine = (keys >> BUCKET_BITS) == bucket
    cumulative = np.cumsum(counts[mine])
    result.append(keys[mine][np.searchsorted(cumulative, rank, side="right")])
  return np.asarray(result, np.int64)


def check_cuts(cuts: np.ndarray) -> Tuple[int, int]:
  """(validation cut, test cut) as ints; raises as `time_split` does when they coincide.

  Example:
    >>> timestamps = np.array([5, 1, 9, 3, 7, 2, 8, 4, 6, 10])
    >>> ranks = quantile_ranks(len(timestamps), 0.2, 0.2)
    >>> buckets, within = locate(value_counts(timestamps >> BUCKET_BITS), ranks)
    >>> check_cuts(cut_values(value_counts(timestamps), buckets, within))
    (6, 8)
    >>> np.quantile(timestamps, [0.6, 0.8], method="lower").tolist()
    [6, 8]
  """
  validation_cut, test_cut = (int(value) for value in cuts)
  if not validation_cut < test_cut:
    raise ValueError("time_split: the validation and test periods are empty because too many "
                     "interactions share one timestamp; use leave-one-out.")
  return validation_cut, test_cut
