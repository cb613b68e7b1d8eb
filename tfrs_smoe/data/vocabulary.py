"""Raw string ids <-> integer indices, with padding and out-of-vocabulary ids reserved."""

import os
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
    if np.char.find(ids, "\n").max(initial=-1) >= 0 or np.char.find(ids, "\r").max(
        initial=-1) >= 0:
      raise ValueError("IdVocabulary: ids may not contain line breaks (vocabulary files hold "
                       "one id per line).")
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

  def __eq__(self, other) -> bool:
    return isinstance(other, IdVocabulary) and np.array_equal(self._ids, other._ids)

  def write(self, path: str) -> str:
    """Writes the known ids to `path`, one per line in index order (line n is index n + 2).

    The format of `tf.lookup.TextFileInitializer` (whole line -> line number), so a SavedModel
    can build its lookup table from the same file as an asset. Written atomically (a temporary
    file renamed into place). Returns `path`.
    """
    directory = os.path.dirname(path)
    if directory:
      os.makedirs(directory, exist_ok=True)
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8", newline="\n") as f:
      f.writelines(f"{raw_id}\n" for raw_id in self._ids)
    os.replace(temporary, path)
    return path

  @classmethod
  def read(cls, path: str) -> "IdVocabulary":
    """The vocabulary that `write` wrote to `path`.

    Raises:
      FileNotFoundError: no file at `path`.
      ValueError: the file's ids are not in index (sorted) order or not distinct.
    """
    with open(path, encoding="utf-8", newline="\n") as f:
      ids = f.read().split("\n")
    if ids and ids[-1] == "":
      ids = ids[:-1]
    vocabulary = cls(ids)
    if not np.array_equal(vocabulary.ids, np.asarray(ids, str)):
      raise ValueError(f"{path}: the ids are not in index order (sorted); it was not written by "
                       "IdVocabulary.write.")
    return vocabulary

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
