r"""Latency of the exported `recommend` signatures over synthetic catalogues of several sizes.

For each catalogue size, builds an S-MoE-BST (default architecture, untrained: latency does not
depend on the weights) over that many synthetic items, exports it with `RecommenderModule`
(k = 10), loads the SavedModel back with `tf.saved_model.load` as a server would, and times
`recommend` (history only) and `recommend_with_options` (the same request with k = 10 sent and 5
items excluded) on random histories (50 items by default) at batch 1 and batch 64, after 10
warm-up calls. Every item of the history is excluded from the recommendations, so longer
histories cost a little more. Prints p50 / p99 milliseconds and writes JSON. Brute-force scoring
over the whole catalogue; ScaNN is not wired in.

  python benchmarks/serving_latency.py --num_items=10000,100000,1000000 --output=/tmp/lat.json
  python benchmarks/serving_latency.py --num_items=100000 --batch_sizes=1 --history_lengths=500
"""

import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

import machine
from tfrs_smoe.models import smoe_bst
from tfrs_smoe.serving import export
from tfrs_smoe.serving import recommender_module
from tfrs_smoe.tasks import engagement_multitask

flags.DEFINE_list("num_items", ["10000", "100000", "1000000"], "Catalogue sizes.")
flags.DEFINE_list("batch_sizes", ["1", "64"], "Request batch sizes.")
flags.DEFINE_list("history_lengths", ["50"], "Items per request history.")
flags.DEFINE_list("signatures", ["recommend", "recommend_with_options"], "Signatures to time.")
flags.DEFINE_integer("requests", 200, "Timed requests per batch size (after 10 warm-up ones).")
flags.DEFINE_string("output", "", "JSON output path (optional).")
FLAGS = flags.FLAGS


def _export(num_items: int, directory: str) -> str:
  tf.keras.utils.set_random_seed(0)
  rng = np.random.RandomState(0)
  features = {"genres": rng.randint(1, 20, size=[num_items + 2, 3]).astype(np.int32),
              "year_bucket": rng.randint(1, 30, size=[num_items + 2]).astype(np.int32)}
  model = smoe_bst.SMoEBST(num_items + 2, 1000, features, smoe_bst.SMoEBSTConfig(),
                           engagement_multitask.MultitaskConfig(), max_len=50)
  model.initialize()
  item_ids = np.char.add("i", np.arange(num_items).astype(str))
  module = recommender_module.RecommenderModule(
      model, np.sort(item_ids), np.sort(np.char.add("u", np.arange(1000).astype(str))),
      np.arange(num_items + 2)[::-1], max_len=50, k=10)
  return export.save_version(module, directory)


def main(argv):
  del argv
  rows = []
  rng = np.random.RandomState(1)
  for num_items in (int(n) for n in FLAGS.num_items):
    with tempfile.TemporaryDirectory() as directory:
      signatures = tf.saved_model.load(_export(num_items, directory)).signatures
      options = {"k": tf.constant(10), "exclude": tf.constant(
          np.char.add("i", rng.randint(num_items, size=5).astype(str)))}
      for batch_size in (int(b) for b in FLAGS.batch_sizes):
        for length in (int(n) for n in FLAGS.history_lengths):
          histories = [tf.constant(np.char.add("i", rng.randint(
              num_items, size=[batch_size, length]).astype(str)))
                       for _ in range(FLAGS.requests + 10)]
          for name in FLAGS.signatures:
            signature = signatures[name]
            extra = options if name == "recommend_with_options" else {}
            latencies = []
            for index, history in enumerate(histories):
              start = time.perf_counter()
              signature(history=history, **extra)["item_ids"].numpy()
              if index >= 10:
                latencies.append((time.perf_counter() - start) * 1000)
            rows.append({"items": num_items, "batch": batch_size, "history": length,
                         "signature": name, "p50_ms": float(np.percentile(latencies, 50)),
                         "p99_ms": float(np.percentile(latencies, 99))})
            print(rows[-1], flush=True)
  machine.report(
      f"Exported recommend latency (S-MoE-BST, 3 experts, brute force, k = 10, "
      f"{FLAGS.requests} requests)",
      [("items", "items", "d"), ("batch", "batch", "d"), ("history", "history", "d"),
       ("signature", "signature", "s"), ("p50 ms", "p50_ms", ".1f"),
       ("p99 ms", "p99_ms", ".1f")], rows, FLAGS.output)


if __name__ == "__main__":
  app.run(main)
