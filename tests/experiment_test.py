"""Tests of the experiment runner on a small hand-made log: fit, evaluate, save, restore."""

import json
import os

import numpy as np
import pytest

from tfrs_smoe import config as config_lib
from tfrs_smoe import experiment as experiment_lib
from tfrs_smoe.data import schema
from tfrs_smoe.evaluation import next_k
from tfrs_smoe.evaluation import per_user
from tfrs_smoe.tasks import engagement_multitask


def _log(num_users=30, num_items=40, events=8, seed=0):
  """Users watch popular items (low ids) most; a fifth of the views are abandoned."""
  rng = np.random.RandomState(seed)
  popularity = 1.0 / np.arange(1, num_items + 1)
  rows = []
  for user in range(num_users):
    items = rng.choice(num_items, size=events, replace=False, p=popularity / popularity.sum())
    for step, item in enumerate(items):
      rows.append((f"u{user}", f"i{item}", 100 * user + step,
                   0.0 if rng.rand() < 0.2 else 1.0))
  users, items, times, engagement = zip(*rows)
  item_ids = [f"i{i}" for i in range(num_items)]
  return schema.WatchLog(
      name="hand", abandonment_threshold=0.05, users=None,
      interactions=schema.Interactions(user_id=users, item_id=items, timestamp=times,
                                       engagement=engagement),
      items=schema.ItemCatalog(item_id=item_ids, title=item_ids, genres=[""] * num_items,
                               year=[0] * num_items, runtime_seconds=[0] * num_items))


def _config(**eval_overrides):
  config = config_lib.ExperimentConfig()
  return config_lib.apply_overrides(
      config, {"eval": {"ks": [1, 5, 10], "phns": {"num_candidates": 10}, **eval_overrides}})


def test_fit_evaluate_restore_round_trip(tmp_path):
  experiment = experiment_lib.Experiment(_config(), str(tmp_path))
  split = experiment.prepare_data(_log())
  model = experiment.fit(split)
  results = experiment.evaluate(model, split, "test")
  assert set(results) == {"full_ranking", "phns_test"}
  assert results["full_ranking"]["num_examples"] == len(split.test)
  for metrics in results.values():
    for name in ("ndcg@1", "ndcg@5", "ndcg@10", "recall@5", "recall@10", "mrr@5", "mrr@10"):
      assert 0.0 <= metrics[name] <= 1.0
  # Popularity beats chance on a popularity-skewed log: chance Recall@10 is about 10 / 40.
  assert results["full_ranking"]["recall@10"] > 0.4
  restored = experiment_lib.Experiment(_config(), str(tmp_path)).restore(split)
  assert experiment.evaluate(restored, split, "test") == results

  path = experiment.write_results(results, "test")
  with open(path, encoding="utf-8") as f:
    assert json.load(f) == results
  assert os.listdir(tmp_path / "logs" / "test")
  # Every protocol's per-user values sit next to the metrics, and average to them.
  users = split.user_vocabulary.to_ids(split.test.user_index)
  for protocol, file_name in (("full_ranking", "per_user_test.csv"),
                              ("phns_test", "per_user_test_phns_test.csv")):
    rows = per_user.PerUserMetrics.read_csv(str(tmp_path / file_name))
    assert rows == results.per_user[protocol]
    assert rows.user_id.tolist() == users.tolist() and users[0].startswith("u")
    assert list(rows.metrics) == ["ndcg@1", "ndcg@5", "ndcg@10", "recall@1", "recall@5",
                                  "recall@10", "mrr@1", "mrr@5", "mrr@10"]
    for name, mean in rows.mean().items():
      assert mean == pytest.approx(results[protocol][name], abs=1e-6), (protocol, name)
  assert not [name for name in os.listdir(tmp_path) if ".tmp-" in name]
  # Results without a protocol remove that protocol's stale per-user file.
  experiment.write_results(experiment_lib.Results(
      {"full_ranking": results["full_ranking"]},
      per_user={"full_ranking": results.per_user["full_ranking"]}), "test")
  assert (tmp_path / "per_user_test.csv").exists()
  assert not (tmp_path / "per_user_test_phns_test.csv").exists()
  table = experiment_lib.format_table(results)
  assert "ndcg@1" in table.splitlines()[0] and "phns_test" in table


