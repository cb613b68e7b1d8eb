"""Tests of benchmarks/served_vs_offline.py: served metrics equal offline ones on a tiny run."""

import os
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfrs_smoe import config as config_lib
from tfrs_smoe import experiment as experiment_lib
from tfrs_smoe.data import vocabulary
from tfrs_smoe.evaluation import full_ranking
from tfrs_smoe.evaluation import metrics as metrics_lib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "benchmarks"))
import served_vs_offline  # pylint: disable=g-import-not-at-top,wrong-import-position

TINY = {"data": {"dataset": "streaming_logs/tiny", "max_len": 10},
        "model": {"name": "smoe_bst", "encoder": {
            "item_dim": 8, "genre_dim": 4, "year_dim": 4, "user_dim": 4, "expert_windows": [3, 0],
            "num_blocks": 1, "feed_forward_dim": 16}},
        "train": {"epochs": 1}, "eval": {"phns_test": False}}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_tfds_dir):
  """A run of a tiny S-MoE-BST on streaming_logs/tiny, trained for one epoch."""
  root = tmp_path_factory.mktemp("served_vs_offline")
  overrides = {**TINY, "data": {**TINY["data"], "tfds_data_dir": tiny_tfds_dir}}
  config = config_lib.apply_overrides(config_lib.ExperimentConfig(), overrides)
  experiment = experiment_lib.Experiment(config, str(root / "run"))
  experiment.fit(experiment.prepare_data())
  return str(root / "run")


@pytest.mark.parametrize("ids, scores, target, complete, expected", [
    (["a", "b", "c", "d"], [3, 2, 2, 1], "b", False, (1, 1)),  # All its ties are returned.
    (["a", "b", "c"], [3, 2, 2], "b", False, None),  # More items may tie with the last one.
    (["a", "b", "c"], [3, 2, 2], "b", True, (1, 1)),
    (["a", "b", "c", ""], [3, 2, 2, -np.inf], "b", False, (1, 1)),  # An empty slot: complete.
    (["a", "b", "c", "d"], [4, 3, 2, 1], "z", False, (3, 0)),  # 3 above the last: rank > 3.
    (["a", "b", "c"], [3, 2, 2], "z", False, None),  # It may tie with b and c.
    (["a", "b", "c"], [3, 2, 2], "z", True, None),  # Not eligible at all.
])
def test_served_rank_counts_by_hand(ids, scores, target, complete, expected):
  assert served_vs_offline.served_rank_counts(ids, scores, target, 3, complete) == expected


def test_served_rank_counts_agree_with_the_offline_counts_over_the_catalogue():
  rng = np.random.RandomState(0)
  ids = np.array([f"i{i}" for i in range(30)])
  for _ in range(300):
    scores = rng.randint(0, 6, size=30).astype(np.float32)  # Many ties.
    target = rng.randint(30)
    greater, ties = metrics_lib.rank_counts(scores[None], [target], np.zeros([1, 30], bool), 0)
    order = np.argsort(-scores, kind="stable")
    expected = (int(greater.numpy()[0]), int(ties.numpy()[0]))
    for k in (3, 10, 30):
      counts = served_vs_offline.served_rank_counts(ids[order[:k]], scores[order[:k]],
                                                    ids[target], 3, complete=k == 30)
      if k == 30:
        assert counts == expected  # The whole catalogue settles every case.
      elif counts is not None and target in order[:k]:
        assert counts == expected
      elif counts is not None:  # Not returned: settled only when certainly below rank 3.
        assert 3 <= counts[0] <= expected[0]


def test_ties_count_as_offline_when_the_served_scores_are_constant(run_dir):
  _, split, _ = served_vs_offline.restore_run(run_dir)
  catalogue = split.item_vocabulary.ids
  examples = split.test

  def constant_server(histories, user_ids, k):
    """Scores every item 0, excludes the history, returns the first k: all ties."""
    del user_ids
    k = min(k, len(catalogue))
    ids = np.full([len(histories), k], "", dtype=object)
    scores = np.full([len(histories), k], -np.inf, np.float32)
    for row, history in enumerate(histories):
      left = [item for item in catalogue if item not in set(history)][:k]
      ids[row, :len(left)], scores[row, :len(left)] = left, 0.0
    return ids, scores

  served = served_vs_offline.served_metrics(constant_server, split, "test", (1, 5, 10), 10)
  offline = full_ranking.FullRankingEvaluator(split.item_vocabulary.size).evaluate(
      lambda features: tf.zeros([tf.shape(features["history"])[0],
                                 split.item_vocabulary.size]), examples)
  assert served["re_requested"] == len(examples)  # Every target ties with the 10th item.
  for name in metrics_lib.metric_names((1, 5, 10)):
    assert served[name] == pytest.approx(offline[name], abs=1e-6), name
  assert 0 < served["ndcg@10"] < 0.1  # A random guess among the ~700 items left.


def test_served_metrics_equal_offline_ones_on_a_tiny_trained_run(run_dir, tmp_path):
  experiment, split, model = served_vs_offline.restore_run(run_dir)
  results = served_vs_offline.compare(experiment, split, model, "test", 10,
                                      str(tmp_path / "exports"))
  served, offline = results["served"], results["offline"]
  assert served["num_examples"] == offline["num_examples"] == len(split.test) == 300
  assert served["target_in_history"] == served_vs_offline.targets_in_history(split, "test") == 0
  for name in metrics_lib.metric_names(experiment.config.eval.ks):
    assert served[name] == pytest.approx(offline[name], abs=1e-6), name
  assert offline["recall@10"] > 0
  rows = served_vs_offline.table_rows(results, experiment.config.eval.ks)
  assert [row["metric"] for row in rows][:3] == ["ndcg@1", "ndcg@5", "ndcg@10"]
  assert max(abs(row["difference"]) for row in rows) < 1e-6
  # The export's vocabularies are the split's.
  assets = os.path.join(results["export"], "assets")
  assert vocabulary.IdVocabulary.read(os.path.join(assets, "item_ids.txt")) == (
      split.item_vocabulary)
  assert vocabulary.IdVocabulary.read(os.path.join(assets, "user_ids.txt")) == (
      split.user_vocabulary)
