r"""The quality report: every model and S-MoE-BST component, over seeds, on both data sets.

The sweep over the variant set "report" (experiments/sweep.py --variant_set=report; its
variants are listed in tfrs_smoe/variants.py: popularity, two-tower without and with the
streaming correction, BST, S-MoE-BST with its defaults and against them with PHNS and the
paper's multitask loss, the paper's multitask loss alone, the paper's next-3 soft labels and
max_len 200, and SASRec at max_len 50 and 200). Trains and tests each variant once per seed on the
embedded default (engagement protocol) and on MovieLens latest-small (implicit protocol;
skipped with a message when --movielens_dir does not exist), with early stopping on
validation, and writes into --output_dir, per data set (streaming_logs, movielens):
- report_<data set>.md: the command, date and machine, then a table of mean +- std of
  NDCG@{1,5,10}, Recall@{5,10} and MRR@5 under full ranking and under the PHNS test, with the
  epochs and the training seconds per epoch of each variant (the cost beside the gain);
- report_<data set>_metrics.png: NDCG@10 (full ranking) and NDCG@1 (PHNS test) per variant;
- report_<data set>_gates.png: histograms over test users of the gate weight per expert of the
  first S-MoE-BST variant run (seed 0);
- report_<data set>_curves.png: validation NDCG@10 per epoch (seed 0) of every trained variant;
- report_<data set>.json and each run's artifacts (model_dir per data set / variant / seed).
With --readme=docs/results.md, each data set's report and plots (copied into docs/) also replace
the section between that page's `<!-- begin experiments/report.py <data set> -->` and `<!-- end
experiments/report.py <data set> -->` lines as soon as that data set is done, so the published
results are the report's own text, and a report of one data set leaves the other's section be.
--dataset_params_override sets one data set's training (e.g. MovieLens' dropout and schedule)
under the variants, which still switch their own components on or off.
Plots need matplotlib (`pip install -e ".[plots]"`). Runs whose params.yaml matches (data
locations aside) are reused with --resume, so an interrupted report goes on where it stopped.
Cost: 30 trainings per data set (10 trained variants, 3 seeds); on 2-core CPUs an S-MoE-BST
training takes minutes to 20 minutes by data set, machine and early stopping, so the whole
report takes hours: run it with --resume, and --variants= for a subset.
A run's records, params.yaml, outcome.json, history.json and (S-MoE-BST) test_gate_weights.npz,
are all that --resume reads: with only those in --output_dir, the report and its plots are
rebuilt without training. The repository keeps the records of the published runs in
docs/report_runs (its .gitignore keeps nothing else), so the command of docs/results.md with
`--output_dir=docs/report_runs --resume --readme=docs/results.md` rebuilds its sections.

  python experiments/report.py --output_dir=runs/report \
      --movielens_dir=../shared/data/ml-latest-small --seeds=0,1,2 --resume \
      --readme=docs/results.md
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import logging

from tfrs_smoe import sweep
from tfrs_smoe import variants

sweep.define_flags("report", output_dir="runs/report")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  sweep.run_from_flags("experiments/report.py", "variants", variants.get("report"))


if __name__ == "__main__":
  app.run(main)