def test_phns_test_can_be_switched_off(tmp_path):
  experiment = experiment_lib.Experiment(_config(phns_test=False), str(tmp_path))
  split = experiment.prepare_data(_log())
  assert set(experiment.evaluate(experiment.fit(split), split, "test")) == {"full_ranking"}


def test_restore_without_checkpoint_says_how_to_get_one(tmp_path):
  experiment = experiment_lib.Experiment(_config(), str(tmp_path))
  with pytest.raises(FileNotFoundError, match="experiments/train.py"):
    experiment.restore(experiment.prepare_data(_log()))


def test_unknown_split_is_an_error_before_any_work():
  with pytest.raises(ValueError, match="data.split must be one of"):
    config_lib.apply_overrides(_config(), {"data": {"split": "random"}})


def test_unknown_model_is_a_config_error_naming_the_registered_ones():
  with pytest.raises(ValueError, match=r"model.name: Unknown model 'nope'; available: "
                     r"popularity, bst, smoe_bst, two_tower"):
    config_lib.apply_overrides(_config(), {"model": {"name": "nope"}})


def test_unknown_dataset_is_an_error():
  with pytest.raises(ValueError, match="Unknown dataset"):
    experiment_lib.load_watch_log(config_lib.DataConfig(dataset="netflix"))
  with pytest.raises(ValueError, match="data_dir"):
    experiment_lib.load_watch_log(config_lib.DataConfig(dataset="movielens/100k"))


@pytest.mark.parametrize("name, phns", [("bst", "none"), ("smoe_bst", "none"),
                                        ("smoe_bst", "hard")])
def test_sequential_models_train_validate_and_restore(tmp_path, name, phns):
  small = {"item_dim": 8, "genre_dim": 4, "year_dim": 4, "user_dim": 4,
           "expert_windows": [2, 0], "num_blocks": 1, "feed_forward_dim": 16}
  # PHNS negatives reach the model through the paper's CTR and hinge terms.
  task = dict(engagement_multitask.PAPER_MULTITASK) if phns != "none" else {}
  config = config_lib.apply_overrides(_config(phns_test=False), {
      "model": {"name": name, "encoder": small, "task": task}, "data": {"max_len": 8},
      "train": {"epochs": 3, "batch_size": 8, "early_stopping_patience": 1,
                "phns": {"preset": phns}}})
  experiment = experiment_lib.Experiment(config, str(tmp_path))
  split = experiment.prepare_data(_log())
  model = experiment.fit(split)
  assert (model.gate is None) == (name == "bst")
  history = model.history.history
  assert len(history["val_ndcg@10"]) == len(history["loss"]) >= 2  # Validated every epoch.
  assert all(0 <= value <= 1 for value in history["val_ndcg@10"])
  assert history["loss"][-1] < history["loss"][0]
  results = experiment.evaluate(model, split, "test")
  restored = experiment_lib.Experiment(config, str(tmp_path)).restore(split)
  assert experiment.evaluate(restored, split, "test") == results
  assert os.listdir(tmp_path / "logs" / "train")


@pytest.mark.parametrize("start_epoch, epochs_trained", [(0, 2), (3, 5)])
def test_early_stopping_waits_for_its_start_epoch(tmp_path, start_epoch, epochs_trained):
  # With a zero learning rate the validation metric never improves on its first value, so
  # early stopping ends training `patience` epochs after the epoch it starts watching.
  config = config_lib.apply_overrides(_config(phns_test=False), {
      "model": {"name": "bst", "encoder": {"item_dim": 8, "num_blocks": 1}},
      "data": {"max_len": 8},
      "train": {"epochs": 8, "batch_size": 8, "learning_rate": 0.0,
                "early_stopping_patience": 1, "early_stopping_start_epoch": start_epoch}})
  experiment = experiment_lib.Experiment(config, str(tmp_path))
  model = experiment.fit(experiment.prepare_data(_log()))
  assert len(model.history.history["val_ndcg@10"]) == epochs_trained


