r"""Paired comparison of two models' runs: per-user B - A with a bootstrap interval over users.

Reads the per-user results (per_user_<subset>.csv, written by experiments/evaluate.py and
experiments/train.py next to metrics_<subset>.json) of the --a runs and the --b runs, pairs
the runs by position (the first --a run with the first --b run, and so on: give the runs of
the same seed in the same order on both sides), and for every metric prints the mean of A and
of B, the mean per-user difference B - A pooled over seeds (each user's difference averaged
over the seed pairs), the relative difference (B - A) / A, and a bootstrap confidence interval
of B - A over the test users (tfrs_smoe.evaluation.paired_comparison; BCa by default). Every
run must have evaluated the same users. A gap whose interval contains 0 is within what the
choice of test users explains.

Example:
  python experiments/evaluate.py --model_dir=runs/bst_0   # ... for every run
  python experiments/compare_runs.py --a=runs/bst_0,runs/bst_1,runs/bst_2 \
      --b=runs/smoe_0,runs/smoe_1,runs/smoe_2 --label_a=bst --label_b=smoe_bst \
      --metrics=ndcg@10,ndcg@1 --output=runs/smoe_vs_bst.json
"""

import dataclasses
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
import yaml

from tfrs_smoe.evaluation import paired_comparison
from tfrs_smoe.evaluation import per_user

flags.DEFINE_list("a", None, "Run directories of model A (the baseline), one per seed.")
flags.DEFINE_list("b", None, "Run directories of model B, one per seed, in the same seed order "
                  "as --a.")
flags.DEFINE_enum("subset", "test", ["validation", "test"], "Which evaluation's per-user "
                  "results to compare.")
flags.DEFINE_enum("protocol", "full_ranking", ["full_ranking", "phns_test"], "Which protocol's "
                  "per-user results to compare.")
flags.DEFINE_list("metrics", ["ndcg@10", "ndcg@1"], "Metrics to compare (columns of the "
                  "per-user files).")
flags.DEFINE_string("label_a", "A", "Name of model A in the table.")
flags.DEFINE_string("label_b", "B", "Name of model B in the table.")
flags.DEFINE_float("confidence", 0.9, "Confidence level of the bootstrap interval.")
flags.DEFINE_integer("resamples", 10000, "Bootstrap resamples.")
flags.DEFINE_integer("seed", 0, "Seed of the bootstrap resampling.")
flags.DEFINE_enum("method", "BCa", list(paired_comparison.METHODS), "Bootstrap interval method "
                  "(scipy.stats.bootstrap); BCa costs O(users^2), use percentile for very many "
                  "test users.")
flags.DEFINE_string("output", None, "If set, also write the comparison as JSON to this path.")
flags.mark_flags_as_required(["a", "b"])
FLAGS = flags.FLAGS


def _read_runs(directories):
  """The per-user results of every run directory, in order."""
  name = per_user.PerUserMetrics.file_name(FLAGS.subset, FLAGS.protocol)
  runs = []
  for directory in directories:
    path = os.path.join(directory, name)
    if not os.path.exists(path):
      raise FileNotFoundError(
          f"{path} does not exist: evaluate the run first (python experiments/evaluate.py "
          f"--model_dir={directory} --split={FLAGS.subset}); runs evaluated before per-user "
          "results were written need evaluating again.")
    runs.append(per_user.PerUserMetrics.read_csv(path))
  return runs


def _seed(directory):
  """The run's seed from its params.yaml, or None."""
  try:
    with open(os.path.join(directory, "params.yaml"), encoding="utf-8") as f:
      return (yaml.safe_load(f) or {}).get("seed")
  except (OSError, yaml.YAMLError, AttributeError):
    return None


def _table(comparisons):
  """The printed table: one row per metric."""
  interval = f"{FLAGS.confidence:.0%} interval"
  width_a, width_b = (max(10, len(label) + 2) for label in (FLAGS.label_a, FLAGS.label_b))
  header = (f"{'metric':<10}{FLAGS.label_a:>{width_a}}{FLAGS.label_b:>{width_b}}{'B - A':>10}"
            f"{'relative':>10}{interval:>22}{'excludes 0':>12}{'users x seeds':>16}")
  lines = [header, "-" * len(header)]
  for c in comparisons:
    bounds = f"[{c.low:+.4f}, {c.high:+.4f}]"
    lines.append(f"{c.metric:<10}{c.mean_a:>{width_a}.4f}{c.mean_b:>{width_b}.4f}"
                 f"{c.difference:>+10.4f}"
                 f"{c.relative_difference:>+10.1%}{bounds:>22}"
                 f"{'yes' if c.excludes_zero else 'no':>12}"
                 f"{f'{c.num_users} x {c.num_seeds}':>16}")
  return "\n".join(lines)


def _write_json(path, comparisons):
  report = {
      "a": FLAGS.a, "b": FLAGS.b, "label_a": FLAGS.label_a, "label_b": FLAGS.label_b,
      "subset": FLAGS.subset, "protocol": FLAGS.protocol,
      "comparisons": [{**dataclasses.asdict(c), "excludes_zero": c.excludes_zero}
                      for c in comparisons],
  }
  directory = os.path.dirname(path)
  if directory:
    os.makedirs(directory, exist_ok=True)
  temporary = f"{path}.tmp-{os.getpid()}"
  with open(temporary, "w", encoding="utf-8") as f:
    json.dump(report, f, indent=2)
  os.replace(temporary, path)


def main(argv):
  del argv
  if len(FLAGS.a) != len(FLAGS.b):
    sys.exit(f"compare_runs.py: --a has {len(FLAGS.a)} runs and --b has {len(FLAGS.b)}; "
             "give one run per seed on each side, in the same seed order.")
  try:
    runs_a, runs_b = _read_runs(FLAGS.a), _read_runs(FLAGS.b)
    comparisons = [
        paired_comparison.PairedComparison.compute(
            runs_a, runs_b, metric, confidence=FLAGS.confidence, resamples=FLAGS.resamples,
            seed=FLAGS.seed, method=FLAGS.method)
        for metric in FLAGS.metrics]
  except (OSError, ValueError) as error:
    sys.exit(f"compare_runs.py: {error}")
  print(f"Paired comparison on {FLAGS.subset} ({FLAGS.protocol}): "
        f"A = {FLAGS.label_a} ({', '.join(FLAGS.a)}), B = {FLAGS.label_b} ({', '.join(FLAGS.b)})")
  for index, (dir_a, dir_b) in enumerate(zip(FLAGS.a, FLAGS.b)):
    seed_a, seed_b = _seed(dir_a), _seed(dir_b)
    if seed_a is not None and seed_b is not None and seed_a != seed_b:
      print(f"Note: pair {index + 1} joins seed {seed_a} ({dir_a}) with seed {seed_b} "
            f"({dir_b}); list the runs in the same seed order to pair like with like.")
  print(_table(comparisons))
  print(f"B - A: mean over users of the per-user difference averaged over the seed pairs; "
        f"interval: {FLAGS.method} bootstrap over users, {FLAGS.resamples} resamples, "
        f"seed {FLAGS.seed}.")
  if FLAGS.output:
    _write_json(FLAGS.output, comparisons)
    print(f"Written to {FLAGS.output}")


if __name__ == "__main__":
  app.run(main)
