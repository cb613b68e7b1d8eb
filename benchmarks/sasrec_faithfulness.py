r"""SASRec faithfulness check: the toolkit's SASRec on MovieLens latest-small over seeds.

Trains and evaluates `--model=sasrec` with the binaries (experiments/train.py, then
experiments/evaluate.py), one seed after the other, under `nice`, on the implicit protocol with
leave-one-out targets, max_len 50, next_k 1, dim 64, 2 blocks, lr 1e-3, batch 128 and early
stopping on validation NDCG@10 (patience 20, at most 200 epochs), the settings of the PyTorch
SASRec reference in docs/results.md (test NDCG@10 0.0566 / 0.0512 on 2 seeds at dropout 0.5).
Prints one row per seed (epochs trained, the best epoch, training seconds per epoch, validation
and test NDCG@10 / NDCG@1 / Recall@10) and their mean and standard deviation.

  python benchmarks/sasrec_faithfulness.py --data_dir=../shared/data/ml-latest-small \
      --tfds_data_dir=/tmp/tfds --runs_dir=/tmp/sasrec_runs --seeds=0,1,2

--params_override is merged into the settings above (e.g. 'model: {sasrec: {dropout: 0.2}}');
--resume keeps what a seed's run directory already holds (its training, timed in
train_seconds.json, and its metrics_test.json).
"""

import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
import numpy as np
import yaml

import machine

SETTINGS = {
    "data": {"implicit": True, "max_len": 50, "next_k": 1, "soft_labels": [1.0]},
    "model": {"sasrec": {"dim": 64, "num_blocks": 2, "feed_forward_dim": 64}},
    "train": {"epochs": 200, "batch_size": 128, "learning_rate": 0.001,
              "early_stopping_patience": 20, "phns": {"preset": "none"}},
    "eval": {"phns_test": False},
}
METRICS = ("ndcg@10", "ndcg@1", "recall@10")
_EXPERIMENTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "experiments")

flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds, trained one after the other.")
flags.DEFINE_string("data_dir", None, "Raw MovieLens latest-small files.")
flags.DEFINE_string("tfds_data_dir", "", "Where TFDS keeps its prepared copy.")
flags.DEFINE_string("runs_dir", "/tmp/sasrec_runs", "One model dir per seed: <runs_dir>/seed<n>.")
flags.DEFINE_string("params_override", "", "YAML merged into the settings above.")
flags.DEFINE_integer("nice", 10, "Niceness of the training and evaluation processes.")
flags.DEFINE_bool("resume", False, "Keep the seeds that have metrics_test.json already.")
flags.DEFINE_string("output", "", "JSON output path (optional).")
flags.mark_flag_as_required("data_dir")
FLAGS = flags.FLAGS


def _merged(base: dict, extra: dict) -> dict:
  merged = dict(base)
  for key, value in extra.items():
    merged[key] = (_merged(base[key], value) if isinstance(value, dict) and
                   isinstance(base.get(key), dict) else value)
  return merged


def _read(path: str) -> dict:
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _run_seed(seed: int, settings: dict) -> dict:
  """Trains and evaluates one seed (unless resumed); returns its row."""
  model_dir = os.path.join(FLAGS.runs_dir, f"seed{seed}")
  timing_path = os.path.join(model_dir, "train_seconds.json")
  common = [f"--model_dir={model_dir}", f"--data_dir={FLAGS.data_dir}",
            f"--tfds_data_dir={FLAGS.tfds_data_dir}"]
  nice = ["nice", "-n", str(FLAGS.nice), sys.executable]
  if not (FLAGS.resume and os.path.isfile(timing_path)):
    # Without --overwrite: a finished run is refused, a killed one resumes from its backup
    # (its seconds per epoch then count the resumed epochs' time only).
    start = time.perf_counter()
    subprocess.run([*nice, os.path.join(_EXPERIMENTS, "train.py"), "--model=sasrec",
                    "--dataset=movielens/latest-small", f"--seed={seed}",
                    f"--params_override={json.dumps(settings)}", *common], check=True)
    with open(timing_path, "w", encoding="utf-8") as f:
      json.dump({"train_seconds": time.perf_counter() - start}, f)
  if not (FLAGS.resume and os.path.isfile(os.path.join(model_dir, "metrics_test.json"))):
    subprocess.run([*nice, os.path.join(_EXPERIMENTS, "evaluate.py"), *common], check=True)
  history = _read(os.path.join(model_dir, "history.json"))
  epochs = len(history["loss"])
  row = {"seed": str(seed), "epochs": epochs,
         "best_epoch": int(np.argmax(history["val_ndcg@10"])) + 1,
         # Wall time of train.py (data loading, validation and the final evaluation included).
         "seconds_per_epoch": _read(timing_path)["train_seconds"] / epochs}
  for subset in ("validation", "test"):
    metrics = _read(os.path.join(model_dir, f"metrics_{subset}.json"))["full_ranking"]
    row.update({f"{subset}_{name}": metrics[name] for name in METRICS})
  return row


def main(argv):
  del argv
  settings = _merged(SETTINGS, yaml.safe_load(FLAGS.params_override) or {})
  rows = []
  for seed in FLAGS.seeds:
    rows.append(_run_seed(int(seed), settings))
    print(json.dumps(rows[-1]), flush=True)
  columns = [("seed", "seed", "s"), ("epochs", "epochs", ".0f"), ("best", "best_epoch", ".0f"),
             ("s/epoch", "seconds_per_epoch", ".1f")]
  columns += [(f"{label} {name}", f"{subset}_{name}", ".4f")
              for subset, label in (("validation", "val"), ("test", "test")) for name in METRICS]
  numeric = [key for _, key, _ in columns[1:]]
  summary = [{"seed": label, **{key: function([row[key] for row in rows]) for key in numeric}}
             for label, function in (("mean", np.mean), ("std", np.std))]
  machine.report(f"SASRec on MovieLens latest-small, seeds {', '.join(FLAGS.seeds)}, settings "
                 f"{json.dumps(settings)}", columns, rows + summary, FLAGS.output,
                 {"settings": settings})


if __name__ == "__main__":
  app.run(main)
