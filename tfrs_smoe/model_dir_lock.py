"""An exclusive lock on a model directory, so that two runs never write into one.

Two training processes on one --model_dir would overwrite each other's backups, checkpoints
and metrics, and a resumed run would restore a backup that the other process wrote. The lock is
an OS file lock (`fcntl.flock`) on `<model_dir>/.lock`: the kernel releases it when its holder
exits in any way, SIGKILL and crashes included, so a dead run never leaves a stale lock behind.
The lock file names its holder (pid, host, start time, command line) for the error message of
the process that finds it taken.
"""

import datetime
import errno
import fcntl
import json
import os
import shlex
import socket
import sys
from typing import Any, Dict, Optional

LOCK_FILE = ".lock"


class ModelDirLockedError(RuntimeError):
  """Raised when another process (or another `ModelDirLock`) holds a model directory's lock.

  Attributes:
    model_dir: the locked directory.
    holder: what the lock file says of its holder ("pid", "host", "started", "command"), or None
      when it could not be read (the holder has only just taken the lock).
  """

  def __init__(self, model_dir: str, holder: Optional[Dict[str, Any]]):
    self.model_dir = model_dir
    self.holder = holder
    if holder:
      command = holder.get("command")
      if isinstance(command, list):
        command = shlex.join(str(part) for part in command)
      who = (f"pid {holder.get('pid')} on host {holder.get('host')}, running since "
             f"{holder.get('started')}: {command}")
      stop = f"stop it (kill {holder.get('pid')} on {holder.get('host')})"
    else:
      who = "a process that has only just taken it (its details are not written yet)"
      stop = "stop it"
    super().__init__(
        f"model_dir {model_dir!r} is in use by another run: {who}. Two runs on one model_dir "
        "overwrite each other's backups, checkpoints and metrics. Wait for that run to finish, "
        f"{stop}, or use another --model_dir. The lock is released when its process exits, "
        f"also when it is killed ({os.path.join(model_dir, LOCK_FILE)}).")


class ModelDirLock:
  """An exclusive, non-blocking lock on a model directory; a context manager.

  Acquiring creates the directory if needed, takes `fcntl.flock(LOCK_EX | LOCK_NB)` on
  `<model_dir>/.lock` and writes the holder's pid, host, start time and command line
  (`sys.argv`) into it. If the lock is held, it raises `ModelDirLockedError` at once, naming
  the holder. The kernel releases the lock when the holding process ends, however it ends.

  Re-entrancy: one `ModelDirLock` object is re-entrant (nested `with lock:` blocks or repeated
  `acquire()` calls nest, and the lock is released by the outermost release). Two objects on
  the same directory exclude each other even within one process: the second one raises
  `ModelDirLockedError` naming this process. The lock file descriptor is not inherited by
  programs the holder starts (`subprocess`), but a child made by a bare `os.fork` shares it.

  The directory must be on a local file system (or NFS, where Linux maps `flock` onto NFS
  locks); URLs such as gs://... raise ValueError, since they have no file locks.

  Args:
    model_dir: the directory to lock.

  Example:
    >>> with ModelDirLock("runs/example"):
    ...   pass  # Train, write checkpoints and metrics into runs/example.
    >>> lock = ModelDirLock("runs/example")
    >>> lock.acquire()  # Raises ModelDirLockedError if another run holds runs/example.
    >>> lock.locked
    True
    >>> lock.release()
  """

  def __init__(self, model_dir: str):
    if "://" in model_dir:
      raise ValueError(f"ModelDirLock needs a local or NFS directory, got {model_dir!r}: "
                       "URL file systems have no file locks.")
    self.model_dir = model_dir
    self.path = os.path.join(model_dir, LOCK_FILE)
    self._fd: Optional[int] = None
    self._depth = 0

  @property
  def locked(self) -> bool:
    """Whether this object holds the lock."""
    return self._fd is not None

  def acquire(self) -> None:
    """Takes the lock, or nests once more if this object holds it.

    Raises:
      ModelDirLockedError: another process, or another `ModelDirLock` object, holds it.
    """
    if self._fd is not None:
      self._depth += 1
      return
    os.makedirs(self.model_dir, exist_ok=True)
    # Not O_TRUNC: the file holds the current holder's details until the lock is ours.
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
      holder = _read_holder(fd)
      os.close(fd)
      if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
        raise ModelDirLockedError(self.model_dir, holder) from None
      raise
    try:
      _write_holder(fd)
    except BaseException:
      os.close(fd)  # Closing releases the lock.
      raise
    self._fd = fd
    self._depth = 1

  def release(self) -> None:
    """Undoes one `acquire()`; the outermost one empties the lock file and releases the lock.

    Raises:
      RuntimeError: this object does not hold the lock.
    """
    if self._fd is None:
      raise RuntimeError(f"release() of {self.path} without acquire().")
    self._depth -= 1
    if self._depth:
      return
    fd, self._fd = self._fd, None
    # The file stays (deleting it would let a process lock an unlinked file while a third one
    # locks a new one); emptied, it names no holder.
    try:
      os.ftruncate(fd, 0)
    finally:
      os.close(fd)  # Releases the flock.

  def __enter__(self) -> "ModelDirLock":
    self.acquire()
    return self

  def __exit__(self, *exc_info) -> None:
    self.release()

  def __repr__(self) -> str:
    return f"ModelDirLock({self.model_dir!r}, locked={self.locked})"


def _write_holder(fd: int) -> None:
  holder = {
      "pid": os.getpid(),
      "host": socket.gethostname(),
      "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
      "command": list(sys.argv),
  }
  data = (json.dumps(holder) + "\n").encode("utf-8")
  os.ftruncate(fd, 0)
  os.pwrite(fd, data, 0)
  os.fsync(fd)


def _read_holder(fd: int) -> Optional[Dict[str, Any]]:
  try:
    data = os.pread(fd, 1 << 16, 0)
    holder = json.loads(data.decode("utf-8"))
  except (OSError, ValueError):
    return None
  return holder if isinstance(holder, dict) else None
