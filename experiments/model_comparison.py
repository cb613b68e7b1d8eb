r"""Popularity, BST and S-MoE-BST (and SASRec) on the same split over seeds, as a table.

The sweep over the variant set "models" (experiments/sweep.py --variant_set=models, with
--models naming its variants: popularity, bst, smoe_bst by default, sasrec on request, e.g.
--models=popularity,bst,smoe_bst,sasrec). Each (data set, protocol, model, seed) run trains
with early stopping on validation NDCG@10 and is evaluated once on the leave-one-out test
targets by full ranking over the whole catalogue and by the PHNS test. model_comparison.md
shows mean +- standard deviation over seeds, the test users, the epochs trained and the
training time per run and per epoch; model_comparison.json holds every run's outcome.
Protocols: "implicit" (every interaction a positive), "engagement" (abandonments are not
positives: completion <= 0.05 for streaming logs, rating <= 2 for MovieLens) and "default":
engagement for the embedded default, implicit for MovieLens (as the SASRec literature does).
MovieLens is skipped with a message when --movielens_dir does not exist.

  python experiments/model_comparison.py --output_dir=runs/comparison \
      --movielens_dir=../shared/data/ml-latest-small --seeds=0,1,2
  python experiments/model_comparison.py --models=popularity --protocols=implicit,engagement
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import logging

from tfrs_smoe import sweep
from tfrs_smoe import variants

# The default without SASRec keeps the commands of docs/results.md reproducing their tables.
sweep.define_flags("models", output_dir="runs/model_comparison", variants_flag="models",
                   default_variants=["popularity", "bst", "smoe_bst"])


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  sweep.run_from_flags("experiments/model_comparison.py", "models", variants.get("models"))


if __name__ == "__main__":
  app.run(main)
