"""The watch-log schema every data set is converted to.

One row per (user, item, timestamp). `engagement` in [0, 1] is the completion rate (seconds
watched / runtime) for streaming logs, or a proxy such as rating / max rating for rating data. An
interaction with `engagement <= abandonment_threshold` is an abandonment: the user started the
title and left it.

Ids are kept as strings from the raw source; integer indices are assigned later by
`tfrs_smoe.data.vocabulary.ItemVocabulary`, so the same raw ids reach serving unchanged.
"""

import dataclasses
from typing import Any, Dict, Optional

import numpy as np

# The columns of a user's own watch-log files (`tfrs_smoe.data.watch_log_files`) by file, under
# their default names; `data.columns` maps these names to others. Interactions need
# `engagement` or both `watch_seconds` and `runtime_seconds`; items and users need their id.
FILE_COLUMNS = {
    "interactions": ("user_id", "item_id", "timestamp", "watch_seconds", "runtime_seconds",
                     "engagement"),
    "items": ("item_id", "title", "genres", "year", "runtime_seconds"),
    "users": ("user_id",),
}


class DataError(ValueError):
  """Raised for bad input data, with the file, line or column that is wrong."""


def _as_str_array(values) -> np.ndarray:
  array = np.asarray(values)
  if array.dtype.kind == "S" or array.dtype == object:
    array = np.array([v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in array.ravel()],
                     dtype=str)
  return array.astype(str)


@dataclasses.dataclass
class Interactions:
  """Columnar interaction log; every array has shape [num_interactions].

  Attributes:
    user_id: [n] str. Raw user id.
    item_id: [n] str. Raw item id.
    timestamp: [n] int64. Seconds since the epoch (or any monotone clock).
    engagement: [n] float32 in [0, 1]. Completion rate or its proxy.
    watch_seconds: optional [n] float32. Seconds watched (streaming logs).
    runtime_seconds: optional [n] float32. Runtime of the title (streaming logs).
    rating: optional [n] float32. Explicit rating (rating data sets).
  """

  user_id: np.ndarray
  item_id: np.ndarray
  timestamp: np.ndarray
  engagement: np.ndarray
  watch_seconds: Optional[np.ndarray] = None
  runtime_seconds: Optional[np.ndarray] = None
  rating: Optional[np.ndarray] = None

  def __post_init__(self):
    self.user_id = _as_str_array(self.user_id)
    self.item_id = _as_str_array(self.item_id)
    self.timestamp = np.asarray(self.timestamp, dtype=np.int64)
    self.engagement = np.asarray(self.engagement, dtype=np.float32)
    for name in ("watch_seconds", "runtime_seconds", "rating"):
      value = getattr(self, name)
      if value is not None:
        setattr(self, name, np.asarray(value, dtype=np.float32))

  def __len__(self) -> int:
    return len(self.user_id)

  def columns(self) -> Dict[str, np.ndarray]:
    """The present columns by name."""
    return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None}

  def validate(self, source: str = "interactions") -> None:
    """Raises DataError on mismatched lengths, NaN or out-of-range engagement or rating."""
    n = len(self)
    for name, column in self.columns().items():
      if column.shape != (n,):
        raise DataError(f"{source}: column {name!r} has shape {column.shape}, expected ({n},).")
    _check_range(self.engagement, 0.0, 1.0, "engagement", source)
    if self.rating is not None:
      _check_range(self.rating, 0.0, np.inf, "rating", source)
    for name in ("watch_seconds", "runtime_seconds"):
      column = getattr(self, name)
      if column is not None:
        _check_range(column, 0.0, np.inf, name, source)


def _check_range(values: np.ndarray, low: float, high: float, name: str, source: str) -> None:
  bad = ~((values >= low) & (values <= high))  # NaN compares False and lands in `bad`.
  if bad.any():
    first = int(np.flatnonzero(bad)[0])
    raise DataError(
        f"{source}: {int(bad.sum())} value(s) of {name!r} are NaN or outside [{low}, {high}]; "
        f"the first is row {first} with value {values[first]!r}.")


@dataclasses.dataclass
class ItemCatalog:
  """Item metadata; every array has shape [num_items].

  Attributes:
    item_id: [m] str. Raw item id, unique.
    title: [m] str. Human-readable title ("" when unknown).
    genres: [m] str. Genres joined by "|" ("" when none).
    year: [m] int32. Release year, 0 when unknown.
    runtime_seconds: [m] float32. Runtime, 0 when unknown.
    features: extra categorical features by name -> [m] str, "" when unknown (the columns of
      a watch log's items file named in `data.item_features`).
  """

  item_id: np.ndarray
  title: np.ndarray
  genres: np.ndarray
  year: np.ndarray
  runtime_seconds: np.ndarray
  features: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    self.item_id = _as_str_array(self.item_id)
    self.title = _as_str_array(self.title)
    self.genres = _as_str_array(self.genres)
    self.year = np.asarray(self.year, dtype=np.int32)
    self.runtime_seconds = np.asarray(self.runtime_seconds, dtype=np.float32)
    if len(np.unique(self.item_id)) != len(self.item_id):
      raise DataError("ItemCatalog: item ids are not unique.")
    self.features = {name: _as_str_array(column) for name, column in self.features.items()}
    for name, column in self.features.items():
      if column.shape != self.item_id.shape:
        raise DataError(f"ItemCatalog: feature {name!r} has {len(column)} rows, expected "
                        f"{len(self.item_id)}.")

  def __len__(self) -> int:
    return len(self.item_id)

  def genre_vocabulary(self) -> np.ndarray:
    """[num_genres] str, sorted distinct genre names."""
    names = {g for joined in self.genres for g in joined.split("|") if g}
    return np.array(sorted(names), dtype=str)


@dataclasses.dataclass
class UserTable:
  """User features where a data set has them.

  Attributes:
    user_id: [u] str. Raw user id, unique.
    features: name -> [u] array (str or numeric), e.g. "gender", "age", "occupation".
  """

  user_id: np.ndarray
  features: Dict[str, np.ndarray]

  def __post_init__(self):
    self.user_id = _as_str_array(self.user_id)
    for name, column in self.features.items():
      if len(column) != len(self.user_id):
        raise DataError(f"UserTable: feature {name!r} has {len(column)} rows, expected "
                        f"{len(self.user_id)}.")


@dataclasses.dataclass
class WatchLog:
  """A whole data set: interactions, item catalogue, optional user table.

  Attributes:
    name: data set name, e.g. "streaming_logs" or "movielens/latest-small".
    interactions: the log.
    items: catalogue; every item of `interactions` is in it.
    users: optional user features.
    abandonment_threshold: engagement <= this is an abandonment (not a positive).
    metadata: where the log came from, for the run directory: for a watch log read from
      files, "data_dir", "columns" and "source_files" (file -> SHA-256), with the skipped and
      duplicate row counts.
  """

  name: str
  interactions: Interactions
  items: ItemCatalog
  users: Optional[UserTable]
  abandonment_threshold: float
  metadata: Dict[str, Any] = dataclasses.field(default_factory=dict)

  def validate(self) -> None:
    """Raises DataError when the log is inconsistent or out of range."""
    self.interactions.validate(self.name)
    missing = np.setdiff1d(np.unique(self.interactions.item_id), self.items.item_id)
    if missing.size:
      raise DataError(f"{self.name}: {missing.size} item id(s) of the log are not in the "
                      f"catalogue, e.g. {missing[0]!r}.")
    if not 0.0 <= self.abandonment_threshold < 1.0:
      raise DataError(f"{self.name}: abandonment_threshold {self.abandonment_threshold} is not in "
                      "[0, 1).")
