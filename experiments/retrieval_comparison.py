r"""Two-tower retrieval without and with sampling-bias correction, over several seeds.

Trains `--model=two_tower` once per (data set, correction, seed): correction "none" (plain
in-batch softmax), "counts" (logQ from the training counts) and "streaming" (logQ from the
streaming frequency estimator), with early stopping on validation Recall@10 by default, and
evaluates each on the leave-one-out test targets by full ranking over the whole catalogue
(history excluded). Writes retrieval_comparison.md (mean +- std of Recall@{10,50,100} and
NDCG@10) and retrieval_comparison.json into --output_dir. Protocols as in model_comparison:
"default" is engagement for the embedded default and implicit for MovieLens.

  python experiments/retrieval_comparison.py --output_dir=runs/retrieval \
      --movielens_dir=../shared/data/ml-latest-small --seeds=0,1,2
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
from absl import logging

from tfrs_smoe import config as config_lib
from tfrs_smoe import reporting

flags.DEFINE_string("output_dir", "runs/retrieval_comparison", "Where each run's artifacts and "
                    "the markdown table (retrieval_comparison.md) go.")
flags.DEFINE_string("movielens_dir", "../shared/data/ml-latest-small", "Raw MovieLens "
                    "latest-small files; skipped when absent.")
flags.DEFINE_string("tfds_data_dir", "", "Where TFDS prepares the data sets ('' = TFDS default).")
flags.DEFINE_list("corrections", ["none", "counts", "streaming"], "Sampling-bias corrections.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds; each correction trains once per seed.")
flags.DEFINE_list("datasets", ["streaming_logs", "movielens"], "Data sets to run.")
flags.DEFINE_list("protocols", ["default"], "default, implicit and/or engagement.")
flags.DEFINE_string("params_override", "", "YAML/JSON mapping applied to every run (after the "
                    "defaults of this script: batch 512, 20 epochs, monitor recall@10).")
flags.DEFINE_bool("resume", False, "Reuse finished runs whose params.yaml matches (their "
                  "outcome.json) instead of training them again.")
FLAGS = flags.FLAGS

_COLUMNS = ("recall@10", "recall@50", "recall@100", "ndcg@10")
# Retrieval trains on many more (history, next item) pairs than there are sequences, and its
# in-batch softmax wants large batches; Recall@10 is what the paper reports.
_DEFAULTS = {"train": {"batch_size": 512, "epochs": 20, "monitor": "recall@10"},
             "eval": {"ks": [1, 5, 10, 50, 100], "phns_test": False}}


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  lines = reporting.table_header(["data", "protocol", "correction"], _COLUMNS)
  runs = {}
  for protocol, data in reporting.data_configs(FLAGS.datasets, FLAGS.protocols,
                                               FLAGS.movielens_dir, FLAGS.tfds_data_dir):
    for correction in FLAGS.corrections:
      outcomes = []
      for seed in (int(s) for s in FLAGS.seeds):
        config = config_lib.apply_overrides(config_lib.ExperimentConfig(), {
            **_DEFAULTS, "data": data, "seed": seed,
            "model": {"name": "two_tower", "two_tower": {"correction": correction}}})
        config = config_lib.override(config, FLAGS.params_override)
        model_dir = os.path.join(FLAGS.output_dir, config.data.dataset.replace("/", "_"),
                                 f"{correction}_{protocol}_seed{seed}")
        outcomes.append(reporting.run_experiment(config, model_dir, resume=FLAGS.resume))
      dataset = config.data.dataset
      runs[f"{dataset}/{protocol}/{correction}"] = outcomes
      for row in reporting.table_rows([dataset, protocol, correction], outcomes, _COLUMNS):
        lines.append(row)
        print(row, flush=True)
  path = reporting.write_report(
      FLAGS.output_dir, "retrieval_comparison", "experiments/retrieval_comparison.py",
      f"two_tower, seeds {', '.join(FLAGS.seeds)}", lines, runs)
  print("\n".join(lines))
  print(f"Written to {path}")


if __name__ == "__main__":
  app.run(main)
