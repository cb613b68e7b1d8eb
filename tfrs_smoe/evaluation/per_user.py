"""Per-user evaluation results: every evaluated user's metric values, as a table and a CSV file.

A protocol's aggregate metrics (metrics_<subset>.json) are the means of these rows. Keeping the
rows lets two models be compared user by user (`tfrs_smoe.evaluation.paired_comparison`): the
paired difference is far less noisy than the difference of two means when both models are
evaluated on the same users.

The file, `per_user_<subset>.csv` in the run directory (`per_user_<subset>_<protocol>.csv` for
protocols other than full ranking), has a header `user_id,<metric>,<metric>,...` and one row per
evaluated user: the user's raw id (the user vocabulary's string), then its values.
"""

import csv
import dataclasses
import os
from typing import Dict, Mapping

import numpy as np

_USER_ID = "user_id"
# The protocol whose file carries no protocol suffix.
_DEFAULT_PROTOCOL = "full_ranking"


@dataclasses.dataclass(frozen=True, eq=False)
class PerUserMetrics:
  """Metric values of every evaluated user, one row per user.

  In the leave-one-out and time splits every user has one target, so a row is a user; a row
  holds the metrics of that user's target under one protocol.

  Attributes:
    user_id: [n] str raw user ids (the user vocabulary's ids).
    metrics: metric name ("ndcg@10", ...) -> [n] float64 values, aligned with `user_id`; the
      names keep their order (the protocol's, as in `metrics.metric_names`).
    source: where the rows were read from (a file path), for error messages; "" when built in
      memory.

  Example:
    >>> rows = PerUserMetrics(user_id=np.array(["u1", "u2"]),
    ...                       metrics={"ndcg@10": np.array([1.0, 0.0])})
    >>> rows.mean()
    {'ndcg@10': 0.5}
    >>> path = rows.write_csv(os.path.join("runs", "bst", PerUserMetrics.file_name("test")))
    >>> path
    'runs/bst/per_user_test.csv'
    >>> PerUserMetrics.read_csv(path).metrics["ndcg@10"]
    array([1., 0.])
  """

  user_id: np.ndarray
  metrics: Dict[str, np.ndarray]
  source: str = dataclasses.field(default="", compare=False)

  def __post_init__(self):
    user_id = np.asarray(self.user_id).astype(str)
    if user_id.ndim != 1:
      raise ValueError(f"user_id must be 1-D, got shape {user_id.shape}.")
    metrics = {}
    for name, values in self.metrics.items():
      values = np.asarray(values, dtype=np.float64)
      if values.shape != user_id.shape:
        raise ValueError(f"Metric {name!r} has shape {values.shape}; user_id has "
                         f"{user_id.shape}.")
      if name == _USER_ID:
        raise ValueError(f"{_USER_ID!r} is the id column and cannot be a metric name.")
      metrics[name] = values
    object.__setattr__(self, "user_id", user_id)
    object.__setattr__(self, "metrics", metrics)

  def __len__(self) -> int:
    return len(self.user_id)

  def __eq__(self, other) -> bool:
    """Same users in the same order with the same metrics and values (`source` aside)."""
    return (isinstance(other, PerUserMetrics) and np.array_equal(self.user_id, other.user_id)
            and list(self.metrics) == list(other.metrics)
            and all(np.array_equal(values, other.metrics[name])
                    for name, values in self.metrics.items()))

  @property
  def described(self) -> str:
    """`source`, or "per-user results" when built in memory; for error messages."""
    return self.source or "per-user results"

  @staticmethod
  def file_name(subset: str, protocol: str = _DEFAULT_PROTOCOL) -> str:
    """The file name of a run's per-user results, e.g. "per_user_test.csv".

    Args:
      subset: "validation" or "test".
      protocol: "full_ranking" (no suffix) or another protocol, e.g. "phns_test" ->
        "per_user_test_phns_test.csv".
    """
    suffix = "" if protocol == _DEFAULT_PROTOCOL else f"_{protocol}"
    return f"per_user_{subset}{suffix}.csv"

  @classmethod
  def from_mapping(cls, rows: Mapping[str, Mapping[str, float]],
                   source: str = "") -> "PerUserMetrics":
    """Builds the table from user -> {metric name -> value}.

    Every user must have the same metrics.

    Example:
      >>> rows = PerUserMetrics.from_mapping({"u1": {"ndcg@10": 1.0}, "u2": {"ndcg@10": 0.0}})
      >>> rows.user_id, rows.metrics
      (array(['u1', 'u2'], dtype='<U2'), {'ndcg@10': array([1., 0.])})
    """
    users = list(rows)
    names = list(rows[users[0]]) if users else []
    for user in users:
      if set(rows[user]) != set(names):
        raise ValueError(f"User {user!r} has metrics {sorted(rows[user])}; user {users[0]!r} "
                         f"has {sorted(names)}. Every user needs the same metrics.")
    return cls(user_id=np.asarray(users, dtype=str),
               metrics={name: np.array([rows[user][name] for user in users], np.float64)
                        for name in names},
               source=source)

  def mean(self) -> Dict[str, float]:
    """The mean of every metric over the users: the protocol's aggregate metrics."""
    if not len(self):
      raise ValueError(f"{self.described} holds no users.")
    return {name: float(values.mean()) for name, values in self.metrics.items()}

  def write_csv(self, path: str) -> str:
    """Writes the table to `path` as CSV, atomically (a temporary file renamed into place).

    Values are written with `repr`, which round-trips float64 exactly. Returns `path`.
    """
    directory = os.path.dirname(path)
    if directory:
      os.makedirs(directory, exist_ok=True)
    names = list(self.metrics)
    temporary = f"{path}.tmp-{os.getpid()}"
    try:
      with open(temporary, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow([_USER_ID, *names])
        columns = [self.metrics[name].tolist() for name in names]
        for row, user in enumerate(self.user_id.tolist()):
          writer.writerow([user, *(repr(column[row]) for column in columns)])
      os.replace(temporary, path)
    finally:
      if os.path.exists(temporary):
        os.remove(temporary)
    return path

  @classmethod
  def read_csv(cls, path: str) -> "PerUserMetrics":
    """The table that `write_csv` wrote to `path`.

    Raises:
      FileNotFoundError: no file at `path`.
      ValueError: the file has no user_id column first, a row of the wrong length, or a value
        that is not a number.
    """
    with open(path, encoding="utf-8", newline="") as f:
      reader = csv.reader(f)
      header = next(reader, None)
      if not header or header[0] != _USER_ID or len(header) < 2:
        raise ValueError(f"{path}: the header must be '{_USER_ID},<metric>,...', got {header}.")
      users, values = [], []
      for line, row in enumerate(reader, start=2):
        if len(row) != len(header):
          raise ValueError(f"{path}:{line}: {len(row)} fields, the header has {len(header)}.")
        try:
          values.append([float(value) for value in row[1:]])
        except ValueError as error:
          raise ValueError(f"{path}:{line}: {error}") from None
        users.append(row[0])
    table = np.asarray(values, np.float64).reshape([len(users), len(header) - 1])
    return cls(user_id=np.asarray(users, dtype=str),
               metrics={name: table[:, column] for column, name in enumerate(header[1:])},
               source=path)
