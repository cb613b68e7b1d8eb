r"""Popularity, BST and S-MoE-BST on the same split over several seeds, as a markdown table.

Each (data set, model, seed) run trains with early stopping on validation NDCG@10 and is
evaluated once on the leave-one-out test targets by full ranking over the whole catalogue (and
by the PHNS test). The table shows mean +- standard deviation over seeds, the epochs trained
and the training time. The embedded default is evaluated under the engagement protocol,
MovieLens latest-small under the implicit protocol (every rating a positive, as the SASRec
literature does); MovieLens is skipped with a message when --movielens_dir does not exist.

  python experiments/model_comparison.py --output_dir=runs/comparison \
      --movielens_dir=../shared/data/ml-latest-small --seeds=0,1,2
"""

import datetime
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
from absl import logging
import numpy as np

from tfrs_smoe import config as config_lib
from tfrs_smoe import experiment as experiment_lib

flags.DEFINE_string("output_dir", "runs/model_comparison", "Where each run's artifacts and the "
                    "markdown table (model_comparison.md) go.")
flags.DEFINE_string("movielens_dir", "../shared/data/ml-latest-small", "Raw MovieLens "
                    "latest-small files; skipped when absent.")
flags.DEFINE_string("tfds_data_dir", "", "Where TFDS prepares the data sets ('' = TFDS default).")
flags.DEFINE_list("models", ["popularity", "bst", "smoe_bst"], "Models to compare.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds; each model trains once per seed.")
flags.DEFINE_list("datasets", ["streaming_logs", "movielens"], "Data sets to run.")
flags.DEFINE_string("params_override", "", "YAML/JSON mapping applied to every run.")
FLAGS = flags.FLAGS

_COLUMNS = ("ndcg@1", "ndcg@5", "ndcg@10", "recall@5", "recall@10", "mrr@5")
_DATASETS = {
    "streaming_logs": ("streaming_logs (synthetic, small), engagement protocol",
                       {"dataset": "streaming_logs", "implicit": False}),
    "movielens": ("MovieLens latest-small, implicit protocol",
                  {"dataset": "movielens/latest-small", "implicit": True}),
}


def _run(data, model, seed):
  """Trains and tests one model; returns (test results, epochs trained, seconds)."""
  config = config_lib.apply_overrides(config_lib.ExperimentConfig(), {
      "data": {**data, "tfds_data_dir": FLAGS.tfds_data_dir}, "model": {"name": model},
      "seed": seed})
  config = config_lib.override(config, FLAGS.params_override)
  model_dir = os.path.join(FLAGS.output_dir, data["dataset"].replace("/", "_"),
                           f"{model}_seed{seed}")
  config_lib.save_params(config, model_dir)
  experiment = experiment_lib.Experiment(config, model_dir)
  split = experiment.prepare_data()
  start = time.time()
  trained = experiment.fit(split)
  seconds = time.time() - start
  epochs = len(trained.history.epoch) if getattr(trained, "history", None) else 0
  results = experiment.evaluate(trained, split, "test")
  experiment.write_results(results, "test")
  return results, epochs, seconds


def _cell(values):
  return f"{np.mean(values):.4f} ± {np.std(values):.4f}"


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  lines = [f"| data | model | evaluation | {' | '.join(_COLUMNS)} | epochs | train s/run |",
           "|" + "---|" * (len(_COLUMNS) + 5)]
  runs = {}
  for dataset in FLAGS.datasets:
    label, data = _DATASETS[dataset]
    if dataset == "movielens":
      if not os.path.isdir(FLAGS.movielens_dir):
        print(f"Skipping MovieLens: {FLAGS.movielens_dir} does not exist.")
        continue
      data = {**data, "data_dir": FLAGS.movielens_dir}
    for model in FLAGS.models:
      seeds = [0] if model == "popularity" else [int(s) for s in FLAGS.seeds]
      outcomes = [_run(data, model, seed) for seed in seeds]
      runs[f"{dataset}/{model}"] = [{"seed": seed, "results": results, "epochs": epochs,
                                     "train_seconds": seconds}
                                    for seed, (results, epochs, seconds) in zip(seeds, outcomes)]
      for protocol in outcomes[0][0]:
        cells = " | ".join(_cell([results[protocol][c] for results, _, _ in outcomes])
                           for c in _COLUMNS)
        epochs = np.mean([epochs for _, epochs, _ in outcomes])
        seconds = np.mean([seconds for _, _, seconds in outcomes])
        lines.append(f"| {label} | {model} | {protocol.replace('_', ' ')} | {cells} | "
                     f"{epochs:.0f} | {seconds:.0f} |")
      print(lines[-1], flush=True)
  table = "\n".join(lines)
  os.makedirs(FLAGS.output_dir, exist_ok=True)
  with open(os.path.join(FLAGS.output_dir, "model_comparison.json"), "w",
            encoding="utf-8") as f:
    json.dump(runs, f, indent=2)
  path = os.path.join(FLAGS.output_dir, "model_comparison.md")
  with open(path, "w", encoding="utf-8") as f:
    f.write(f"Generated by experiments/model_comparison.py on "
            f"{datetime.date.today().isoformat()} (seeds {', '.join(FLAGS.seeds)}; popularity "
            f"is deterministic and runs once).\n\n{table}\n")
  print(table)
  print(f"Written to {path}")


if __name__ == "__main__":
  app.run(main)
