r"""Two-tower retrieval without and with sampling-bias correction, over several seeds.

The sweep over the variant set "retrieval" (experiments/sweep.py --variant_set=retrieval, with
--corrections naming its variants). Trains `--model=two_tower` once per (data set, correction,
seed): correction "none" (plain in-batch softmax), "counts" (logQ from the training counts) and
"streaming" (logQ from the streaming frequency estimator), with batch 512, 20 epochs and early
stopping on validation Recall@10 (the set's settings; --params_override goes over them), and
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
from absl import logging

from tfrs_smoe import sweep
from tfrs_smoe import variants

sweep.define_flags("retrieval", output_dir="runs/retrieval_comparison",
                   variants_flag="corrections")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  sweep.run_from_flags("experiments/retrieval_comparison.py", "corrections",
                       variants.get("retrieval"))


if __name__ == "__main__":
  app.run(main)
