"""Tests of ModelDirLock: exclusion between processes, release on kill, nesting in one process."""

import datetime
import json
import os
import shlex
import signal
import socket
import subprocess
import sys

import pytest

from tfrs_smoe import model_dir_lock
from tfrs_smoe.model_dir_lock import ModelDirLock, ModelDirLockedError

# The other process loads the module from its file: importing the package would import
# TensorFlow, which takes seconds. With "hold" it keeps the lock until killed.
_OTHER_PROCESS = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("model_dir_lock", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
lock = module.ModelDirLock(sys.argv[2])
try:
  lock.acquire()
except module.ModelDirLockedError as error:
  print(error, file=sys.stderr)
  sys.exit(3)
print("locked", flush=True)
if sys.argv[3] == "hold":
  time.sleep(600)
lock.release()
"""


def _other_process_args(model_dir, mode):
  return [sys.executable, "-c", _OTHER_PROCESS, model_dir_lock.__file__, str(model_dir), mode]


def _try_in_other_process(model_dir):
  return subprocess.run(_other_process_args(model_dir, "try"), capture_output=True, text=True,
                        timeout=60, check=False)


def test_second_process_fails_at_once_naming_the_holder(tmp_path):
  with ModelDirLock(str(tmp_path)):
    result = _try_in_other_process(tmp_path)
  assert result.returncode == 3, result.stderr
  message = result.stderr
  assert f"pid {os.getpid()} on host {socket.gethostname()}" in message
  assert shlex.join(sys.argv) in message  # The holder's command line.
  assert "another --model_dir" in message and str(tmp_path) in message


def test_lock_of_a_killed_holder_can_be_taken(tmp_path):
  holder = subprocess.Popen(_other_process_args(tmp_path, "hold"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "locked", holder.stderr.read()
    lock = ModelDirLock(str(tmp_path))
    with pytest.raises(ModelDirLockedError, match=f"pid {holder.pid} ") as raised:
      lock.acquire()
    assert raised.value.holder["pid"] == holder.pid
    assert raised.value.holder["command"][1:] == [model_dir_lock.__file__, str(tmp_path), "hold"]
    assert not lock.locked
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.communicate(timeout=60)
  assert holder.returncode == -signal.SIGKILL
  with lock:  # The kernel released the dead process's lock.
    with open(lock.path, encoding="utf-8") as f:
      assert json.load(f)["pid"] == os.getpid()


def test_release_lets_another_process_take_it(tmp_path):
  lock = ModelDirLock(str(tmp_path))
  lock.acquire()
  lock.release()
  assert not lock.locked
  assert os.path.getsize(lock.path) == 0  # Emptied: it names no holder.
  result = _try_in_other_process(tmp_path)
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == "locked"
  with lock:  # And that process released it when it ended.
    assert lock.locked


def test_lock_file_names_the_holder(tmp_path):
  model_dir = tmp_path / "new" / "run"  # Created when missing.
  with ModelDirLock(str(model_dir)) as lock:
    with open(model_dir / ".lock", encoding="utf-8") as f:
      holder = json.load(f)
  assert lock.path == str(model_dir / ".lock")
  assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
  assert holder["command"] == sys.argv
  started = datetime.datetime.fromisoformat(holder["started"])
  assert abs((datetime.datetime.now().astimezone() - started).total_seconds()) < 3600


def test_one_object_nests_and_two_objects_exclude_each_other(tmp_path):
  lock, other = ModelDirLock(str(tmp_path)), ModelDirLock(str(tmp_path))
  with lock:
    with lock:
      assert lock.locked
    assert lock.locked  # Still held: released by the outermost exit only.
    with pytest.raises(ModelDirLockedError, match=f"pid {os.getpid()} "):
      other.acquire()  # Another object excludes, even in the same process.
  assert not lock.locked
  with other:
    assert other.locked
  with pytest.raises(RuntimeError, match="without acquire"):
    lock.release()


def test_url_directories_are_refused():
  with pytest.raises(ValueError, match="local or NFS"):
    ModelDirLock("gs://bucket/run")
