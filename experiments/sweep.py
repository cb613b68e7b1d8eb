r"""One sweep over a registered variant set: data sets x variants x seeds, tables and plots.

Trains each variant of --variant_set (tfrs_smoe/variants.py: models, phns, retrieval, report,
max_len) once per seed on each data set and protocol, with early stopping on validation, tests
it on the leave-one-out test targets (full ranking over the whole catalogue, and the PHNS test
where the set evaluates it), and writes the set's tables (mean ± std over seeds, test users,
epochs, training seconds per run and per epoch), .json and plots into --output_dir
(tfrs_smoe/sweep.py says which). MovieLens is skipped with a message when --movielens_dir does
not exist. --resume reuses finished runs whose params.yaml matches, so an interrupted sweep goes
on where it stopped and stored records rebuild its reports without training. With
--readme=README.md each report replaces its generated section of the readme.

The older binaries are this sweep over one set, with their own flag names:
model_comparison.py (models), phns_ablation.py (phns), retrieval_comparison.py (retrieval) and
report.py (report).

  python experiments/sweep.py --variant_set=models --output_dir=runs/models \
      --movielens_dir=../shared/data/ml-latest-small --seeds=0,1,2 --resume
  python experiments/sweep.py --variant_set=report --variants=bst,smoe_bst,sasrec \
      --datasets=movielens --output_dir=runs/report --resume
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import logging

from tfrs_smoe import sweep

sweep.define_flags("report", output_dir="runs/sweep", choose_set=True)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  sweep.run_from_flags("experiments/sweep.py")


if __name__ == "__main__":
  app.run(main)
