"""Trains a model, evaluates it on the validation split and saves it.

A thin wrapper over tfrs_smoe/binaries/train.py, with its flags, help and behaviour: the
installed console script `tfrs-smoe-train` and `python -m tfrs_smoe.binaries.train` are the same
binary.

Example:
  python experiments/train.py --help
"""

import os

# TensorFlow's C++ logs off unless asked for (TF_CPP_MIN_LOG_LEVEL=0 shows all), as in the
# console scripts (tfrs_smoe.binaries.quiet.BINARY_LOG_LEVEL).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# pylint: disable=g-import-not-at-top,wrong-import-position
from tfrs_smoe.binaries import train

if __name__ == "__main__":
  train.run()
