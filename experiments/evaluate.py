r"""Evaluates a trained model of --model_dir on its test split (or validation split).

Reads params.yaml and the checkpoint that experiments/train.py wrote; the common flags override
the saved config (e.g. --data_dir on another machine). The loaded data must be the data set the
run was trained on (its vocabularies/ are checked first; another one is an error naming both). Writes metrics_<split>.json and TensorBoard
logs (logs/<split>) into --model_dir and prints the metrics table.

Example:
  python experiments/evaluate.py --model_dir=runs/popularity
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
from absl import logging

from tfrs_smoe import cli
from tfrs_smoe import config as config_lib
from tfrs_smoe import experiment as experiment_lib
from tfrs_smoe import run_directory
from tfrs_smoe.data import schema

cli.define_flags()
flags.DEFINE_enum("split", "test", ["validation", "test"], "Which targets to evaluate on.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  config = cli.resolve_config(config_lib.load_params(FLAGS.model_dir), FLAGS)
  experiment = experiment_lib.Experiment(config, FLAGS.model_dir)
  try:
    split = experiment.prepare_data()
    model = experiment.restore(split)
  except (run_directory.DataMismatchError, schema.DataError) as error:
    sys.exit(f"evaluate.py: {error}")
  results = experiment.evaluate(model, split, FLAGS.split, progress=True)
  metrics_path = experiment.write_results(results, FLAGS.split)
  print(f"\n{FLAGS.split.capitalize()} metrics of {config.model.name} on {config.data.dataset}:")
  print(experiment_lib.format_table(results))
  print(f"Metrics written to {metrics_path}")


if __name__ == "__main__":
  app.run(main)
