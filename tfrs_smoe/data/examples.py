"""Evaluation examples: one target per row, with what the user did before it.

Splits (`tfrs_smoe.data.splits`) produce `EvalExamples`; evaluation protocols
(`tfrs_smoe.evaluation`) consume them. Item and user ids here are vocabulary indices
(`tfrs_smoe.data.vocabulary`): 0 is padding, 1 is out-of-vocabulary, real ids start at 2.
"""

import dataclasses
from typing import Dict, Sequence

import numpy as np


@dataclasses.dataclass
class RaggedArray:
  """Variable-length rows as flat values and row splits (the tf.RaggedTensor encoding).

  Attributes:
    values: [total] values of all rows, row after row.
    row_splits: [num_rows + 1] int64; row i is values[row_splits[i]:row_splits[i + 1]].

  Example:
    >>> rows = RaggedArray.from_rows([[3, 4], [], [5]], np.int32)
    >>> rows.row_splits, rows.lengths()
    (array([0, 2, 2, 3]), array([2, 0, 1]))
  """

  values: np.ndarray
  row_splits: np.ndarray

  def __post_init__(self):
    self.row_splits = np.asarray(self.row_splits, dtype=np.int64)
    if self.row_splits.ndim != 1 or self.row_splits[0] != 0 or self.row_splits[-1] != len(
        self.values) or np.any(np.diff(self.row_splits) < 0):
      raise ValueError("RaggedArray: row_splits must start at 0, be non-decreasing and end at "
                       f"len(values)={len(self.values)}.")

  @classmethod
  def from_rows(cls, rows: Sequence[Sequence], dtype) -> "RaggedArray":
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    values = (np.concatenate([np.asarray(r, dtype=dtype) for r in rows])
              if len(rows) else np.zeros([0], dtype))
    return cls(values.astype(dtype), np.concatenate([[0], np.cumsum(lengths)]))

  def __len__(self) -> int:
    return len(self.row_splits) - 1

  def lengths(self) -> np.ndarray:
    """[num_rows] int64 row lengths."""
    return np.diff(self.row_splits)

  def row(self, i: int) -> np.ndarray:
    return self.values[self.row_splits[i]:self.row_splits[i + 1]]

  def last_padded(self, max_len: int, pad_value=0) -> np.ndarray:
    """[num_rows, max_len]: the last `max_len` values of each row, left-padded, most recent last."""
    lengths = self.lengths()
    out = np.full([len(self), max_len], pad_value, dtype=self.values.dtype)
    # Column j of row i holds values[end_i - max_len + j] when that index is inside row i.
    source = self.row_splits[1:, None] - max_len + np.arange(max_len)[None, :]
    valid = source >= (self.row_splits[1:] - np.minimum(lengths, max_len))[:, None]
    out[valid] = self.values[source[valid]]
    return out


@dataclasses.dataclass
class EvalExamples:
  """One evaluation target per row.

  Attributes:
    user_index: [n] int32 user vocabulary index.
    target: [n] int32 item index of the held-out positive.
    target_engagement: [n] float32 its engagement.
    target_timestamp: [n] int64 its time.
    history: ragged [n, (h)] int32, the user's positives before the target in time order. Full
      ranking excludes these items (never the target itself).
    history_timestamps: ragged [n, (h)] int64, their times.
    abandoned: ragged [n, (a)] int32, items the user abandoned before the target.
    seen: ragged [n, (s)] int32, every item the user interacted with before the target
      (positives and abandonments), for protocols that sample items the user never touched.
  """

  user_index: np.ndarray
  target: np.ndarray
  target_engagement: np.ndarray
  target_timestamp: np.ndarray
  history: RaggedArray
  history_timestamps: RaggedArray
  abandoned: RaggedArray
  seen: RaggedArray

  def __len__(self) -> int:
    return len(self.target)

  def model_inputs(self, max_len: int) -> Dict[str, np.ndarray]:
    """The features a model scores from, as dense arrays with batch dimension n.

    Returns:
      "user_index" [n] int32, "history" [n, max_len] int32 (left-padded with 0, most recent
      last), "history_timestamps" [n, max_len] int64, "timestamp" [n] int64 (the target's time,
      for time-since-interaction features).
    """
    return {
        "user_index": self.user_index.astype(np.int32),
        "history": self.history.last_padded(max_len).astype(np.int32),
        "history_timestamps": self.history_timestamps.last_padded(max_len).astype(np.int64),
        "timestamp": self.target_timestamp.astype(np.int64),
    }
