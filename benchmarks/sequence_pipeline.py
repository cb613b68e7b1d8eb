r"""tf.data throughput of the training-example pipelines on the synthetic streaming log.

Generates the log in memory (no TFDS), splits it leave-one-out, and times full passes over the
batches the models train on (`Experiment.training_stream`): two-tower's (history window, next
item) pairs, and the whole-sequence batches of BST and S-MoE-BST (every chunk of each user,
shuffled, cut to the longest sequence of each batch) without and with PHNS negatives (HARD
preset, --num_negatives per position). Counts examples/s and target positions/s (a sequence
example of length L carries up to L positions), to set beside the models' training rates
(`benchmarks/training_throughput.py`). Prints a table and writes JSON.

  python benchmarks/sequence_pipeline.py --num_users=1500 --output=/tmp/pipeline.json
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
import numpy as np

from tfrs_smoe import config as config_lib
from tfrs_smoe import experiment as experiment_lib
from tfrs_smoe.data import splits
from tfrs_smoe.data import synthetic
import machine

flags.DEFINE_integer("num_users", 1500, "Synthetic users.")
flags.DEFINE_integer("num_titles", 2000, "Synthetic titles.")
flags.DEFINE_integer("max_len", 50, "History length.")
flags.DEFINE_integer("batch_size", 256, "Batch size.")
flags.DEFINE_integer("num_negatives", 10, "PHNS negatives per target position.")
flags.DEFINE_integer("passes", 3, "Timed passes; the median is reported.")
flags.DEFINE_string("output", "", "JSON output path (optional).")
FLAGS = flags.FLAGS


def _time_passes(dataset, positions_of):
  """Median seconds of a full pass, examples and target positions per pass."""
  seconds, examples, positions = [], 0, 0
  for _ in range(FLAGS.passes + 1):  # The first pass warms up tracing and is not timed.
    start = time.perf_counter()
    examples = positions = 0
    for batch in dataset:
      examples += int(batch["history"].shape[0])
      positions += positions_of(batch)
    seconds.append(time.perf_counter() - start)
  return float(np.median(seconds[1:])), examples, positions


def main(argv):
  del argv
  log, _ = synthetic.generate_watch_log(synthetic.SyntheticConfig(
      num_users=FLAGS.num_users, num_titles=FLAGS.num_titles))
  split = splits.leave_one_out(log)

  def training_batches(model_name, phns_preset="none"):
    config = config_lib.apply_overrides(config_lib.ExperimentConfig(), {
        "data": {"max_len": FLAGS.max_len}, "model": {"name": model_name},
        "train": {"batch_size": FLAGS.batch_size, "phns": {
            "preset": phns_preset, "num_negatives": FLAGS.num_negatives}}})
    return experiment_lib.Experiment(config, "/tmp/unused").training_stream(split).dataset(1)

  sequence_positions = lambda batch: int(np.sum(batch["target_weights"].numpy()[..., 0] > 0))
  # name -> (batches, target positions of a batch)
  shapes = {
      "windows": (training_batches("two_tower"), lambda batch: int(batch["history"].shape[0])),
      "sequences": (training_batches("smoe_bst"), sequence_positions),
      "seq+PHNS": (training_batches("smoe_bst", "hard"), sequence_positions),
  }
  rows = []
  for name, (batches, positions_of) in shapes.items():
    seconds, examples, positions = _time_passes(batches, positions_of)
    rows.append({"shape": name, "examples": examples, "positions": positions,
                 "seconds": seconds, "examples_per_second": examples / seconds,
                 "positions_per_second": positions / seconds})
  machine.report(
      f"Sequence pipelines, {FLAGS.num_users} users, max_len {FLAGS.max_len}, batch "
      f"{FLAGS.batch_size}, {FLAGS.num_negatives} PHNS negatives per position",
      [("shape", "shape", "s"), ("examples", "examples", "d"), ("positions", "positions", "d"),
       ("s/pass", "seconds", ".2f"), ("examples/s", "examples_per_second", ".0f"),
       ("positions/s", "positions_per_second", ".0f")], rows, FLAGS.output,
      {"flags": {"num_users": FLAGS.num_users, "max_len": FLAGS.max_len,
                 "batch_size": FLAGS.batch_size, "num_negatives": FLAGS.num_negatives}})


if __name__ == "__main__":
  app.run(main)