def test_cosine_schedule_warms_up_then_decays_over_the_run(tmp_path):
  config = config_lib.apply_overrides(_config(phns_test=False), {
      "model": {"name": "bst", "encoder": {"item_dim": 8, "num_blocks": 1}},
      "data": {"max_len": 8},
      "train": {"epochs": 3, "batch_size": 8, "learning_rate": 0.01, "early_stopping_patience": 0,
                "learning_rate_schedule": "cosine", "warmup_epochs": 1}})
  experiment = experiment_lib.Experiment(config, str(tmp_path))
  split = experiment.prepare_data(_log())
  steps_per_epoch = experiment.training_stream(split).steps_per_epoch
  model = experiment.fit(split)
  total = 3 * steps_per_epoch
  assert int(model.optimizer.iterations) == total
  # The rate of the last step, total - 1: cosine decay over the epochs after the warm-up one.
  progress = (total - 1 - steps_per_epoch) / (total - steps_per_epoch)
  expected = 0.5 * 0.01 * (1.0 + np.cos(np.pi * progress))
  np.testing.assert_allclose(float(model.optimizer.learning_rate), expected, rtol=1e-4)
  schedule = experiment_lib.learning_rate(config.train, steps_per_epoch)
  np.testing.assert_allclose([float(schedule(s)) for s in (0, steps_per_epoch // 2,
                                                           steps_per_epoch, total)],
                             [0.0, 0.01 * (steps_per_epoch // 2) / steps_per_epoch, 0.01, 0.0],
                             atol=1e-7)


@pytest.mark.parametrize("two_tower", [
    {"correction": "streaming", "time_ordered": True, "num_buckets": 500},
    {"correction": "counts", "history_encoder": "smoe_bst", "min_engagement": 0.5},
    {"correction": "none", "reward_weighting": True}])
def test_two_tower_trains_validates_and_restores(tmp_path, two_tower):
  small = {"item_dim": 8, "genre_dim": 4, "year_dim": 4, "user_dim": 4,
           "expert_windows": [2, 0], "num_blocks": 1, "feed_forward_dim": 16}
  config = config_lib.apply_overrides(_config(phns_test=False), {
      "model": {"name": "two_tower", "encoder": small, "two_tower": {
          "query_hidden_units": [16], "candidate_hidden_units": [16], **two_tower}},
      "data": {"max_len": 8}, "train": {"epochs": 2, "batch_size": 16}})
  experiment = experiment_lib.Experiment(config, str(tmp_path))
  split = experiment.prepare_data(_log())
  model = experiment.fit(split)
  assert model.history.epoch == [0, 1] and "val_ndcg@10" in model.history.history
  results = experiment.evaluate(model, split, "test")
  restored = experiment_lib.Experiment(config, str(tmp_path)).restore(split)
  assert experiment.evaluate(restored, split, "test") == results
  if two_tower["correction"] == "streaming":
    assert np.min(model.estimator.gap.numpy()) < 100.0  # Trained state, restored as it was.
    np.testing.assert_array_equal(restored.estimator.gap.numpy(), model.estimator.gap.numpy())


def test_smoe_bst_needs_two_experts():
  with pytest.raises(ValueError, match="expert_windows: smoe_bst needs >= 2 expert windows"):
    config_lib.apply_overrides(_config(), {
        "model": {"name": "smoe_bst", "encoder": {"expert_windows": [0]}}})


def test_validation_results_hold_next_2_metrics_beside_the_next_item_ones(tmp_path):
  config = config_lib.apply_overrides(_config(phns_test=False), {
      "model": {"name": "bst", "encoder": {"item_dim": 8, "num_blocks": 1}},
      "data": {"max_len": 8}, "train": {"epochs": 1, "batch_size": 8}})
  experiment = experiment_lib.Experiment(config, str(tmp_path))
  split = experiment.prepare_data(_log())
  model = experiment.fit(split)
  validation = experiment.evaluate(model, split, "validation")
  examples, future = next_k.NextKEvaluator.leave_one_out_future(split)
  expected = next_k.NextKEvaluator(split.item_vocabulary.size, ks=(1, 5, 10),
                                   max_len=8).evaluate(model, examples, future)
  assert validation["next_k"] == pytest.approx(expected)
  assert validation["next_k"]["k_future"] == 2
  assert validation["full_ranking"]["ndcg@10"] >= 0  # The next-item metrics stay.
  experiment.write_results(validation, "validation")
  assert (tmp_path / "per_user_validation_next_k.csv").exists()
  assert "next_k" not in experiment.evaluate(model, split, "test")
  table = experiment_lib.format_table(validation).splitlines()
  assert table[0].split()[-3:] == ["next_recall@5", "next_recall@10", "examples"]
  assert table[-1].startswith("next_k")
  off = config_lib.apply_overrides(config, {"eval": {"next_k_metrics": False}})
  assert set(experiment_lib.Experiment(off, str(tmp_path)).evaluate(
      model, split, "validation")) == {"full_ranking"}
