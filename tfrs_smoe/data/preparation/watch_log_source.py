"""A watch_log folder read file by file, batch by batch, with `watch_log_files`' own checks.

Each interactions file is one work item, so files are read in parallel on a cluster. Its
record batches are parsed and validated by `WatchLogFiles._read_interactions`, the in-memory
reader's own code (same columns, same parsing, same bad-row errors and counts), one batch at a
time: the file is handed to it through `_OneBatchAtATime`, which lets each call see only the
next batch, so a file is never held whole. The rest of `WatchLogFiles.read` is applied the same
way: completions above 1 are capped (and counted) and duplicate (user, item, timestamp) rows
are dropped later, per user, keeping the first in reading order (file, then row).

The items and users files are small (one row per item or user); `check_tables` reads them as
the in-memory reader does, so that their bad rows fail or are counted alike, and counts the log
items without metadata and the users without features.
"""

import os
from typing import Dict, Iterator, List, Union

import numpy as np

from tfrs_smoe.data import table_file
from tfrs_smoe.data import watch_log_files
from tfrs_smoe.data.preparation import event_batch

# Rows of one work item live below this bit of the reading order; the work item above it.
ORDER_SHIFT = 40


class _OneBatchAtATime:
  """A `TableFile` whose `batches` gives one more batch of the real file per call."""

  def __init__(self, table: table_file.TableFile):
    self._table = table
    self._batches = None
    self.exhausted = False

  def __getattr__(self, name):
    return getattr(self._table, name)

  def batches(self, names):
    if self._batches is None:
      self._batches = iter(self._table.batches(names))
    for first_row, batch in self._batches:
      yield first_row, batch
      return
    self.exhausted = True


class _Sink:
  """Receives what `_read_interactions` keeps of one batch (its `_Columns.add` interface)."""

  def __init__(self):
    self.columns: Dict[str, np.ndarray] = {}

  def add(self, keep: np.ndarray, **columns: np.ndarray) -> None:
    self.columns = {name: values[keep] for name, values in columns.items()}


class WatchLogSource:
  """The interaction batches of a watch_log folder, and its items / users files' checks.

  Args:
    directory: the watch_log folder (`watch_log_files`).
    format: how to read it (`watch_log_format.WatchLogFormat`).

  Raises:
    schema.DataError: the folder, or its interactions file, is missing (at construction).
    Reading raises it for bad rows, as `watch_log_files` does.

  Example:
    >>> os.makedirs("log", exist_ok=True)
    >>> with open("log/interactions.csv", "w", encoding="utf-8") as f:
    ...   _ = f.write("user_id,item_id,timestamp,watch_seconds,runtime_seconds\\n"
    ...               "u1,m1,100,30,60\\nu2,m1,200,90,60\\n")
    >>> source = WatchLogSource("log", watch_log_files.WatchLogFormat())
    >>> outputs = list(source.read(0))
    >>> outputs[0].raw("user").tolist(), outputs[0].columns["engagement"].tolist()
    (['u1', 'u2'], [0.5, 1.0])
    >>> outputs[1]["capped_completions"], outputs[1]["bad_rows"]
    (1, {'interactions.csv': 0})
  """

  name = watch_log_files.NAME
  abandonment_threshold = watch_log_files.DEFAULT_ABANDONMENT_THRESHOLD

  def __init__(self, directory: str,
               format: watch_log_files.WatchLogFormat):  # pylint: disable=redefined-builtin
    self.directory = os.path.abspath(os.fspath(directory))
    self.format = format
    self._files = watch_log_files.WatchLogFiles(self.directory, format)
    self.paths: List[str] = list(self._files.interactions)

  def work_items(self) -> List[int]:
    """The interactions files' indices, in reading order."""
    return list(range(len(self.paths)))

  def metadata(self) -> Dict[str, object]:
    """data_dir, columns and source_files (path -> SHA-256), as `WatchLog.metadata` has them."""
    return {"data_dir": self.directory, "columns": dict(self.format.columns),
            "source_files": self._files.source_files()}

  def read(self, work_item: int) -> Iterator[Union[event_batch.EventBatch, Dict]]:
    """Yields the EventBatches of interactions file `work_item`, then its report (a dict).

    Raises:
      schema.DataError: a bad row (unless skip_bad_lines) or a missing column, naming the
        file.
    """
    path = self.paths[work_item]
    table = _OneBatchAtATime(table_file.TableFile(path, self.format.skip_bad_lines))
    capped = rows = 0
    while True:
      sink = _Sink()
      self._files._read_interactions(table, sink)  # pylint: disable=protected-access
      if table.exhausted:
        break
      if not sink.columns or not len(sink.columns["user_id"]):
        continue
      columns = sink.columns
      engagement = columns["engagement"].astype(np.float64)
      capped += int(np.sum(engagement > 1.0))
      rows += len(engagement)
      yield event_batch.EventBatch.from_ids(
          columns["user_id"], columns["item_id"], columns["timestamp"],
          np.minimum(engagement, 1.0),
          order=(np.int64(work_item) << ORDER_SHIFT) + columns["row"].astype(np.int64))
    yield {"rows_read": rows, "capped_completions": capped,
           "bad_rows": {os.path.relpath(path, self.directory): table.skipped},
           "bad_row_examples": list(table.examples)}

  def check_tables(self, item_ids: np.ndarray, user_ids: np.ndarray) -> Dict[str, object]:
    """Reads the items and users files as `WatchLogFiles.read` does, for their checks.

    Args:
      item_ids: [i] str, the log's items (after bad rows are dropped).
      user_ids: [u] str, the log's users.

    Returns:
      "bad_rows" (file -> skipped rows), "bad_row_examples", "items_without_metadata",
      "users_without_features".

    Raises:
      schema.DataError: a bad row of those files (unless skip_bad_lines), an id listed twice.
    """
    files = self._files
    files._skipped = {}  # pylint: disable=protected-access
    report = {"bad_rows": {}, "bad_row_examples": [], "items_without_metadata": 0,
              "users_without_features": 0}
    for key, paths, id_name, what, features, ids in (
        ("items_without_metadata", files.items, "item_id", "items", self.format.item_features,
         item_ids),
        ("users_without_features", files.users, "user_id", "users", self.format.user_features,
         user_ids)):
      if paths:
        table = files._read_table(  # pylint: disable=protected-access
            paths, id_name, what, tuple(features))
        report[key] = int(np.sum(~np.isin(ids, table[id_name])))
    for relative, table in files._skipped.items():  # pylint: disable=protected-access
      report["bad_rows"][relative] = table.skipped
      report["bad_row_examples"].extend(table.examples)
    return report
