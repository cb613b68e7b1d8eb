"""Tests of the prepared Parquet copy of a watch-log folder: reuse, and preparing again."""

import logging

import numpy as np

from tfrs_smoe.data import prepared_watch_log
from tfrs_smoe.data import watch_log_files


def _folder(tmp_path, interactions):
  folder = tmp_path / "log"
  folder.mkdir(exist_ok=True)
  (folder / "interactions.csv").write_text(interactions, encoding="utf-8")
  (folder / "items.csv").write_text("item_id,genres,studio\ni1,Drama|War,A24\ni2,,\n",
                                    encoding="utf-8")
  (folder / "users.csv").write_text("user_id,plan\nu,basic\n", encoding="utf-8")
  return str(folder)


_FORMAT = watch_log_files.WatchLogFormat(item_features=("studio",), user_features=("plan",))
_LOG = "user_id,item_id,timestamp,engagement\nu,i1,1,0.5\nu,i2,2,1\nv,i1,3,1\nv,i1,3,1\n"


def test_the_prepared_copy_is_the_log_and_is_reused(tmp_path, caplog, monkeypatch):
  folder = _folder(tmp_path, _LOG)
  prepared = prepared_watch_log.PreparedWatchLog(folder, _FORMAT, root=str(tmp_path / "tfds"))
  first = prepared.load()
  assert prepared.path.startswith(str(tmp_path / "tfds" / "watch_log"))
  # The second load reads the Parquet copy, not the files.
  monkeypatch.setattr(watch_log_files.WatchLogFiles, "read",
                      lambda *a, **k: (_ for _ in ()).throw(AssertionError("read again")))
  with caplog.at_level(logging.WARNING):
    second = prepared.load()
  assert "1 duplicate interaction row(s) dropped" in caplog.text
  for name, values in first.interactions.columns().items():
    np.testing.assert_array_equal(getattr(second.interactions, name), values)
  for name in ("item_id", "title", "genres", "year", "runtime_seconds"):
    np.testing.assert_array_equal(getattr(second.items, name), getattr(first.items, name))
  np.testing.assert_array_equal(second.items.features["studio"], ["A24", ""])
  np.testing.assert_array_equal(second.users.features["plan"], ["basic", ""])
  assert second.metadata == first.metadata
  # Another format is prepared apart.
  other = prepared_watch_log.PreparedWatchLog(folder, watch_log_files.WatchLogFormat(),
                                              root=str(tmp_path / "tfds"))
  assert other.path != prepared.path


def test_changed_files_are_prepared_again_with_a_message(tmp_path, caplog):
  folder = _folder(tmp_path, _LOG)
  prepared = prepared_watch_log.PreparedWatchLog(folder, _FORMAT, root=str(tmp_path / "tfds"))
  before = prepared.load()
  _folder(tmp_path, _LOG + "w,i2,4,1\n")
  with caplog.at_level(logging.WARNING):
    after = prepared.load()
  assert "prepared from other files than those in" in caplog.text
  assert "(interactions.csv differ); preparing it again" in caplog.text
  assert len(after.interactions) == len(before.interactions) + 1
  assert after.metadata["source_files"] != before.metadata["source_files"]
