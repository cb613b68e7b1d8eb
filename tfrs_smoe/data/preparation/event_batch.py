"""A batch of events as numpy columns: the element every step of the preparation moves.

Raw batches, as the sources read them, carry their ids dictionary-encoded: the distinct raw ids
of the batch (`ids["user"]`, `ids["item"]`, sorted) and, per event, the position of its id
among them (`columns["user"]`, `columns["item"]`). So a batch pickles as a few int arrays plus
one short string array per id column, whatever the ids' length, and the vocabulary step reads
the distinct ids without touching the events. Once the ids are looked up in the vocabularies
(`user_blocks`), a batch holds indices and no `ids`.
"""

import dataclasses
from typing import Dict, Sequence

import numpy as np

# The event columns of every batch and their dtypes; "order" is the reading order (work item,
# row), which decides which of two duplicate events is kept.
COLUMNS = {"user": np.int32, "item": np.int32, "timestamp": np.int64, "engagement": np.float32,
           "order": np.int64}


@dataclasses.dataclass
class EventBatch:
  """Equal-length event columns, with the raw ids they index where they are not indices yet.

  Attributes:
    columns: name -> [n] array, the names and dtypes of `COLUMNS` (more are allowed, e.g.
      "positive" [n] bool once the protocol is applied).
    ids: "user" / "item" -> [d] str, the distinct raw ids columns["user"] / ["item"] index;
      empty once the columns hold vocabulary indices.

  Example:
    >>> batch = EventBatch.from_ids(["u2", "u1", "u2"], ["m1", "m1", "m9"], [30, 10, 20],
    ...                             [0.9, 0.5, 0.01], order=[0, 1, 2])
    >>> batch.ids["user"], batch.columns["user"]
    (array(['u1', 'u2'], dtype='<U2'), array([1, 0, 1], dtype=int32))
    >>> len(batch.take([0, 2])), batch.raw("item").tolist()
    (2, ['m1', 'm1', 'm9'])
  """

  columns: Dict[str, np.ndarray]
  ids: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    lengths = {name: len(values) for name, values in self.columns.items()}
    if len(set(lengths.values())) > 1:
      raise ValueError(f"EventBatch: the columns differ in length: {lengths}.")

  @classmethod
  def from_ids(cls, user_id: Sequence[str], item_id: Sequence[str], timestamp: Sequence[int],
               engagement: Sequence[float], order: Sequence[int]) -> "EventBatch":
    """A raw batch of [n] raw ids, times, engagement (cast to float32) and reading order."""
    columns, ids = {}, {}
    for name, raw in (("user", user_id), ("item", item_id)):
      ids[name], code = np.unique(np.asarray(raw).astype(str), return_inverse=True)
      columns[name] = code.reshape(-1).astype(np.int32)
    columns["timestamp"] = np.asarray(timestamp, np.int64)
    columns["engagement"] = np.asarray(engagement, np.float32)
    columns["order"] = np.asarray(order, np.int64)
    return cls(columns, ids)

  @classmethod
  def concatenate(cls, batches: Sequence["EventBatch"]) -> "EventBatch":
    """The events of index batches (no `ids`) one after the other; [] gives an empty batch."""
    if any(batch.ids for batch in batches):
      raise ValueError("EventBatch.concatenate: raw batches (with ids) cannot be concatenated.")
    if not batches:
      return cls({name: np.zeros([0], dtype) for name, dtype in COLUMNS.items()})
    return cls({name: np.concatenate([batch.columns[name] for batch in batches])
                for name in batches[0].columns})

  def __len__(self) -> int:
    return len(self.columns["timestamp"])

  def raw(self, name: str) -> np.ndarray:
    """[n] str, the raw ids of column "user" or "item" of a raw batch."""
    return self.ids[name][self.columns[name]]

  def take(self, rows) -> "EventBatch":
    """The events at `rows` ([k] indices or a [n] bool mask), with the same `ids`."""
    return EventBatch({name: values[rows] for name, values in self.columns.items()}, self.ids)

  def with_columns(self, **columns: np.ndarray) -> "EventBatch":
    """A copy with `columns` replaced or added, and no `ids` (the columns are indices now)."""
    return EventBatch({**self.columns, **columns})
