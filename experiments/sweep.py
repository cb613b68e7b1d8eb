"""One sweep over a registered variant set: data sets x variants x seeds, tables and plots.

A thin wrapper over tfrs_smoe/binaries/sweep.py, with its flags, help and behaviour: the
installed console script `tfrs-smoe-sweep` and `python -m tfrs_smoe.binaries.sweep` are the same
binary.

Example:
  python experiments/sweep.py --help
"""

import os

# TensorFlow's C++ logs off unless asked for (TF_CPP_MIN_LOG_LEVEL=0 shows all), as in the
# console scripts (tfrs_smoe.binaries.quiet.BINARY_LOG_LEVEL).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# pylint: disable=g-import-not-at-top,wrong-import-position
from tfrs_smoe.binaries import sweep

if __name__ == "__main__":
  sweep.run()
