"""Tests of benchmarks/expert_specialisation.py: its table against a hand join on a tiny run."""

import json
import os
import shutil
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfrs_smoe import config as config_lib
from tfrs_smoe import experiment as experiment_lib
from tfrs_smoe import run_directory
from tfrs_smoe.data import synthetic

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "benchmarks"))
import expert_specialisation  # pylint: disable=g-import-not-at-top,wrong-import-position

TINY = {"data": {"dataset": "streaming_logs/tiny", "max_len": 10},
        "model": {"name": "smoe_bst", "encoder": {
            "item_dim": 8, "genre_dim": 4, "year_dim": 4, "user_dim": 4, "expert_windows": [3, 0],
            "num_blocks": 1, "feed_forward_dim": 16}},
        "train": {"epochs": 1}, "eval": {"phns_test": False}}
TINY_SYNTHETIC = synthetic.SyntheticConfig(num_users=300, num_titles=400)
NAMES = ["e0 (last 3)", "e1 (whole)"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  """A tiny S-MoE-BST on streaming_logs/tiny (from TFDS), one epoch, validated as train.py."""
  root = tmp_path_factory.mktemp("expert_specialisation")
  overrides = {**TINY, "data": {**TINY["data"], "tfds_data_dir": str(root / "tfds")}}
  config = config_lib.apply_overrides(config_lib.ExperimentConfig(), overrides)
  experiment = experiment_lib.Experiment(config, str(root / "run"))
  split = experiment.prepare_data()
  model = experiment.fit(split)
  experiment.write_results(experiment.evaluate(model, split, "validation"), "validation")
  return str(root / "run")


@pytest.fixture(scope="module")
def summary(run_dir, tmp_path_factory):
  output = str(tmp_path_factory.mktemp("outputs") / "specialisation.png")
  return expert_specialisation.run(run_dir, output, binge_history=2, resamples=50), output


def test_synthetic_config_of_the_run_data_set():
  assert expert_specialisation.synthetic_config_of("streaming_logs") == (
      synthetic.SyntheticConfig())
  assert expert_specialisation.synthetic_config_of("streaming_logs/tiny") == TINY_SYNTHETIC
  with pytest.raises(ValueError, match="ground truth.*movielens/latest-small"):
    expert_specialisation.synthetic_config_of("movielens/latest-small")


def test_expert_names():
  assert expert_specialisation.expert_names([5, 20, 0]) == [
      "e0 (last 5)", "e1 (last 20)", "e2 (whole)"]


def test_spearman_against_scipy():
  stats = pytest.importorskip("scipy.stats")
  rng = np.random.RandomState(0)
  x, y = rng.randint(0, 5, size=50).astype(float), rng.normal(size=50)  # Ties in x.
  assert expert_specialisation.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0])


def _hand_join(run_dir):
  """Per test user (in test order): gate weights, binge target, binge history (last 2), drift
  rate, computed row by row from the data the run trained on (its TFDS copy)."""
  experiment = experiment_lib.Experiment(config_lib.load_params(run_dir), run_dir)
  split = experiment.prepare_data()  # From TFDS, not regenerated.
  model = experiment.restore(split)
  features = {name: tf.constant(value) for name, value in
              split.test.model_inputs(experiment.config.data.max_len).items()}
  weights = model.user_vector(features)[1].numpy()
  log, truth = synthetic.generate_watch_log(TINY_SYNTHETIC)
  source = {}
  for row in range(len(log.interactions)):
    key = (str(log.interactions.user_id[row]), str(log.interactions.item_id[row]))
    source[key] = synthetic.EVENT_SOURCES[truth.event_source[row]]
  drift = dict(zip(truth.user_id.astype(str), truth.user_drift_rate))
  users, binge_target, binge_history, drift_rate = [], [], [], []
  test = split.test
  for e in range(len(test)):
    user = str(split.user_vocabulary.to_ids([test.user_index[e]])[0])
    target = str(split.item_vocabulary.to_ids([test.target[e]])[0])
    history = split.item_vocabulary.to_ids(
        test.history.values[test.history.row_splits[e]:test.history.row_splits[e + 1]])
    users.append(user)
    binge_target.append(source[(user, target)] == "binge")
    binge_history.append(len(history) >= 2 and all(
        source[(user, str(item))] == "binge" for item in history[-2:]))
    drift_rate.append(drift[user])
  return (np.array(users), weights, np.array(binge_target), np.array(binge_history),
          np.array(drift_rate, np.float64))


def test_table_equals_a_hand_computation_of_the_join(run_dir, summary):
  summary, _ = summary
  users, weights, binge_target, binge_history, drift_rate = _hand_join(run_dir)
  assert summary["test_users"] == len(users) == 300
  assert summary["experts"] == NAMES
  assert 0 < binge_target.sum() < len(users)  # Both groups are there to compare.
  assert 0 < binge_history.sum() < len(users)
  order = np.sort(drift_rate)
  low, high = drift_rate <= order[99], drift_rate >= order[200]  # Terciles of 300 users.
  expected = {"all test users": np.ones(len(users), bool),
              "binge target": binge_target, "not binge target": ~binge_target,
              "binge history": binge_history, "not binge history": ~binge_history,
              "drift low (stable)": low, "drift mid": ~low & ~high, "drift high": high}
  rows = {row["group"]: row for row in summary["rows"]}
  assert list(rows) == list(expected)
  for group, mask in expected.items():
    assert rows[group]["users"] == mask.sum(), group
    for e, name in enumerate(NAMES):
      assert rows[group][name] == pytest.approx(weights[mask, e].mean(), abs=1e-6), (group, name)
  assert rows["all test users"][NAMES[0]] + rows["all test users"][NAMES[1]] == (
      pytest.approx(1.0, abs=1e-5))
  differences = {d["difference"]: d for d in summary["differences"]}
  binge = differences["binge target - not"][NAMES[0]]
  assert binge["mean"] == pytest.approx(
      weights[binge_target, 0].mean() - weights[~binge_target, 0].mean(), abs=1e-6)
  assert binge["low"] <= binge["mean"] <= binge["high"]
  drift = differences["drift low - high"][NAMES[1]]
  assert drift["mean"] == pytest.approx(weights[low, 1].mean() - weights[high, 1].mean(),
                                        abs=1e-6)


def test_writes_the_plot_and_the_json(summary):
  summary, output = summary
  assert os.path.getsize(output) > 0
  with open(os.path.splitext(output)[0] + ".json", encoding="utf-8") as f:
    written = json.load(f)
  assert written["rows"] == summary["rows"]
  assert written["dataset"] == "streaming_logs/tiny"
  assert "cpu" in written["machine"] and written["date"]


def test_a_run_on_other_data_is_a_clear_error(run_dir):
  other = synthetic.SyntheticConfig(num_users=300, num_titles=400, seed=1)
  with pytest.raises(run_directory.DataMismatchError, match="vocabularies differ"):
    expert_specialisation.restore_with_truth(run_dir, other)


def test_validation_metrics_that_differ_are_a_clear_error(run_dir, tmp_path):
  copy = str(tmp_path / "run")
  shutil.copytree(run_dir, copy)
  path = os.path.join(copy, "metrics_validation.json")
  with open(path, encoding="utf-8") as f:
    metrics = json.load(f)
  metrics["full_ranking"]["ndcg@10"] += 0.01  # As if validated on other histories.
  with open(path, "w", encoding="utf-8") as f:
    json.dump(metrics, f)
  with pytest.raises(run_directory.DataMismatchError, match="validation metrics"):
    expert_specialisation.restore_with_truth(copy)
