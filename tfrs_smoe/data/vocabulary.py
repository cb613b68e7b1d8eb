"""Raw string ids <-> integer indices, with padding and out-of-vocabulary ids reserved."""

from typing import Sequence

import numpy as np
import tensorflow as tf

PADDING_INDEX = 0
OOV_INDEX = 1
NUM_RESERVED = 2


class IdVocabulary:
  """Maps raw ids to indices: 0 is padding (""), 1 is out-of-vocabulary, known ids are 2..size-1.

  The same mapping is available as a `tf.keras.layers.StringLookup`, so that training pipelines
  (numpy) and exported models (graph) agree on every index.

  Args:
    ids: [num_ids] distinct raw ids (str). Stored sorted, so the mapping does not depend on the
      order the ids were seen in.

  Example:
    >>> vocabulary = IdVocabulary(["b", "a"])
    >>> vocabulary.lookup(["a", "b", "zzz", ""])
    array([2, 3, 1, 0], dtype=int32)
  """

  def __init__(self, ids: Sequence[str]):
    ids = np.asarray(ids).astype(str)
    if (ids == "").any():
      raise ValueError("IdVocabulary: the empty string is reserved for padding.")
    self._ids = np.unique(ids)
    if len(self._ids) != len(ids):
      raise ValueError("IdVocabulary: ids are not distinct.")

  @property
  def size(self) -> int:
    """Number of indices, reserved ones included."""
    return len(self._ids) + NUM_RESERVED

  @property
  def ids(self) -> np.ndarray:
    """[size - 2] str, the known ids in index order (index = position + 2)."""
    return self._ids

  def lookup(self, raw_ids: Sequence[str]) -> np.ndarray:
    """[n] int32 indices of `raw_ids` ([n] str)."""
    raw_ids = np.asarray(raw_ids).astype(str)
    position = np.searchsorted(self._ids, raw_ids)
    position = np.minimum(position, len(self._ids) - 1)
    known = self._ids[position] == raw_ids
    indices = np.where(known, position + NUM_RESERVED, OOV_INDEX)
    return np.where(raw_ids == "", PADDING_INDEX, indices).astype(np.int32)

  def to_ids(self, indices: Sequence[int]) -> np.ndarray:
    """[n] str raw ids of `indices`; padding gives "" and OOV gives "[UNK]"."""
    indices = np.asarray(indices)
    table = np.concatenate([["", "[UNK]"], self._ids])
    return table[indices]

  def keras_lookup(self) -> tf.keras.layers.StringLookup:
    """A StringLookup layer with exactly this mapping, for Keras models fed raw string ids."""
    return tf.keras.layers.StringLookup(
        vocabulary=list(self._ids), mask_token="", num_oov_indices=1, output_mode="int")
