"""Paired comparison of two models: the per-user difference B - A with a bootstrap interval.

Two models evaluated on the same test users are compared user by user. With per-user results
of model A over seeds (a_1 .. a_S) and of model B over as many seeds (b_1 .. b_S), seed s of A
paired with seed s of B, every user u gets

  d_u = mean over s of (b_s[u] - a_s[u]),

the difference pooled over seeds, and the comparison reports the mean of d_u over the users
(which is mean B - mean A) with a bootstrap confidence interval over the users: resampling
users with replacement keeps each user's A and B values together (paired), so the interval
reflects how much the gap depends on which users happened to be in the test set, without the
between-user variance that two independent means would carry. Seeds enter only through the
average: the interval is over test users, not over training randomness.

The interval is scipy.stats.bootstrap's, BCa (bias-corrected and accelerated) by default: per-
user NDCG is skewed (most users score 0 at a cutoff, a few score near 1), where BCa's coverage
is closer to nominal than the percentile interval's. BCa's jackknife costs O(users^2) work; for
catalogues of hundreds of thousands of test users use method="percentile".

Example (three seeds of two models; the runs' per_user_test.csv files are made up here):
  >>> rng = np.random.default_rng(0)
  >>> users = [f"u{i}" for i in range(100)]
  >>> for s in range(3):
  ...   _ = PerUserMetrics(users, {"ndcg@10": rng.uniform(0.0, 0.5, 100)}).write_csv(
  ...       f"runs/bst_{s}/per_user_test.csv")
  ...   _ = PerUserMetrics(users, {"ndcg@10": rng.uniform(0.1, 0.6, 100)}).write_csv(
  ...       f"runs/smoe_{s}/per_user_test.csv")
  >>> comparison = PairedComparison.compute(
  ...     [PerUserMetrics.read_csv(f"runs/bst_{s}/per_user_test.csv") for s in range(3)],
  ...     [PerUserMetrics.read_csv(f"runs/smoe_{s}/per_user_test.csv") for s in range(3)],
  ...     metric="ndcg@10")
  >>> round(comparison.difference, 2), (round(comparison.low, 2), round(comparison.high, 2))
  (0.09, (0.07, 0.1))
  >>> comparison.excludes_zero
  True
"""

import dataclasses
import inspect
from typing import Mapping, Sequence, Union

import numpy as np
import scipy.stats

from tfrs_smoe.evaluation.per_user import PerUserMetrics

# One run's per-user results: the table, or user id -> {metric name -> value}.
RunResults = Union[PerUserMetrics, Mapping[str, Mapping[str, float]]]

METHODS = ("BCa", "percentile", "basic")
# Bootstrap resamples are drawn in batches of at most this many values (resamples x users).
_MAX_VALUES_PER_BATCH = 1 << 24
# scipy >= 1.15 takes the generator as `rng`; older releases (setup.py allows 1.9) as
# `random_state`.
_RNG_KEYWORD = ("rng" if "rng" in inspect.signature(scipy.stats.bootstrap).parameters
                else "random_state")


