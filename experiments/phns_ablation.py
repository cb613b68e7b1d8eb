r"""The PHNS ablation of the S-MoE-BST paper: training negatives none / EASY / MEDIUM / HARD.

The sweep over the variant set "phns" (experiments/sweep.py --variant_set=phns, with --presets
naming its variants and --model the model each preset trains). Each preset trains over several
seeds under the engagement protocol (abandonments: completion <= 0.05 for the embedded default,
rating <= 2 for MovieLens) and is tested on the leave-one-out targets by full ranking
("standard") and by the PHNS test (each target against the user's abandoned items and trending
and tailing items). Writes phns_ablation.md (mean +- std of NDCG@1, NDCG@5, Recall@5, MRR@5),
phns_ablation.json and phns_ablation.png (NDCG@1 per preset under both tests; needs matplotlib,
`pip install -e ".[plots]"`) into --output_dir. MovieLens is skipped with a message when
--movielens_dir does not exist.

  python experiments/phns_ablation.py --output_dir=runs/phns_ablation \
      --movielens_dir=../shared/data/ml-latest-small --seeds=0,1,2
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
from absl import logging

from tfrs_smoe import sweep
from tfrs_smoe import variants

sweep.define_flags("phns", output_dir="runs/phns_ablation", variants_flag="presets")
flags.DEFINE_string("model", "smoe_bst", "Model trained with each preset.")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  model = flags.FLAGS.model
  sweep.run_from_flags("experiments/phns_ablation.py", "presets",
                       variants.get("phns").with_model(model), [("model", model)])


if __name__ == "__main__":
  app.run(main)
