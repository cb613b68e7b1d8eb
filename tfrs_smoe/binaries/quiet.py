"""TensorFlow's import without its noise: what `TF_CPP_MIN_LOG_LEVEL` alone does not reach.

`import tensorflow` logs from C++ before TensorFlow's logging is set up: absl's banner
("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"), then
records such as cudart_stub's "Could not find cuda drivers on your machine" (twice), the
cpu_feature_guard instruction notice or the oneDNN notice. Those records ignore
`TF_CPP_MIN_LOG_LEVEL`. `import_tensorflow` applies that variable's rule to them (a record of
severity INFO, WARNING, ERROR, FATAL = 0, 1, 2, 3 is dropped when below the level; the banner
goes with level >= 1); everything else written to stderr meanwhile (Python warnings, a
traceback) is kept, in order, once the import is done.

The binaries are quiet by default: in their processes (`running_a_binary`) an unset
`TF_CPP_MIN_LOG_LEVEL` becomes 3, all of TensorFlow's C++ logs off, as the experiments/ scripts
always had it (at 2, a machine without a GPU still prints "failed call to cuInit" as an ERROR
once training starts). `TF_CPP_MIN_LOG_LEVEL=0` brings every line back, 2 the errors. Other
processes keep TensorFlow's own default (0: nothing dropped).

This module imports only the standard library, so that `tfrs_smoe/__init__.py`, whose import
of TensorFlow comes before any binary's code, can import TensorFlow through it.

Example:
  >>> from tfrs_smoe.binaries import quiet
  >>> tf = quiet.import_tensorflow()
"""

import contextlib
import importlib
import os
import re
import sys
import tempfile
from types import ModuleType
from typing import Iterator

# TF_CPP_MIN_LOG_LEVEL of the binaries when unset: INFO, WARNING and ERROR off.
BINARY_LOG_LEVEL = "3"
# The console scripts (setup.py) and the modules of `python -m` that are binaries.
CONSOLE_SCRIPT_PREFIX = "tfrs-smoe-"
BINARY_MODULE_PREFIX = "tfrs_smoe.binaries."

_SEVERITIES = "IWEF"
_BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# absl's format, "I0000 00:00:1796178735.511211   11585 cudart_stub.cc:31] ..." (before absl is
# initialised the seconds are those since the epoch), and the one of
# older TensorFlow, "2024-06-07 14:17:16.238228: I external/.../cudart_stub.cc:32] ...".
_RECORD = re.compile(r"([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+\s+\S+:\d+\] "
                     r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: ([IWEF]) \S+:\d+\] ")
# Second lines of multi-line records (cpu_feature_guard's).
_CONTINUATION = re.compile(r"To enable the following instructions: ")


def min_log_level() -> int:
  """`TF_CPP_MIN_LOG_LEVEL` as TensorFlow reads it (unset or not a number: 0)."""
  try:
    return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
  except ValueError:
    return 0


def running_a_binary() -> bool:
  """Whether this process is a tfrs_smoe binary: a console script or `python -m` of one.

  (`experiments/*.py` set `TF_CPP_MIN_LOG_LEVEL` themselves before they import anything.)
  """
  if sys.argv and os.path.basename(sys.argv[0]).startswith(CONSOLE_SCRIPT_PREFIX):
    return True
  # While `python -m` imports the module's packages, sys.argv[0] is "-m" and sys.orig_argv
  # (Python 3.10+) holds the module's name.
  command = getattr(sys, "orig_argv", [])
  return any(flag == "-m" and module.startswith(BINARY_MODULE_PREFIX)
             for flag, module in zip(command, command[1:]))


def filter_lines(text: str, min_level: int) -> str:
  """`text` without the pre-initialisation log records below `min_level` (and their banner).

  Args:
    text: what was written to stderr.
    min_level: a `TF_CPP_MIN_LOG_LEVEL`; 0 keeps everything.

  Example:
    >>> filter_lines("I0000 00:00:1.5   7 cudart_stub.cc:31] No GPU.\\nkept\\n", 2)
    'kept\\n'
  """
  if min_level <= 0:
    return text
  kept = []
  dropped_record = False
  for line in text.splitlines(keepends=True):
    record = _RECORD.match(line)
    if record:
      severity = record.group(1) or record.group(2)
      dropped_record = _SEVERITIES.index(severity) < min_level
      if not dropped_record:
        kept.append(line)
    elif line.rstrip("\r\n") == _BANNER:
      dropped_record = False
    elif not (dropped_record and _CONTINUATION.match(line)):
      dropped_record = False
      kept.append(line)
  return "".join(kept)


@contextlib.contextmanager
def filtered_stderr(min_level: int) -> Iterator[None]:
  """Holds back what is written to file descriptor 2 inside, then writes it `filter_lines`-ed.

  C++ writes to the descriptor directly, so sys.stderr alone cannot be redirected; Python's
  writes are held back too and come out in order. Without a usable descriptor 2, or with
  `min_level` 0, nothing is held back.
  """
  if min_level <= 0:
    yield
    return
  try:
    sys.stderr.flush()
    saved = os.dup(2)
  except (OSError, ValueError, AttributeError):
    yield
    return
  with tempfile.TemporaryFile() as held:
    os.dup2(held.fileno(), 2)
    try:
      yield
    finally:
      try:
        sys.stderr.flush()
      except (OSError, ValueError):
        pass
      os.dup2(saved, 2)
      os.close(saved)
      held.seek(0)
      text = filter_lines(held.read().decode("utf-8", errors="replace"), min_level)
      if text:
        os.write(2, text.encode("utf-8"))


def import_tensorflow() -> ModuleType:
  """`import tensorflow`, with the import's log lines below `TF_CPP_MIN_LOG_LEVEL` dropped.

  In a binary's process (`running_a_binary`) an unset `TF_CPP_MIN_LOG_LEVEL` is set to
  `BINARY_LOG_LEVEL` first. Once TensorFlow is imported this only returns it.
  """
  if "tensorflow" not in sys.modules:
    if running_a_binary():
      os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", BINARY_LOG_LEVEL)
    with filtered_stderr(min_log_level()):
      return importlib.import_module("tensorflow")
  return sys.modules["tensorflow"]
