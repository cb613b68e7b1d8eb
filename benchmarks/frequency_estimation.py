r"""Streaming frequency estimation: the simulation of Yi et al. 2019 (section 6.1) and overhead.

A stream of batches is drawn from a fixed power-law distribution over the items (item i has
probability proportional to 1 / i). `StreamingFrequencyEstimator` sees the stream; every
--eval_every steps the estimate p_hat of each item is compared with its true expected number of
occurrences per step p = batch_size * q_i. The error is the mean over items of |p_hat - p| / p.
Variants: the learning rates alpha of the paper (0.01, 0.1) with H = 5000 buckets (no
collisions to speak of for 1,000 items), and with collisions (H = --collision_buckets per hash
function) one hash function against several. Prints the error at a few steps, writes JSON and a
plot of the error over steps. Then times the estimator's update + read inside a tf.function per
training step (the overhead it adds) for several batch and bucket sizes.

  python benchmarks/frequency_estimation.py --plot=/tmp/frequency.png --output=/tmp/freq.json
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

import machine
from tfrs_smoe.layers import frequency_estimator

flags.DEFINE_integer("num_items", 1000, "Items of the power-law distribution.")
flags.DEFINE_integer("batch_size", 128, "Ids per step.")
flags.DEFINE_integer("num_steps", 10_000, "Steps of the stream.")
flags.DEFINE_integer("eval_every", 100, "Steps between error measurements.")
flags.DEFINE_integer("num_buckets", 5000, "H of the no-collision variants.")
flags.DEFINE_integer("collision_buckets", 500, "H per hash function of the collision variants.")
flags.DEFINE_integer("seed", 0, "Seed of the stream and the hash functions.")
flags.DEFINE_string("plot", "", "PNG path of the error-over-steps plot (optional).")
flags.DEFINE_string("output", "", "JSON output path (optional).")
FLAGS = flags.FLAGS

# name -> (alpha, buckets flag, hash functions)
_VARIANTS = (
    ("alpha=0.01, 1 hash", 0.01, "num_buckets", 1),
    ("alpha=0.1, 1 hash", 0.1, "num_buckets", 1),
    ("alpha=0.01, collisions, 1 hash", 0.01, "collision_buckets", 1),
    ("alpha=0.01, collisions, 2 hashes", 0.01, "collision_buckets", 2),
    ("alpha=0.01, collisions, 4 hashes", 0.01, "collision_buckets", 4),
)


def _simulate(stream: np.ndarray, expected: np.ndarray, alpha: float, num_buckets: int,
              num_hashes: int) -> np.ndarray:
  """[num_steps // eval_every] mean relative error of the estimate after each interval."""
  estimator = frequency_estimator.StreamingFrequencyEstimator(
      num_buckets, num_hashes, alpha, initial_gap=100.0, seed=FLAGS.seed)
  items = tf.range(FLAGS.num_items)

  @tf.function
  def run_interval(batches, first_step):
    for offset in tf.range(tf.shape(batches)[0]):
      estimator(batches[offset], first_step + tf.cast(offset, tf.int64), training=True)
    return estimator(items, first_step)

  errors = []
  for start in range(0, len(stream), FLAGS.eval_every):
    estimate = run_interval(tf.constant(stream[start:start + FLAGS.eval_every]),
                            tf.constant(start + 1, tf.int64)).numpy()
    errors.append(float(np.mean(np.abs(estimate - expected) / expected)))
  return np.array(errors)


def _overhead(batch_size: int, num_buckets: int, num_hashes: int) -> float:
  """Median microseconds of one update + read of `batch_size` ids inside a tf.function."""
  estimator = frequency_estimator.StreamingFrequencyEstimator(num_buckets, num_hashes)
  rng = np.random.RandomState(FLAGS.seed)
  batches = tf.constant(rng.randint(0, 10 * num_buckets, size=[20, batch_size]))

  @tf.function
  def steps(first_step):
    total = tf.constant(0.0)
    for offset in tf.range(20):
      total += tf.reduce_sum(estimator(batches[offset], first_step + offset, training=True))
    return total

  steps(tf.constant(1))
  timings = []
  for repeat in range(7):
    start = time.perf_counter()
    steps(tf.constant(20 * (repeat + 1))).numpy()
    timings.append((time.perf_counter() - start) / 20 * 1e6)
  return float(np.median(timings))


def _plot(curves, path: str) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  figure, axis = plt.subplots(figsize=(7, 4))
  for name, (steps, errors) in curves.items():
    axis.plot(steps, errors, label=name)
  axis.set_xlabel("training step")
  axis.set_ylabel("mean |p_hat - p| / p")
  axis.set_yscale("log")
  axis.set_title(f"Streaming frequency estimation, {FLAGS.num_items} power-law items, "
                 f"batch {FLAGS.batch_size}", fontsize=9)
  axis.legend(fontsize=8)
  figure.tight_layout()
  figure.savefig(path, dpi=120)


def main(argv):
  del argv
  rng = np.random.RandomState(FLAGS.seed)
  weights = 1.0 / np.arange(1, FLAGS.num_items + 1)
  probabilities = weights / weights.sum()
  stream = rng.choice(FLAGS.num_items, size=[FLAGS.num_steps, FLAGS.batch_size],
                      p=probabilities).astype(np.int64)
  expected = FLAGS.batch_size * probabilities
  steps = np.arange(FLAGS.eval_every, FLAGS.num_steps + 1, FLAGS.eval_every)
  checkpoints = [s for s in (1000, 2000, 5000, 10_000, 20_000) if s <= FLAGS.num_steps]
  rows, curves = [], {}
  for name, alpha, buckets_flag, num_hashes in _VARIANTS:
    num_buckets = getattr(FLAGS, buckets_flag)
    errors = _simulate(stream, expected, alpha, num_buckets, num_hashes)
    curves[name] = (steps[:len(errors)].tolist(), errors.tolist())
    row = {"variant": name, "buckets": num_buckets}
    row.update({f"step {s}": float(errors[s // FLAGS.eval_every - 1]) for s in checkpoints})
    rows.append(row)
  machine.report(
      f"Frequency estimation error (mean relative error of p over {FLAGS.num_items} items), "
      f"batch {FLAGS.batch_size}, B = 100 at start",
      [("variant", "variant", "s"), ("H", "buckets", "d")]
      + [(f"step {s}", f"step {s}", ".3f") for s in checkpoints], rows, "")
  overhead = []
  for batch_size in (128, 1024):
    for num_buckets, num_hashes in ((5000, 1), (1_000_000, 1), (1_000_000, 4)):
      overhead.append({"batch": batch_size, "buckets": num_buckets, "hashes": num_hashes,
                       "microseconds": _overhead(batch_size, num_buckets, num_hashes)})
  machine.report(
      "Estimator overhead per training step (update + read inside a tf.function)",
      [("batch", "batch", "d"), ("H", "buckets", "d"), ("hashes", "hashes", "d"),
       ("us/step", "microseconds", ".0f")], overhead, FLAGS.output,
      extra={"errors": rows, "curves": curves, "flags": {
          name: FLAGS[name].value for name in ("num_items", "batch_size", "num_steps",
                                               "eval_every", "num_buckets",
                                               "collision_buckets", "seed")}})
  if FLAGS.plot:
    _plot(curves, FLAGS.plot)
    print(f"Plot: {FLAGS.plot}")


if __name__ == "__main__":
  app.run(main)
