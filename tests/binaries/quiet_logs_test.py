"""Tests of the binaries' quiet TensorFlow import: which stderr lines go, which stay."""

import os
import sys

from tfrs_smoe.binaries import quiet

_BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
_CUDART = ("I0000 00:00:1796178735.511211   11585 cudart_stub.cc:31] Could not find cuda drivers "
           "on your machine, GPU will not be used.\n")
_GUARD = ("I0000 00:00:1796178735.620000   11585 cpu_feature_guard.cc:227] This TensorFlow binary "
          "is optimized to use available CPU instructions in performance-critical operations.\n"
          "To enable the following instructions: AVX2 FMA, in other operations, rebuild "
          "TensorFlow with the appropriate compiler flags.\n")
_OLD_FORMAT = ("2024-06-07 14:17:16.238228: W external/local_tsl/tsl/cuda/cudart_stub.cc:32] "
               "Could not load dynamic library 'libcudart.so.12'\n")
_ERROR = "E0000 00:00:1796178735.700000   11585 cuda_dnn.cc:8310] Unable to register cuDNN.\n"
_PYTHON = "/x/y.py:3: DeprecationWarning: something Python said\n  import z\n"


def test_records_below_the_level_go_with_their_banner_and_the_rest_stays_in_order():
  text = _BANNER + _CUDART + _GUARD + _PYTHON + _BANNER + _OLD_FORMAT + _ERROR
  assert quiet.filter_lines(text, 0) == text
  assert quiet.filter_lines(text, 1) == _PYTHON + _OLD_FORMAT + _ERROR
  assert quiet.filter_lines(text, 2) == _PYTHON + _ERROR
  assert quiet.filter_lines(text, 3) == _PYTHON
  # WARNING records stay at level 1 and their second lines with them.
  assert quiet.filter_lines(_OLD_FORMAT + _GUARD, 1) == _OLD_FORMAT
  assert quiet.filter_lines(_GUARD, 0) == _GUARD


def test_filtered_stderr_holds_back_what_c_plus_plus_writes_and_filters_it(capfd):
  with quiet.filtered_stderr(2):
    os.write(2, (_BANNER + _CUDART).encode())
    sys.stderr.write("kept, from Python\n")
    os.write(2, _ERROR.encode())
  assert capfd.readouterr().err == "kept, from Python\n" + _ERROR
  with quiet.filtered_stderr(0):
    os.write(2, _CUDART.encode())
  assert capfd.readouterr().err == _CUDART


def test_binaries_are_recognised_by_their_console_script_or_module(monkeypatch):
  monkeypatch.setattr(sys, "argv", ["/venv/bin/tfrs-smoe-train", "--help"])
  assert quiet.running_a_binary()
  monkeypatch.setattr(sys, "argv", ["-m", "--help"])
  monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "tfrs_smoe.binaries.sweep", "--help"],
                      raising=False)
  assert quiet.running_a_binary()
  monkeypatch.setattr(sys, "argv", ["notebook.py"])
  monkeypatch.setattr(sys, "orig_argv", ["python", "notebook.py"], raising=False)
  assert not quiet.running_a_binary()
