r"""Popularity, BST and S-MoE-BST on the same split over several seeds, as a markdown table.

Each (data set, protocol, model, seed) run trains with early stopping on validation NDCG@10 and
is evaluated once on the leave-one-out test targets by full ranking over the whole catalogue and
by the PHNS test. The table shows mean +- standard deviation over seeds, the test users, the
epochs trained and the training time. Protocols: "implicit" (every interaction a positive),
"engagement" (abandonments are not positives: completion <= 0.05 for streaming logs, rating <= 2
for MovieLens) and "default": engagement for the embedded default, implicit for MovieLens (as
the SASRec literature does). MovieLens is skipped with a message when --movielens_dir does not
exist.

  python experiments/model_comparison.py --output_dir=runs/comparison \
      --movielens_dir=../shared/data/ml-latest-small --seeds=0,1,2
  python experiments/model_comparison.py --models=popularity --protocols=implicit,engagement
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
from absl import logging

from tfrs_smoe import config as config_lib
from tfrs_smoe import reporting

flags.DEFINE_string("output_dir", "runs/model_comparison", "Where each run's artifacts and the "
                    "markdown table (model_comparison.md) go.")
flags.DEFINE_string("movielens_dir", "../shared/data/ml-latest-small", "Raw MovieLens "
                    "latest-small files; skipped when absent.")
flags.DEFINE_string("tfds_data_dir", "", "Where TFDS prepares the data sets ('' = TFDS default).")
flags.DEFINE_list("models", ["popularity", "bst", "smoe_bst"], "Models to compare.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds; each model trains once per seed.")
flags.DEFINE_list("datasets", ["streaming_logs", "movielens"], "Data sets to run.")
flags.DEFINE_list("protocols", ["default"], "default, implicit and/or engagement.")
flags.DEFINE_string("params_override", "", "YAML/JSON mapping applied to every run.")
flags.DEFINE_bool("resume", False, "Reuse finished runs whose params.yaml matches (their "
                  "outcome.json) instead of training them again.")
FLAGS = flags.FLAGS

_COLUMNS = ("ndcg@1", "ndcg@5", "ndcg@10", "recall@5", "recall@10", "mrr@5")
def _run(data, model, seed):
  config = config_lib.apply_overrides(config_lib.ExperimentConfig(), {
      "data": data, "model": {"name": model},
      "seed": seed})
  config = config_lib.override(config, FLAGS.params_override)
  protocol = "implicit" if data["implicit"] else "engagement"
  model_dir = os.path.join(FLAGS.output_dir, data["dataset"].replace("/", "_"),
                           f"{model}_{protocol}_seed{seed}")
  return config.data.dataset, reporting.run_experiment(config, model_dir, resume=FLAGS.resume)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  lines = reporting.table_header(["data", "protocol", "model"], _COLUMNS)
  runs = {}
  for protocol, data in reporting.data_configs(FLAGS.datasets, FLAGS.protocols,
                                               FLAGS.movielens_dir, FLAGS.tfds_data_dir):
    for model in FLAGS.models:
      seeds = [0] if model == "popularity" else [int(s) for s in FLAGS.seeds]
      labelled = [_run(data, model, seed) for seed in seeds]
      dataset, outcomes = labelled[0][0], [outcome for _, outcome in labelled]
      runs[f"{dataset}/{protocol}/{model}"] = outcomes
      for row in reporting.table_rows([dataset, protocol, model], outcomes, _COLUMNS):
        lines.append(row)
        print(row, flush=True)
  path = reporting.write_report(
      FLAGS.output_dir, "model_comparison", "experiments/model_comparison.py",
      f"seeds {', '.join(FLAGS.seeds)}; popularity is deterministic and runs once", lines, runs)
  print("\n".join(lines))
  print(f"Written to {path}")


if __name__ == "__main__":
  app.run(main)
