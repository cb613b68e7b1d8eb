r"""Full-ranking evaluation throughput: users scored and ranked against the whole catalogue.

The scorer is a dot product of a [batch, 64] user matrix with a [num_items, 64] item table, the
shape of every embedding model's scoring; histories hold 50 items. Prints a table and writes JSON.

  python benchmarks/full_ranking_evaluation.py --output=/tmp/full_ranking.json
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from tfrs_smoe.data import examples as examples_lib
from tfrs_smoe.evaluation import full_ranking
import machine

flags.DEFINE_list("sizes", ["10000x10000", "10000x100000"], "USERSxITEMS pairs.")
flags.DEFINE_integer("batch_size", 256, "Users per scoring batch.")
flags.DEFINE_string("output", "", "JSON output path (optional).")
FLAGS = flags.FLAGS

_DIM = 64
_HISTORY = 50


def _examples(num_users: int, num_items: int, rng: np.random.RandomState):
  history = examples_lib.RaggedArray(
      rng.randint(2, num_items, size=num_users * _HISTORY).astype(np.int32),
      np.arange(num_users + 1) * _HISTORY)
  timestamps = examples_lib.RaggedArray(np.zeros(num_users * _HISTORY, np.int64),
                                        history.row_splits)
  empty = examples_lib.RaggedArray(np.zeros([0], np.int32), np.zeros(num_users + 1, np.int64))
  return examples_lib.EvalExamples(
      user_index=np.arange(num_users, dtype=np.int32) + 2,
      target=rng.randint(2, num_items, size=num_users).astype(np.int32),
      target_engagement=np.ones(num_users, np.float32),
      target_timestamp=np.zeros(num_users, np.int64),
      history=history, history_timestamps=timestamps, abandoned=empty, seen=history)


def main(argv):
  del argv
  rng = np.random.RandomState(0)
  rows = []
  for size in FLAGS.sizes:
    num_users, num_items = (int(v) for v in size.split("x"))
    items = tf.constant(rng.normal(size=[num_items, _DIM]).astype(np.float32))
    users = tf.constant(rng.normal(size=[num_users + 2, _DIM]).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32)])
    def score(user_index, items=items, users=users):
      return tf.matmul(tf.gather(users, user_index), items, transpose_b=True)

    evaluator = full_ranking.FullRankingEvaluator(num_items=num_items,
                                                  batch_size=FLAGS.batch_size,
                                                  max_len=_HISTORY)
    # A small warm-up run traces the scoring and metric functions before the clock starts.
    evaluator.evaluate(lambda f: score(f["user_index"]), _examples(8, num_items, rng))
    examples = _examples(num_users, num_items, rng)
    start = time.perf_counter()
    evaluator.evaluate(lambda f: score(f["user_index"]), examples)
    seconds = time.perf_counter() - start
    rows.append({"users": num_users, "items": num_items, "seconds": seconds,
                 "users_per_second": num_users / seconds})
  machine.report(
      f"Full-ranking evaluation, batch {FLAGS.batch_size}, dim {_DIM}, history {_HISTORY}",
      [("users", "users", "d"), ("items", "items", "d"), ("seconds", "seconds", ".2f"),
       ("users/s", "users_per_second", ".0f")], rows, FLAGS.output)


if __name__ == "__main__":
  app.run(main)
