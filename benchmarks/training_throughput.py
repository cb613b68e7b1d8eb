r"""Training throughput and peak memory of BST, S-MoE-BST, two-tower and SASRec, in targets/s.

Generates the synthetic log in memory (no TFDS), splits it leave-one-out and trains each model
variant on the batches `experiments/train.py` trains on (`Experiment.training_stream`): BST and
S-MoE-BST on whole sequences (every position of a sequence is a target, trained in one causal
pass) with the full-catalogue softmax and the auxiliary heads, two-tower on (history window,
next item) pairs with the in-batch softmax and streaming logQ correction (one target each),
SASRec on whole sequences with the full-catalogue softmax alone (next_k 1; dim 64, 2 blocks, one
head, its feed-forward width set by --feed_forward_dim).
Each variant runs in its own process, so its peak resident memory is its own, and trains in
one `fit` over a warm-up epoch and the timed ones (separate `fit` calls per epoch added several
seconds to some epochs). Reports the median timed epoch. Prints a table and writes JSON.

  python benchmarks/training_throughput.py --max_lens=50,200 --output=/tmp/training.json

At the size of the PyTorch SASRec reference of issue 9 (ml-100k's 1,682 items, dim 64,
feed-forward width 64, full cross-entropy only; --num_titles=900 makes 1,752 items):

  python benchmarks/training_throughput.py --num_titles=900 --feed_forward_dim=64 \
      --softmax_only --variants=bst,smoe_bst_2_experts,smoe_bst_3_experts

and of its 9.7k-item softmax (MovieLens latest-small's catalogue), the same with
--num_titles=7250 (9,743 items). The toolkit's SASRec at those sizes:

  python benchmarks/training_throughput.py --num_titles=7250 --feed_forward_dim=64 \
      --variants=sasrec
"""

import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
import numpy as np

import machine

# name -> (model name, expert windows)
VARIANTS = {
    "bst": ("bst", [0]),
    "smoe_bst_2_experts": ("smoe_bst", [5, 0]),
    "smoe_bst_3_experts": ("smoe_bst", [5, 20, 0]),
    # One block shared by the experts below one block of each (encoder.shared_blocks).
    "smoe_bst_3_experts_shared": ("smoe_bst", [5, 20, 0]),
    "two_tower": ("two_tower", [0]),
    "sasrec": ("sasrec", [0]),
}

flags.DEFINE_list("variants", list(VARIANTS), "Model variants to time.")
flags.DEFINE_list("max_lens", ["50"], "History lengths.")
flags.DEFINE_integer("num_users", 1500, "Synthetic users.")
flags.DEFINE_integer("num_titles", 2000, "Synthetic titles.")
flags.DEFINE_integer("batch_size", 128, "Sequences (two-tower: pairs) per step.")
flags.DEFINE_integer("feed_forward_dim", 256, "Feed-forward width of every transformer block.")
flags.DEFINE_bool("softmax_only", False,
                  "Train BST / S-MoE-BST on the full softmax alone, without the CTR, hinge and "
                  "completion heads (as a SASRec trained with full cross-entropy).")
flags.DEFINE_integer("epochs", 3, "Timed epochs after one warm-up epoch; the median is kept.")
flags.DEFINE_string("output", "", "JSON output path (optional).")
flags.DEFINE_string("run_one", "", "Internal: time one 'variant:max_len' and print JSON.")
FLAGS = flags.FLAGS


