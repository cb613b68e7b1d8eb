"""Tests of experiments/compare_runs.py on hand-written per-user files, run as a user runs it."""

import json
import os
import subprocess
import sys

import numpy as np

from tfrs_smoe.evaluation.paired_comparison import PairedComparison
from tfrs_smoe.evaluation.per_user import PerUserMetrics

_SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "experiments", "compare_runs.py")


def _compare(*args):
  return subprocess.run([sys.executable, _SCRIPT, *args], capture_output=True, text=True,
                        timeout=300, check=False)


def _write_runs(tmp_path, name, shift, seeds=2, num_users=40):
  """Run directories holding per_user_test.csv; B's scores are A's plus `shift` on average."""
  directories = []
  for seed in range(seeds):
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.0, 0.5, num_users)
    noise = np.random.default_rng([seed, int(shift * 100)]).normal(0.0, 0.05, [2, num_users])
    directory = tmp_path / f"{name}_{seed}"
    PerUserMetrics(user_id=np.array([f"user {u}" for u in range(num_users)]),
                   metrics={"ndcg@1": base / 2 + shift + noise[0],
                            "ndcg@10": base + shift + noise[1]}).write_csv(
                                str(directory / "per_user_test.csv"))
    (directory / "params.yaml").write_text(f"seed: {seed}\n", encoding="utf-8")
    directories.append(str(directory))
  return directories


def test_prints_the_paired_table_and_writes_json(tmp_path):
  a, b = _write_runs(tmp_path, "bst", 0.0), _write_runs(tmp_path, "smoe", 0.1)
  output_path = str(tmp_path / "comparison.json")
  result = _compare(f"--a={','.join(a)}", f"--b={','.join(b)}", "--label_a=bst",
                    "--label_b=smoe_bst", "--resamples=500", "--seed=3",
                    f"--output={output_path}")
  assert result.returncode == 0, result.stdout + result.stderr
  lines = result.stdout.splitlines()
  header = next(line for line in lines if line.startswith("metric"))
  assert "bst" in header and "smoe_bst" in header and "90% interval" in header
  runs = [[PerUserMetrics.read_csv(os.path.join(d, "per_user_test.csv")) for d in side]
          for side in (a, b)]
  for metric in ("ndcg@10", "ndcg@1"):
    expected = PairedComparison.compute(*runs, metric, resamples=500, seed=3)
    row = next(line for line in lines if line.startswith(metric + " "))
    assert row.split() == [
        metric, f"{expected.mean_a:.4f}", f"{expected.mean_b:.4f}",
        f"{expected.difference:+.4f}", f"{expected.relative_difference:+.1%}",
        f"[{expected.low:+.4f},", f"{expected.high:+.4f}]", "yes", "40", "x", "2"]
    assert expected.difference > 0.05 and expected.low > 0.0
  with open(output_path, encoding="utf-8") as f:
    report = json.load(f)
  assert report["label_b"] == "smoe_bst" and report["a"] == a
  assert [c["metric"] for c in report["comparisons"]] == ["ndcg@10", "ndcg@1"]
  assert report["comparisons"][0]["num_users"] == 40
  assert report["comparisons"][0]["excludes_zero"] is True
  assert "Note: pair" not in result.stdout


def test_mismatches_are_clear_errors(tmp_path):
  # A missing metric or mismatched users are tested in paired_comparison_test.py.
  a, b = _write_runs(tmp_path, "bst", 0.0), _write_runs(tmp_path, "smoe", 0.1)
  result = _compare(f"--a={','.join(a)}", f"--b={b[0]}")
  assert result.returncode != 0
  assert "--a has 2 runs and --b has 1" in result.stderr
  result = _compare(f"--a={a[0]}", f"--b={tmp_path / 'missing'}", "--subset=validation")
  assert result.returncode != 0
  assert "per_user_validation.csv does not exist" in result.stderr
  assert "experiments/evaluate.py" in result.stderr
