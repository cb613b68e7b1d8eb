"""Tests for tfrs_smoe.evaluation.paired_comparison: hand-computed means, intervals, errors."""

import dataclasses

import numpy as np
import pytest

from tfrs_smoe.evaluation.paired_comparison import PairedComparison
from tfrs_smoe.evaluation.per_user import PerUserMetrics


def _run(values, metric="ndcg@10", users=None):
  users = users if users is not None else [f"u{i}" for i in range(len(values))]
  return PerUserMetrics(user_id=np.array(users), metrics={metric: np.asarray(values, float)})


def test_hand_computed_difference_pooled_over_seeds():
  # Seed 1: A = [0, 1, .5], B = [1, 1, .5]; seed 2: A = [.5, 0, 0], B = [.5, .5, .25].
  # Per-user B - A averaged over seeds: [(1 + 0) / 2, (0 + .5) / 2, (0 + .25) / 2]
  # = [.5, .25, .125], mean 0.875 / 3. mean A = 2 / 6, mean B = 3.75 / 6.
  a = [_run([0.0, 1.0, 0.5]), _run([0.5, 0.0, 0.0])]
  # B's second run lists its users in another order: rows are joined on the user id.
  b = [_run([1.0, 1.0, 0.5]), _run([0.25, 0.5, 0.5], users=["u2", "u1", "u0"])]
  comparison = PairedComparison.compute(a, b, "ndcg@10", resamples=2000, seed=1)
  assert comparison.difference == pytest.approx(0.875 / 3, abs=1e-15)
  assert comparison.mean_a == pytest.approx(2 / 6, abs=1e-15)
  assert comparison.mean_b == pytest.approx(3.75 / 6, abs=1e-15)
  assert comparison.relative_difference == pytest.approx((0.875 / 3) / (2 / 6))
  assert (comparison.num_users, comparison.num_seeds) == (3, 2)
  # Every resampled mean lies between the smallest and largest per-user difference.
  assert 0.125 <= comparison.low <= comparison.difference <= comparison.high <= 0.5
  assert comparison.confidence == 0.9 and comparison.method == "BCa"
  # Plain mappings work as well as tables, and the same seed gives the same interval.
  as_mappings = [{u: {"ndcg@10": v} for u, v in zip(run.user_id, run.metrics["ndcg@10"])}
                 for run in b]
  assert PairedComparison.compute(a, as_mappings, "ndcg@10", resamples=2000,
                                  seed=1) == comparison


def _noise(seed, shift=0.0, num_users=300, num_seeds=3):
  """Per-user scores: a user effect shared by both models plus independent noise."""
  rng = np.random.default_rng(seed)
  user_effect = rng.uniform(0.0, 0.5, size=num_users)
  return [
      [_run(user_effect + rng.normal(0.0, 0.1, num_users)) for _ in range(num_seeds)],
      [_run(user_effect + shift + rng.normal(0.0, 0.1, num_users)) for _ in range(num_seeds)],
  ]


@pytest.mark.parametrize("method", ["BCa", "percentile"])
def test_interval_contains_zero_without_a_gap_and_excludes_it_with_one(method):
  a, b = _noise(seed=0)
  same = PairedComparison.compute(a, b, "ndcg@10", resamples=2000, method=method)
  assert same.low < 0.0 < same.high and not same.excludes_zero
  # A shift of 0.02 is small beside the spread of users (0.14) but not beside the paired noise
  # (0.1 / sqrt(3 seeds x 300 users) x sqrt(2) = 0.005).
  a, b = _noise(seed=0, shift=0.02)
  shifted = PairedComparison.compute(a, b, "ndcg@10", resamples=2000, method=method)
  assert shifted.difference == pytest.approx(0.02, abs=0.01)
  assert 0.0 < shifted.low < shifted.difference < shifted.high and shifted.excludes_zero
  wider = PairedComparison.compute(a, b, "ndcg@10", resamples=2000, method=method,
                                   confidence=0.99)
  assert wider.low < shifted.low and wider.high > shifted.high


def test_identical_models_give_a_zero_width_interval():
  run = _run([0.0, 0.5, 1.0])
  comparison = PairedComparison.compute([run], [run], "ndcg@10")
  assert (comparison.difference, comparison.low, comparison.high) == (0.0, 0.0, 0.0)


def test_mismatched_users_are_an_error_naming_the_counts():
  a = [_run([0.0, 1.0, 0.5])]
  b = [_run([0.0, 1.0], users=["u0", "u1"])]
  with pytest.raises(ValueError, match=r"B run 1 of 1 evaluated 2 users and A run 1 3: 0 only "
                                       r"in B run 1 of 1, 1 only in A run 1 \(e.g. \['u2'\]\)"):
    PairedComparison.compute(a, b, "ndcg@10")
  # Users must also agree across seeds, since each user's difference is averaged over them.
  a = [_run([0.0, 1.0]), _run([0.0, 1.0], users=["u0", "u9"])]
  b = [_run([0.0, 1.0]), _run([0.0, 1.0], users=["u0", "u9"])]
  with pytest.raises(ValueError, match="A run 2 of 2 evaluated 2 users"):
    PairedComparison.compute(a, b, "ndcg@10")
  with pytest.raises(ValueError, match="more than once"):
    PairedComparison.compute([_run([0.0, 1.0], users=["u0", "u0"])],
                             [_run([0.0, 1.0], users=["u0", "u0"])], "ndcg@10")


def test_other_bad_inputs_are_clear_errors(tmp_path):
  run = _run([0.0, 1.0, 0.5])
  with pytest.raises(ValueError, match="has no metric 'ndcg@1'; it has ndcg@10"):
    PairedComparison.compute([run], [run], "ndcg@1")
  path = run.write_csv(str(tmp_path / "per_user_test.csv"))
  with pytest.raises(ValueError, match=f"A run 1 of 1 \\({path}\\) has no metric"):
    PairedComparison.compute([PerUserMetrics.read_csv(path)], [run], "recall@5")
  with pytest.raises(ValueError, match="A has 2 runs and B has 1"):
    PairedComparison.compute([run, run], [run], "ndcg@10")
  with pytest.raises(ValueError, match="at least 2 users"):
    PairedComparison.compute([_run([1.0])], [_run([0.0])], "ndcg@10")
  with pytest.raises(ValueError, match="not finite"):
    PairedComparison.compute([run], [_run([0.0, np.nan, 0.5])], "ndcg@10")
  with pytest.raises(ValueError, match="confidence"):
    PairedComparison.compute([run], [run], "ndcg@10", confidence=90)
  with pytest.raises(ValueError, match="method"):
    PairedComparison.compute([run], [run], "ndcg@10", method="bca")


def test_result_is_a_plain_dataclass():
  comparison = PairedComparison.compute([_run([0.0, 1.0])], [_run([1.0, 1.0])], "ndcg@10",
                                        method="percentile", resamples=100)
  assert set(dataclasses.asdict(comparison)) >= {"mean_a", "mean_b", "difference", "low",
                                                 "high", "num_users", "num_seeds"}