def _time_one(variant: str, max_len: int) -> dict:
  """Trains one variant for 1 + --epochs epochs; returns its rates and peak memory."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from tfrs_smoe import config as config_lib  # pylint: disable=import-outside-toplevel
  from tfrs_smoe import experiment as experiment_lib  # pylint: disable=import-outside-toplevel
  from tfrs_smoe.data import synthetic  # pylint: disable=import-outside-toplevel

  name, windows = VARIANTS[variant]
  task = {"ctr_weight": 0.0, "hinge_weight": 0.0, "completion_weight": 0.0}
  model_overrides = {"name": name, "task": task if FLAGS.softmax_only else {}, "encoder": {
      "expert_windows": windows, "feed_forward_dim": FLAGS.feed_forward_dim}}
  if variant.endswith("_shared"):
    model_overrides["encoder"].update(shared_blocks=1, num_blocks=1)
  data = {"max_len": max_len}
  if name == "sasrec":  # Its own architecture config; it trains on the next item only.
    model_overrides = {"name": name, "sasrec": {"feed_forward_dim": FLAGS.feed_forward_dim}}
    data.update(next_k=1, soft_labels=[1.0])
  config = config_lib.apply_overrides(config_lib.ExperimentConfig(), {
      "data": data, "model": model_overrides, "train": {"batch_size": FLAGS.batch_size}})
  log, _ = synthetic.generate_watch_log(synthetic.SyntheticConfig(
      num_users=FLAGS.num_users, num_titles=FLAGS.num_titles))
  experiment = experiment_lib.Experiment(config, "/tmp/unused")
  split = experiment.prepare_data(log)
  tf.keras.utils.set_random_seed(0)
  model = experiment.build_model(split)
  model.compile(tf.keras.optimizers.Adam(1e-3))
  stream = experiment.training_stream(split)
  # Targets of the first next-K slot: every non-padding position (sequences) or pair (windows).
  positions = sum(int(np.sum(batch["target_weights"].numpy()[..., 0] > 0))
                  for batch in stream.dataset(epochs=1))
  # One fit over all epochs, as train.py runs it, timed per epoch by a callback.
  starts, seconds = [], []
  timer = tf.keras.callbacks.LambdaCallback(
      on_epoch_begin=lambda epoch, logs: starts.append(time.perf_counter()),
      on_epoch_end=lambda epoch, logs: seconds.append(time.perf_counter() - starts[-1]))
  model.fit(stream.dataset(epochs=FLAGS.epochs + 1), epochs=FLAGS.epochs + 1,
            steps_per_epoch=stream.steps_per_epoch, callbacks=[timer], verbose=0)
  epoch_seconds = float(np.median(seconds[1:]))
  return {"variant": variant, "max_len": max_len, "items": split.item_vocabulary.size - 2,
          "positions_per_epoch": positions, "epoch_seconds": epoch_seconds,
          "timed_epoch_seconds": seconds[1:],
          "positions_per_second": positions / epoch_seconds,
          "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv):
  del argv
  if FLAGS.run_one:
    variant, max_len = FLAGS.run_one.split(":")
    print(json.dumps(_time_one(variant, int(max_len))))
    return
  rows = []
  for max_len in FLAGS.max_lens:
    for variant in FLAGS.variants:
      if variant not in VARIANTS:
        raise ValueError(f"Unknown variant {variant!r}; use {', '.join(VARIANTS)}.")
      args = [a for a in sys.argv[1:] if not a.startswith(("--output", "--variants",
                                                            "--max_lens"))]
      result = subprocess.run([sys.executable, os.path.abspath(__file__),
                               f"--run_one={variant}:{max_len}", *args],
                              capture_output=True, text=True, check=True)
      rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
      print(rows[-1], flush=True)
  machine.report(
      f"Training throughput, synthetic log ({FLAGS.num_users} users, {rows[0]['items']} items), "
      f"batch {FLAGS.batch_size} sequences (two_tower: pairs), feed-forward width "
      f"{FLAGS.feed_forward_dim}" + (", softmax only" if FLAGS.softmax_only else ""),
      [("variant", "variant", "s"), ("max_len", "max_len", "d"),
       ("positions", "positions_per_epoch", "d"), ("s/epoch", "epoch_seconds", ".2f"),
       ("positions/s", "positions_per_second", ".0f"), ("peak MiB", "peak_rss_mib", ".0f")],
      rows, FLAGS.output)


if __name__ == "__main__":
  app.run(main)