@dataclasses.dataclass(frozen=True)
class PairedComparison:
  """B - A of one metric, paired over users and pooled over seeds, with a bootstrap interval.

  Attributes:
    metric: the metric compared, e.g. "ndcg@10".
    mean_a: mean of A's values over users and seeds.
    mean_b: mean of B's values over users and seeds.
    difference: mean over users of the per-user difference B - A averaged over seeds
      (= mean_b - mean_a up to rounding).
    relative_difference: difference / mean_a (nan when mean_a is 0).
    low: lower end of the bootstrap interval of `difference`.
    high: upper end of the interval.
    confidence: the interval's confidence level, e.g. 0.9.
    num_users: users both models evaluated (the same users in every seed).
    num_seeds: seed pairs pooled.
    method: the bootstrap interval method ("BCa", "percentile" or "basic").
    resamples: bootstrap resamples.
    seed: seed of the resampling.
  """

  metric: str
  mean_a: float
  mean_b: float
  difference: float
  relative_difference: float
  low: float
  high: float
  confidence: float
  num_users: int
  num_seeds: int
  method: str
  resamples: int
  seed: int

  @property
  def excludes_zero(self) -> bool:
    """Whether the interval lies entirely above or below 0: a gap the test users support."""
    return self.low > 0.0 or self.high < 0.0

  @classmethod
  def compute(cls,
              a: Sequence[RunResults],
              b: Sequence[RunResults],
              metric: str,
              confidence: float = 0.9,
              resamples: int = 10000,
              seed: int = 0,
              method: str = "BCa") -> "PairedComparison":
    """Compares B with A on `metric`.

    Args:
      a: per-user results of model A, one per seed.
      b: per-user results of model B, one per seed, paired with `a` by position (the runs of
        one seed share their data, so pair runs of the same seed).
      metric: the metric to compare; every run must have it.
      confidence: confidence level of the interval, in (0, 1).
      resamples: bootstrap resamples (scipy's n_resamples).
      seed: seed of the resampling; the same seed gives the same interval.
      method: "BCa" (default), "percentile" or "basic", as in scipy.stats.bootstrap.

    Returns:
      The comparison.

    Raises:
      ValueError: `a` and `b` are empty or have different lengths; a run lacks `metric`,
        lists a user twice, or evaluated other users than the rest (every run must cover the
        same users); fewer than 2 users; bad confidence, resamples or method.

    Example:
      >>> a = [{"u1": {"ndcg@10": 0.0}, "u2": {"ndcg@10": 0.5}}]
      >>> b = [{"u1": {"ndcg@10": 1.0}, "u2": {"ndcg@10": 0.5}}]
      >>> PairedComparison.compute(a, b, "ndcg@10", method="percentile").difference
      0.5
    """
    if not 0.0 < confidence < 1.0:
      raise ValueError(f"confidence={confidence} must be in (0, 1).")
    if resamples < 1:
      raise ValueError(f"resamples={resamples} must be positive.")
    if method not in METHODS:
      raise ValueError(f"method={method!r}; use one of {', '.join(METHODS)}.")
    if not len(a) or len(a) != len(b):
      raise ValueError(f"A has {len(a)} runs and B has {len(b)}: pass one run per seed on "
                       "each side, as many on both, paired by position.")
    runs = {"A": [_as_table(run) for run in a], "B": [_as_table(run) for run in b]}
    reference = runs["A"][0]
    values = {}
    for side, tables in runs.items():
      values[side] = np.stack([
          _aligned(table, f"{side} run {index + 1} of {len(tables)}", metric, reference)
          for index, table in enumerate(tables)])
    num_seeds, num_users = values["A"].shape
    if num_users < 2:
      raise ValueError(f"A bootstrap over users needs at least 2 users; the runs have "
                       f"{num_users}.")
    per_user = (values["B"] - values["A"]).mean(axis=0)
    difference = float(per_user.mean())
    low, high = _interval(per_user, confidence, resamples, seed, method)
    mean_a, mean_b = float(values["A"].mean()), float(values["B"].mean())
    return cls(metric=metric, mean_a=mean_a, mean_b=mean_b, difference=difference,
               relative_difference=difference / mean_a if mean_a else float("nan"),
               low=low, high=high, confidence=confidence, num_users=num_users,
               num_seeds=num_seeds, method=method, resamples=resamples, seed=seed)


def _as_table(run: RunResults) -> PerUserMetrics:
  return run if isinstance(run, PerUserMetrics) else PerUserMetrics.from_mapping(run)


def _aligned(table: PerUserMetrics, name: str, metric: str,
             reference: PerUserMetrics) -> np.ndarray:
  """[users] values of `metric` in `table`, in the order of `reference`'s users (sorted)."""
  where = f"{name} ({table.source})" if table.source else name
  if metric not in table.metrics:
    raise ValueError(f"{where} has no metric {metric!r}; it has "
                     f"{', '.join(table.metrics) or 'none'}.")
  users, counts = np.unique(table.user_id, return_counts=True)
  if (counts > 1).any():
    raise ValueError(f"{where} lists {int((counts > 1).sum())} users more than once (e.g. "
                     f"{users[counts > 1][0]!r}); per-user results need one row per user.")
  expected = np.unique(reference.user_id)
  if not np.array_equal(users, expected):
    only_here = np.setdiff1d(users, expected)
    only_there = np.setdiff1d(expected, users)
    example = (only_here if only_here.size else only_there)[:3].tolist()
    raise ValueError(
        f"{where} evaluated {len(users)} users and A run 1 {len(expected)}: {only_here.size} "
        f"only in {name}, {only_there.size} only in A run 1 (e.g. {example}). A paired "
        "comparison needs every run evaluated on the same users: the same data set, split "
        "and subset.")
  values = table.metrics[metric][np.argsort(table.user_id, kind="stable")]
  if not np.isfinite(values).all():
    raise ValueError(f"{where}: {metric} has {int((~np.isfinite(values)).sum())} values that "
                     "are not finite.")
  return values


def _interval(per_user: np.ndarray, confidence: float, resamples: int, seed: int,
              method: str):
  """(low, high) bootstrap interval of the mean of `per_user`."""
  if np.ptp(per_user) == 0.0:
    # Every resample has the same mean (e.g. identical models); scipy's BCa is undefined here.
    return float(per_user[0]), float(per_user[0])
  result = scipy.stats.bootstrap(
      (per_user,), np.mean, n_resamples=resamples, confidence_level=confidence,
      method=method, vectorized=True, batch=max(1, _MAX_VALUES_PER_BATCH // len(per_user)),
      **{_RNG_KEYWORD: np.random.default_rng(seed)})
  low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
  if not (np.isfinite(low) and np.isfinite(high)):
    raise ValueError(f"The {method} bootstrap interval is undefined for these differences "
                     f"({low}, {high}); try method='percentile'.")
  return low, high
