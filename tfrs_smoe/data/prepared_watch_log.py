"""A watch-log folder prepared once into Parquet, and prepared again when its files change.

`PreparedWatchLog.load` reads the folder with `WatchLogFiles` the first time and writes the
resulting log into `<root>/watch_log/<key>/` (interactions.parquet, items.parquet,
users.parquet when there is a users file, metadata.json), where `<root>` is the TFDS data
folder of the other data sets (`data.tfds_data_dir`, by default $TFDS_DATA_DIR or
~/tensorflow_datasets) and `<key>` a digest of the folder's path and the reading format
(columns, separator, features, bad-row handling), so that another format never reuses it.

Like the MovieLens builder, the prepared data records the SHA-256 of every source file
(metadata "source_files"); a later load whose files differ (changed, added or removed) says so
in a warning and prepares the data again. Bad-row and duplicate counts are kept in the metadata
and reported again when prepared data is reused.
"""

import dataclasses
import hashlib
import json
import os
import shutil
from typing import Dict, Optional

from absl import logging
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tfrs_smoe.data import schema
from tfrs_smoe.data import watch_log_files

# Bumped whenever the prepared layout or the reader's output changes.
VERSION = 1
_FEATURE = "feature:"


def default_root() -> str:
  """TFDS' default data folder: $TFDS_DATA_DIR or ~/tensorflow_datasets."""
  return os.environ.get("TFDS_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets")


def _arrow(columns: Dict[str, np.ndarray]) -> pa.Table:
  return pa.table({name: pa.array(values) for name, values in columns.items()})


def _numpy(table: pa.Table, name: str) -> np.ndarray:
  values = table.column(name).to_numpy()
  return values.astype(str) if values.dtype == object else values


class PreparedWatchLog:
  """The prepared copy of one watch-log folder under one reading format.

  Args:
    directory: the watch-log folder (see `watch_log_files`).
    format: how to read it.
    root: where prepared data sets live; None for `default_root()`.

  Attributes:
    path: the prepared data's folder.

  Example:
    >>> os.makedirs("my_log", exist_ok=True)
    >>> with open("my_log/interactions.csv", "w", encoding="utf-8") as f:
    ...   _ = f.write("user_id,item_id,timestamp,engagement\\n"
    ...               "u1,m1,1704139200,0.9\\nu1,m2,1704229200,0.02\\nu2,m1,1704232800,1.0\\n")
    >>> prepared = PreparedWatchLog("my_log", watch_log_files.WatchLogFormat(), root="tfds")
    >>> log = prepared.load()  # Reads the files the first time, Parquet afterwards.
    >>> sorted(os.listdir(prepared.path))
    ['interactions.parquet', 'items.parquet', 'metadata.json']
    >>> len(prepared.load().interactions.user_id)  # From Parquet.
    3
  """

  def __init__(self, directory: str,
               format: watch_log_files.WatchLogFormat,  # pylint: disable=redefined-builtin
               root: Optional[str] = None):
    self.directory = os.path.abspath(os.fspath(directory))
    self.format = format
    identity = json.dumps({"data_dir": self.directory, "format": dataclasses.asdict(format)},
                          sort_keys=True)
    key = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]
    self.path = os.path.join(root or default_root(), watch_log_files.NAME, key)

  def _metadata(self) -> Optional[dict]:
    path = os.path.join(self.path, "metadata.json")
    if not os.path.isfile(path):
      return None
    with open(path, encoding="utf-8") as f:
      return json.load(f)

  def load(self) -> schema.WatchLog:
    """The folder's log: the prepared copy when its files are unchanged, else read anew.

    Raises:
      schema.DataError: bad input (see `watch_log_files`).
    """
    files = watch_log_files.WatchLogFiles(self.directory, self.format)
    sources = files.source_files()
    recorded = self._metadata()
    if recorded is not None and recorded.get("version") == VERSION and (
        recorded["log"]["source_files"] == sources):
      metadata = recorded["log"]
      if sum(metadata["skipped_rows"].values()) or metadata["duplicate_rows"]:
        logging.warning("%s was prepared with bad rows skipped %s and %d duplicate "
                        "interaction row(s) dropped.", self.directory, metadata["skipped_rows"],
                        metadata["duplicate_rows"])
      return self._read(recorded)
    if recorded is not None:
      before = recorded.get("log", {}).get("source_files", {})
      changed = sorted(name for name in set(before) | set(sources)
                       if before.get(name) != sources.get(name))
      logging.warning("%s was prepared from other files than those in %s now (%s differ); "
                      "preparing it again.", self.path, self.directory,
                      ", ".join(changed) or "the prepared layout's version")
    log = files.read(source_files=sources)
    self._write(log)
    return log

  def _write(self, log: schema.WatchLog) -> None:
    """Writes `log` into `path` atomically (a temporary folder renamed into place)."""
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    temporary = f"{self.path}.tmp-{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    os.makedirs(temporary)
    pq.write_table(_arrow(log.interactions.columns()),
                   os.path.join(temporary, "interactions.parquet"))
    items = log.items
    pq.write_table(_arrow({
        "item_id": items.item_id, "title": items.title, "genres": items.genres,
        "year": items.year, "runtime_seconds": items.runtime_seconds,
        **{_FEATURE + name: values for name, values in items.features.items()}}),
                   os.path.join(temporary, "items.parquet"))
    if log.users is not None:
      pq.write_table(_arrow({"user_id": log.users.user_id,
                             **{_FEATURE + n: v for n, v in log.users.features.items()}}),
                     os.path.join(temporary, "users.parquet"))
    with open(os.path.join(temporary, "metadata.json"), "w", encoding="utf-8") as f:
      json.dump({"version": VERSION, "format": dataclasses.asdict(self.format),
                 "abandonment_threshold": log.abandonment_threshold, "log": log.metadata},
                f, indent=2)
    shutil.rmtree(self.path, ignore_errors=True)
    os.replace(temporary, self.path)

  def _read(self, recorded: dict) -> schema.WatchLog:
    interactions = pq.read_table(os.path.join(self.path, "interactions.parquet"))
    items = pq.read_table(os.path.join(self.path, "items.parquet"))
    users = None
    if os.path.isfile(os.path.join(self.path, "users.parquet")):
      table = pq.read_table(os.path.join(self.path, "users.parquet"))
      users = schema.UserTable(
          user_id=_numpy(table, "user_id"),
          features={n[len(_FEATURE):]: _numpy(table, n) for n in table.column_names
                    if n.startswith(_FEATURE)})
    log = schema.WatchLog(
        name=watch_log_files.NAME,
        interactions=schema.Interactions(**{n: _numpy(interactions, n)
                                            for n in interactions.column_names}),
        items=schema.ItemCatalog(
            **{n: _numpy(items, n) for n in items.column_names if not n.startswith(_FEATURE)},
            features={n[len(_FEATURE):]: _numpy(items, n) for n in items.column_names
                      if n.startswith(_FEATURE)}),
        users=users, abandonment_threshold=recorded["abandonment_threshold"],
        metadata=recorded["log"])
    log.validate()
    return log
