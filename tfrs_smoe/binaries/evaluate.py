r"""Evaluates a trained model of --model_dir on its test split (or validation split).

Reads params.yaml and the checkpoint that tfrs-smoe-train wrote; the common flags override the
saved config (e.g. --data_dir on another machine), and the result is checked whole before any
data is loaded. The loaded data must be the data set the run was trained on (its vocabularies/
are checked first; another one is an error naming both). Writes metrics_<split>.json and
TensorBoard logs (logs/<split>) into --model_dir and prints the metrics table.

TensorFlow's C++ logs (its import's included) are off unless TF_CPP_MIN_LOG_LEVEL is set: 0
shows them all, 2 its errors. --verbosity=0 shows absl's INFO logs.

Example:
  tfrs-smoe-evaluate --model_dir=runs/popularity
  python -m tfrs_smoe.binaries.evaluate --model_dir=runs/smoe_bst --split=validation
  python experiments/evaluate.py --model_dir=runs/popularity
"""

import sys

from absl import flags

from tfrs_smoe import cli
from tfrs_smoe import config as config_lib
from tfrs_smoe import experiment as experiment_lib
from tfrs_smoe import run_directory
from tfrs_smoe.data import schema

cli.define_flags()
flags.DEFINE_enum("split", "test", ["validation", "test"], "Which targets to evaluate on.")
FLAGS = flags.FLAGS


def main(argv):
  """Restores the run of --model_dir and evaluates it on --split."""
  del argv
  cli.set_up_logging()
  try:
    config = cli.resolve_config(config_lib.load_params(FLAGS.model_dir), FLAGS)
    experiment_lib.check_data_source(config.data)
  except (FileNotFoundError, ValueError) as error:
    cli.exit_with(error)
  experiment = experiment_lib.Experiment(config, FLAGS.model_dir)
  try:
    split = experiment.prepare_data()
    model = experiment.restore(split)
  except (run_directory.DataMismatchError, schema.DataError) as error:
    cli.exit_with(error)
  results = experiment.evaluate(model, split, FLAGS.split, progress=sys.stdout.isatty())
  metrics_path = experiment.write_results(results, FLAGS.split)
  print(f"\n{FLAGS.split.capitalize()} metrics of {config.model.name} on {config.data.dataset}:")
  print(experiment_lib.format_table(results))
  print(f"Metrics written to {metrics_path}")


def run() -> None:
  """The console script `tfrs-smoe-evaluate`."""
  cli.run(main, __doc__, [sys.modules[__name__], cli])


if __name__ == "__main__":
  run()
