"""Prepares a watch log out of core on Apache Beam: sharded per-user records and statistics.

A thin wrapper over tfrs_smoe/binaries/prepare.py, with its flags, help and behaviour: the
installed console script `tfrs-smoe-prepare` and `python -m tfrs_smoe.binaries.prepare` are the
same binary.

Example:
  python experiments/prepare.py --help
"""

import os

# TensorFlow's C++ logs off unless asked for (TF_CPP_MIN_LOG_LEVEL=0 shows all), as in the
# console scripts (tfrs_smoe.binaries.quiet.BINARY_LOG_LEVEL).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# pylint: disable=g-import-not-at-top,wrong-import-position
from tfrs_smoe.binaries import prepare

if __name__ == "__main__":
  prepare.run()
