"""A watch_log folder read file by file, batch by batch, with `watch_log_files`' own checks.

Each interactions file is one work item, so files are read in parallel on a cluster. Its
record batches are parsed and validated by `WatchLogFiles.interaction_batches`, the in-memory
reader's own generator (same columns, same parsing, same bad-row errors and counts), so a file
is never held whole. The rest of `WatchLogFiles.read` is applied the same way: completions above
1 are capped (and counted) and duplicate (user, item, timestamp) rows are dropped later, per
user, keeping the first in reading order (file, then row).

The items and users files are small (one row per item or user); `tables` reads them with
`WatchLogFiles.catalog` and `user_table`, as the in-memory reader does, so that their bad rows
fail or are counted alike, and counts the log items without metadata and the users without
features.
"""

import os
from typing import Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from tfrs_smoe.data import schema
from tfrs_smoe.data import watch_log_files
from tfrs_smoe.data.preparation import event_batch

# Rows of one work item live below this bit of the reading order; the work item above it.
ORDER_SHIFT = 40


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
    table = self._files.open_table(path)
    capped = rows = 0
    for columns in self._files.interaction_batches(table):
      if not len(columns["user_id"]):
        continue
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

  def tables(self, item_ids: np.ndarray, user_ids: np.ndarray
             ) -> Tuple[schema.ItemCatalog, Optional[schema.UserTable], Dict[str, object]]:
    """The catalogue and user table, read from the items and users files as `WatchLogFiles.read`
    reads them (so their bad rows fail or are counted alike).

    Args:
      item_ids: [i] str, the log's items (after bad rows are dropped), sorted.
      user_ids: [u] str, the log's users, sorted.

    Returns:
      (catalogue of item_ids, user table of user_ids or None without a users file, report:
      "bad_rows" (file -> skipped rows), "bad_row_examples", "items_without_metadata",
      "users_without_features"). Runtimes come from the items file only (0 where it gives
      none; the in-memory reader falls back on the log's runtime_seconds, which no model reads).

    Raises:
      schema.DataError: a bad row of those files (unless skip_bad_lines), an id listed twice.
    """
    items, items_without, item_files = self._files.catalog(item_ids)
    users, users_without, user_files = self._files.user_table(user_ids)
    report = {"bad_rows": {}, "bad_row_examples": [], "items_without_metadata": items_without,
              "users_without_features": users_without}
    for relative, file in {**item_files, **user_files}.items():
      report["bad_rows"][relative] = file.skipped
      report["bad_row_examples"].extend(file.examples)
    return items, users, report
