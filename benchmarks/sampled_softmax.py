r"""Full softmax vs sampled softmax over catalogue negatives: S-MoE-BST's loss at 10k-100k+ items.

Times `EngagementMultitask` (the S-MoE-BST loss with its default weights: softmax, CTR and
hinge over 8 in-batch row negatives; no completion head) forward + gradient inside one
tf.function, on random query vectors [positions, dim] and a random item table [num_items, dim]
(both variables, scores about N(0, 1)), at batch_size x max_len positions with next_k targets
each drawn from a Zipf distribution over the catalogue (item rank r with probability
proportional to 1 / r ** --zipf_exponent); the training counts given to the popularity sampler
are those expected counts. Variants: the full softmax, then `num_sampled` catalogue negatives
drawn uniformly, by popularity with the exact logQ correction ("counts"), by popularity with
the streaming estimator's ("streaming"), and by popularity uncorrected.

The full softmax's [positions, num_items] logits take positions x num_items x 4 bytes several
times over; above --max_full_logits elements it runs on fewer positions (the "positions"
column) and its positions/s is measured there (it scales about linearly in positions).

Quality proxy ("grad cos"): the cosine between each variant's gradient with respect to the item
table and the full softmax's, softmax term only, on the first --grad_positions positions,
averaged over --grad_draws draws (1 = the sampled gradient equals the full one in direction).
The streaming estimator first sees --estimator_warmup_steps batches of the positives. This is
not a ranking metric: the model's quality on the data sets is measured once `SMoEBST` passes
the training counts (see the task's docstring).

  nice python benchmarks/sampled_softmax.py --num_items=10000,100000 --output=/tmp/sampled.json
"""

import datetime
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
from tfrs_smoe.evaluation import metrics as metrics_lib
from tfrs_smoe.layers import candidate_scorer
from tfrs_smoe.tasks import engagement_multitask as multitask

flags.DEFINE_list("num_items", ["10000", "100000"], "Catalogue sizes (reserved ids included).")
flags.DEFINE_integer("batch_size", 128, "Sequences per batch.")
flags.DEFINE_integer("max_len", 50, "Positions per sequence.")
flags.DEFINE_integer("next_k", 3, "Targets per position (soft labels 1 / (k + 1)).")
flags.DEFINE_integer("dim", 64, "Vector size.")
flags.DEFINE_integer("num_sampled", 1024, "Catalogue negatives per batch.")
flags.DEFINE_float("zipf_exponent", 1.0, "Popularity skew of the targets.")
flags.DEFINE_float("estimator_learning_rate", 0.01, "alpha of the streaming estimator.")
flags.DEFINE_integer("estimator_warmup_steps", 500, "Batches the estimator sees first.")
flags.DEFINE_integer("steps", 8, "Timed steps per variant (after 2 warm-up steps).")
flags.DEFINE_integer("full_steps", 3, "Timed steps of the full softmax.")
flags.DEFINE_float("max_full_logits", 2.5e8, "Most positions x items of one full step.")
flags.DEFINE_integer("grad_positions", 512, "Positions of the gradient comparison.")
flags.DEFINE_integer("grad_draws", 3, "Sampled gradients averaged per comparison.")
flags.DEFINE_integer("seed", 0, "Seed of the vectors, targets and draws.")
flags.DEFINE_string("output", "", "JSON output path (optional).")
FLAGS = flags.FLAGS

# name -> (softmax, negative_sampler, sampling_correction)
_VARIANTS = (
    ("full softmax", "full", "rows", "none"),
    ("uniform", "sampled", "uniform", "none"),
    ("popularity + counts logQ", "sampled", "popularity", "counts"),
    ("popularity + streaming logQ", "sampled", "popularity", "streaming"),
    ("popularity, uncorrected", "sampled", "popularity", "none"),
)


def _task(softmax: str, sampler: str, correction: str, counts: np.ndarray,
          **weights) -> multitask.EngagementMultitask:
  config = multitask.MultitaskConfig(
      softmax=softmax, negative_sampler=sampler, sampling_correction=correction,
      num_sampled=FLAGS.num_sampled, estimator_learning_rate=FLAGS.estimator_learning_rate,
      completion_weight=0.0, **weights)
  return multitask.EngagementMultitask(config, candidate_scorer.CandidateScorer("dot"),
                                       candidate_counts=counts)


def _batch(num_items: int, rng: np.random.RandomState):
  """Query and table variables, [P, K] targets, weights, engagement, row negatives, counts."""
  positions = FLAGS.batch_size * FLAGS.max_len
  popularity = np.zeros(num_items)
  ranks = np.arange(1, num_items - metrics_lib.NUM_RESERVED_ITEMS + 1)
  popularity[metrics_lib.NUM_RESERVED_ITEMS:] = 1.0 / ranks ** FLAGS.zipf_exponent
  popularity /= popularity.sum()
  targets = rng.choice(num_items, size=[positions, FLAGS.next_k], p=popularity)
  query = tf.Variable(rng.normal(size=[positions, FLAGS.dim]).astype(np.float32))
  table = tf.Variable((rng.normal(size=[num_items, FLAGS.dim]) / np.sqrt(FLAGS.dim))
                      .astype(np.float32))
  weights = np.tile(1.0 / np.arange(1, FLAGS.next_k + 1), [positions, 1]).astype(np.float32)
  engagement = rng.uniform(size=[positions, FLAGS.next_k]).astype(np.float32)
  negatives = multitask.in_batch_negatives(tf.constant(targets, tf.int32), 8, seed=FLAGS.seed)
  counts = popularity * 100 * num_items  # Expected training counts of 100 positives per item.
  return {"query": query, "table": table, "targets": tf.constant(targets, tf.int32),
          "weights": tf.constant(weights), "engagement": tf.constant(engagement),
          "negatives": negatives, "counts": counts, "stream": popularity}


