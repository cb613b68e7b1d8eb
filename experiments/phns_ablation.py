r"""The PHNS ablation of the S-MoE-BST paper: training negatives none / EASY / MEDIUM / HARD.

Each preset trains the model over several seeds under the engagement protocol (abandonments:
completion <= 0.05 for the embedded default, rating <= 2 for MovieLens) and is tested on the
leave-one-out targets by full ranking ("standard") and by the PHNS test (each target against the
user's abandoned items and trending and tailing items). Writes phns_ablation.md (mean +- std of
NDCG@1, NDCG@5, Recall@5, MRR@5), phns_ablation.json and phns_ablation.png (NDCG@1 per preset
under both tests; needs matplotlib, `pip install -e ".[plots]"`) into --output_dir. MovieLens is
skipped with a message when --movielens_dir does not exist.

  python experiments/phns_ablation.py --output_dir=runs/phns_ablation \
      --movielens_dir=../shared/data/ml-latest-small --seeds=0,1,2
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
from absl import logging
import numpy as np

from tfrs_smoe import config as config_lib
from tfrs_smoe import reporting

flags.DEFINE_string("output_dir", "runs/phns_ablation", "Where runs, table and plot go.")
flags.DEFINE_string("movielens_dir", "../shared/data/ml-latest-small", "Raw MovieLens "
                    "latest-small files; skipped when absent.")
flags.DEFINE_string("tfds_data_dir", "", "Where TFDS prepares the data sets ('' = TFDS default).")
flags.DEFINE_string("model", "smoe_bst", "Model trained with each preset.")
flags.DEFINE_list("presets", ["none", "easy", "medium", "hard"], "PHNS presets to compare.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds; each preset trains once per seed.")
flags.DEFINE_list("datasets", ["streaming_logs", "movielens"], "streaming_logs and/or movielens.")
flags.DEFINE_string("params_override", "", "YAML/JSON mapping applied to every run.")
flags.DEFINE_bool("resume", False, "Reuse finished runs whose params.yaml matches (their "
                  "outcome.json) instead of training them again.")
FLAGS = flags.FLAGS

_COLUMNS = ("ndcg@1", "ndcg@5", "recall@5", "mrr@5")
_DATA = {"streaming_logs": {"dataset": "streaming_logs"},
         "movielens": {"dataset": "movielens/latest-small"}}


def _plot(runs, path):
  """Bars of mean NDCG@1 per preset, standard test beside PHNS test, one panel per data set."""
  try:
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    from matplotlib import pyplot  # pylint: disable=import-outside-toplevel
  except ImportError:
    print("matplotlib is not installed: no plot (pip install -e '.[plots]').")
    return
  datasets = sorted({key.split("|")[0] for key in runs})
  figure, axes = pyplot.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.5),
                                 squeeze=False)
  for axis, dataset in zip(axes[0], datasets):
    presets = [key.split("|")[1] for key in runs if key.startswith(dataset + "|")]
    positions = np.arange(len(presets))
    for offset, protocol in ((-0.2, "full_ranking"), (0.2, "phns_test")):
      values = [[o.results[protocol]["ndcg@1"] for o in runs[f"{dataset}|{preset}"]]
                for preset in presets]
      axis.bar(positions + offset, [np.mean(v) for v in values], 0.4,
               yerr=[np.std(v) for v in values], label=protocol.replace("_", " "))
    axis.set_xticks(positions, presets)
    axis.set_title(dataset)
    axis.set_ylabel("NDCG@1")
    axis.legend()
  figure.tight_layout()
  figure.savefig(path, dpi=120)
  print(f"Plot written to {path}")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  lines = reporting.table_header(["data", "PHNS"], _COLUMNS)
  runs = {}
  for name in FLAGS.datasets:
    data = {**_DATA[name], "implicit": False, "tfds_data_dir": FLAGS.tfds_data_dir}
    if name == "movielens":
      if not os.path.isdir(FLAGS.movielens_dir):
        print(f"Skipping MovieLens: {FLAGS.movielens_dir} does not exist.")
        continue
      data["data_dir"] = FLAGS.movielens_dir
    for preset in FLAGS.presets:
      outcomes = []
      for seed in (int(s) for s in FLAGS.seeds):
        config = config_lib.apply_overrides(config_lib.ExperimentConfig(), {
            "data": data, "model": {"name": FLAGS.model},
            "train": {"phns": {"preset": preset, "seed": seed}}, "seed": seed})
        config = config_lib.override(config, FLAGS.params_override)
        model_dir = os.path.join(FLAGS.output_dir, name, f"{preset}_seed{seed}")
        outcomes.append(reporting.run_experiment(config, model_dir, resume=FLAGS.resume))
      dataset = config.data.dataset
      runs[f"{dataset}|{preset}"] = outcomes
      for row in reporting.table_rows([dataset, preset], outcomes, _COLUMNS):
        lines.append(row)
        print(row, flush=True)
  path = reporting.write_report(FLAGS.output_dir, "phns_ablation", "experiments/phns_ablation.py",
                                f"model {FLAGS.model}, seeds {', '.join(FLAGS.seeds)}", lines,
                                runs)
  print("\n".join(lines))
  print(f"Written to {path}")
  if runs:
    _plot(runs, os.path.join(FLAGS.output_dir, "phns_ablation.png"))


if __name__ == "__main__":
  app.run(main)
