r"""One sweep over a registered variant set: data sets x variants x seeds, tables and plots.

Trains each variant of --variant_set (tfrs_smoe/variants.py: models, phns, retrieval, report,
max_len) once per seed on each data set and protocol, with early stopping on validation, tests
it on the leave-one-out test targets (full ranking over the whole catalogue, and the PHNS test
where the set evaluates it), and writes the set's tables (mean ± std over seeds, test users,
epochs, training seconds per run and per epoch), .json and plots into --output_dir
(tfrs_smoe/sweep.py says which). MovieLens is skipped with a message when --movielens_dir does
not exist. --resume reuses finished runs whose params.yaml matches, so an interrupted sweep goes
on where it stopped and stored records rebuild its reports without training. With
--readme=docs/results.md each report replaces its generated section there. The variant set,
the variants and both overrides are checked before any training.

The older binaries are this sweep over one set, with their own flag names:
experiments/model_comparison.py (models), phns_ablation.py (phns), retrieval_comparison.py
(retrieval) and report.py (report).

TensorFlow's C++ logs (its import's included) are off unless TF_CPP_MIN_LOG_LEVEL is set: 0
shows them all, 2 its errors. --verbosity=0 shows absl's INFO logs.

Example:
  tfrs-smoe-sweep --variant_set=models --output_dir=runs/models \
      --movielens_dir=../shared/data/ml-latest-small --seeds=0,1,2 --resume
  python experiments/sweep.py --variant_set=report --variants=bst,smoe_bst,sasrec \
      --datasets=movielens --output_dir=runs/report --resume
"""

import sys

from absl import flags

from tfrs_smoe import cli
from tfrs_smoe import sweep
from tfrs_smoe import variants as variants_lib

sweep.define_flags("report", output_dir="runs/sweep", choose_set=True)
FLAGS = flags.FLAGS
# The binary that each report names in its first line and in the command that reproduces it.
SCRIPT = "experiments/sweep.py"


def check_flags() -> None:
  """Checks the variant set, its variants and the overrides before any training.

  Raises:
    ValueError: an unknown variant set or variant, or an override that cannot be read or
      names an unknown data set or key.
  """
  variants_lib.get(FLAGS.variant_set).select(FLAGS.variants)
  cli.read_params_override(FLAGS.params_override)
  cli.read_params_override(FLAGS.dataset_params_override, flag="dataset_params_override")
  sweep.parse_dataset_overrides(FLAGS.dataset_params_override)


def main(argv):
  """Checks the flags, then runs the sweep."""
  del argv
  cli.set_up_logging()
  try:
    check_flags()
  except ValueError as error:
    cli.exit_with(error)
  sweep.run_from_flags(SCRIPT)


def run() -> None:
  """The console script `tfrs-smoe-sweep`."""
  cli.run(main, __doc__, [sys.modules[__name__], sweep])


if __name__ == "__main__":
  run()