def _step_fn(task):
  @tf.function
  def step(query, table, targets, weights, engagement, negatives):
    with tf.GradientTape() as tape:
      tape.watch(query)
      loss = task(query, targets, weights, engagement, negatives, table, training=True)
    return tape.gradient(loss, [query, table])
  return step


def _positions_per_second(task, batch, positions: int, steps: int) -> float:
  step = _step_fn(task)
  args = (batch["query"][:positions], batch["table"], batch["targets"][:positions],
          batch["weights"][:positions], batch["engagement"][:positions],
          batch["negatives"][:positions])
  for _ in range(2):
    step(*args)
  start = time.perf_counter()
  for _ in range(steps):
    gradients = step(*args)
  tf.nest.map_structure(lambda g: tf.convert_to_tensor(g).numpy(), gradients)
  return positions * steps / (time.perf_counter() - start)


def _table_gradient(task, batch, draws: int) -> np.ndarray:
  """Mean gradient of the softmax term with respect to the table on the comparison rows."""
  n = FLAGS.grad_positions
  query = tf.constant(batch["query"][:n])
  step = _step_fn(task)
  gradients = [tf.convert_to_tensor(step(query, batch["table"], batch["targets"][:n],
                                         batch["weights"][:n], batch["engagement"][:n],
                                         batch["negatives"][:n])[1]).numpy().ravel()
               for _ in range(draws)]
  return np.mean(gradients, axis=0)


def _warm_up_estimator(task, batch, rng: np.random.RandomState) -> None:
  observe = tf.function(task.sampler.observe)
  num_items = len(batch["stream"])
  for _ in range(FLAGS.estimator_warmup_steps):
    observe(tf.constant(rng.choice(num_items, size=int(batch["targets"].shape[0]),
                                   p=batch["stream"]), tf.int32))


def main(argv):
  del argv
  tf.get_logger().setLevel("ERROR")  # One tf.function per variant: retracing is expected.
  tf.random.set_seed(FLAGS.seed)
  rows = []
  for num_items in [int(n) for n in FLAGS.num_items]:
    rng = np.random.RandomState(FLAGS.seed)
    batch = _batch(num_items, rng)
    positions = int(batch["targets"].shape[0])
    softmax_only = dict(ctr_weight=0.0, hinge_weight=0.0)
    full_gradient = _table_gradient(_task("full", "rows", "none", batch["counts"],
                                          **softmax_only), batch, 1)
    for name, softmax, sampler, correction in _VARIANTS:
      task = _task(softmax, sampler, correction, batch["counts"])
      quality = _task(softmax, sampler, correction, batch["counts"], **softmax_only)
      used = positions
      if softmax == "full":
        used = min(positions, int(FLAGS.max_full_logits // num_items))
      if correction == "streaming":
        _warm_up_estimator(quality, batch, rng)
      speed = _positions_per_second(task, batch, used,
                                    FLAGS.full_steps if softmax == "full" else FLAGS.steps)
      gradient = _table_gradient(quality, batch, 1 if softmax == "full" else FLAGS.grad_draws)
      cosine = float(gradient @ full_gradient / (np.linalg.norm(gradient)
                                                 * np.linalg.norm(full_gradient)))
      rows.append({"num_items": num_items, "variant": name, "positions": used,
                   "positions_per_second": speed, "grad_cos": cosine})
      print(f"  {num_items} {name}: {speed:.0f} positions/s, grad cos {cosine:.3f}",
            flush=True)
  for row in rows:
    full = next(r for r in rows if r["num_items"] == row["num_items"]
                and r["variant"] == "full softmax")
    row["speedup"] = row["positions_per_second"] / full["positions_per_second"]
  print(f"date: {datetime.datetime.now().isoformat(timespec='seconds')}")
  machine.report(
      f"S-MoE-BST loss + gradient, {FLAGS.batch_size} x {FLAGS.max_len} positions, "
      f"next_k {FLAGS.next_k}, dim {FLAGS.dim}, S = {FLAGS.num_sampled}, Zipf "
      f"{FLAGS.zipf_exponent:g} targets",
      [("variant", "variant", "s"), ("items", "num_items", "d"),
       ("positions", "positions", "d"), ("positions/s", "positions_per_second", ".0f"),
       ("x full", "speedup", ".1f"), ("grad cos", "grad_cos", ".3f")],
      rows, FLAGS.output, {"flags": {name: FLAGS[name].value for name in (
          "num_items", "batch_size", "max_len", "next_k", "dim", "num_sampled",
          "zipf_exponent", "estimator_learning_rate", "estimator_warmup_steps", "steps",
          "full_steps", "max_full_logits", "grad_positions", "grad_draws", "seed")}})


if __name__ == "__main__":
  app.run(main)
