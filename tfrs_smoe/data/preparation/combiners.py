"""One Beam CombineFn for every global merge of the pipeline, and the merges it applies.

Each global value (the distinct ids, item counts, time counts, training counts, the reports) is
a merge of per-element parts: `MergeFn(merge, empty)` keeps parts in a list, merges them with
`merge(parts)` whenever more than `compact_every` pile up (so the accumulator stays small on a
long stream) and once more at the end; `empty()` is the value of an empty input.
"""

from typing import Any, Callable, Dict, List, Sequence, Tuple

import apache_beam as beam
import numpy as np

# How many bad-row examples the statistics keep.
NUM_EXAMPLES = 3


class MergeFn(beam.CombineFn):
  """Combines parts with an associative `merge(list of parts) -> part`.

  Args:
    merge: merges a non-empty list of parts into one.
    empty: the output for no input at all.
    compact_every: parts held before they are merged.

  Example:
    >>> import apache_beam as beam
    >>> with beam.Pipeline() as pipeline:
    ...   total = (pipeline | beam.Create([np.ones(3), np.arange(3)])
    ...            | beam.CombineGlobally(MergeFn(sum_arrays, lambda: None))
    ...            | beam.Map(lambda value: print(value.tolist())))
    [1.0, 2.0, 3.0]
  """

  def __init__(self, merge: Callable[[List[Any]], Any], empty: Callable[[], Any],
               compact_every: int = 32):
    super().__init__()
    self._merge = merge
    self._empty = empty
    self._compact_every = compact_every

  def _compact(self, parts: List[Any]) -> List[Any]:
    return [self._merge(parts)] if len(parts) > self._compact_every else parts

  def create_accumulator(self) -> List[Any]:
    return []

  def add_input(self, accumulator: List[Any], element: Any) -> List[Any]:
    accumulator.append(element)
    return self._compact(accumulator)

  def merge_accumulators(self, accumulators) -> List[Any]:
    return self._compact([part for accumulator in accumulators for part in accumulator])

  def extract_output(self, accumulator: List[Any]) -> Any:
    return self._merge(accumulator) if accumulator else self._empty()


def sum_arrays(parts: Sequence[np.ndarray]) -> np.ndarray:
  """The element-wise sum of equal-shape arrays."""
  return np.sum(parts, axis=0)


def distinct_ids(parts: Sequence[Tuple[np.ndarray, np.ndarray]]) -> Tuple[np.ndarray, np.ndarray]:
  """(sorted distinct user ids, sorted distinct item ids) of (user ids, item ids) parts."""
  return tuple(np.unique(np.concatenate([part[i] for part in parts])).astype(str)
               for i in range(2))


def no_ids() -> Tuple[np.ndarray, np.ndarray]:
  return np.zeros([0], str), np.zeros([0], str)


def merge_reports(parts: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
  """Reports merged: numbers summed, dicts merged key by key, lists joined (examples capped).

  Example:
    >>> merge_reports([{"rows_read": 2, "bad_rows": {"a.csv": 1}, "bad_row_examples": ["x"]},
    ...                {"rows_read": 3, "bad_rows": {"a.csv": 0, "b.csv": 2}}])
    {'rows_read': 5, 'bad_rows': {'a.csv': 1, 'b.csv': 2}, 'bad_row_examples': ['x']}
  """
  merged: Dict[str, Any] = {}
  for part in parts:
    for key, value in part.items():
      if isinstance(value, dict):
        merged[key] = merge_reports([merged.get(key, {}), value])
      elif isinstance(value, list):
        merged[key] = (merged.get(key, []) + value)[:NUM_EXAMPLES]
      else:
        merged[key] = merged.get(key, 0) + value
  return merged
