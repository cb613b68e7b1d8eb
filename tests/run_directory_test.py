"""Tests of the run directory: states, refusals, resumption, and the data check on restore."""

import hashlib
import json
import os

import numpy as np
import pytest

from tfrs_smoe import config as config_lib
from tfrs_smoe import experiment as experiment_lib
from tfrs_smoe import run_directory
from tfrs_smoe.data import item_features
from tfrs_smoe.data import schema


def _log(prefix="i", genres="Drama", num_items=12):
  """12 users; user u watches items 0..u (so item k has 12 - k viewers)."""
  rows = [(f"u{u}", f"{prefix}{k}", 10 * u + k, 1.0) for u in range(12) for k in range(num_items)
          if k <= u]
  users, items, times, engagement = zip(*rows)
  ids = [f"{prefix}{k}" for k in range(num_items)]
  return schema.WatchLog(
      name="hand", abandonment_threshold=0.05, users=None,
      interactions=schema.Interactions(user_id=users, item_id=items, timestamp=times,
                                       engagement=engagement),
      items=schema.ItemCatalog(item_id=ids, title=ids, genres=[genres] * num_items,
                               year=[2000] * num_items, runtime_seconds=[0] * num_items))


def _config(**overrides):
  return config_lib.apply_overrides(config_lib.ExperimentConfig(), {
      "eval": {"phns_test": False}, **overrides})


def _fake_backup(model_dir):
  os.makedirs(os.path.join(model_dir, "backup", "chief"))
  with open(os.path.join(model_dir, "backup", "chief", "checkpoint"), "w",
            encoding="utf-8") as f:
    f.write('model_checkpoint_path: "ckpt-3"\n')


def test_a_finished_run_is_refused_unless_overwritten(tmp_path):
  model_dir = str(tmp_path)
  run = run_directory.RunDirectory(model_dir)
  assert run.state() == "empty" and run.begin(_config()) == "fresh"
  experiment = experiment_lib.Experiment(_config(), model_dir)
  experiment.fit(experiment.prepare_data(_log()))
  assert run.state() == "finished"
  assert not os.path.exists(os.path.join(model_dir, "backup"))  # Cleaned with the checkpoint.
  assert config_lib.load_params(model_dir) == _config()
  with open(run.params_path, encoding="utf-8") as f:
    params = f.read()
  with pytest.raises(run_directory.RunDirectoryError,
                     match=r"holds a finished run \(popularity on streaming_logs, seed 0\).*"
                     "--overwrite"):
    run.begin(_config(seed=4))
  with open(run.params_path, encoding="utf-8") as f:
    assert f.read() == params  # Untouched by the refused run.
  assert run.begin(_config(seed=4), overwrite=True) == "fresh"
  assert run.state() == "empty" and not os.path.exists(run.params_path)
  assert not os.path.exists(run.vocabulary_dir)


def test_an_interrupted_run_resumes_under_its_config_and_names_what_differs_otherwise(tmp_path):
  model_dir = str(tmp_path)
  run = run_directory.RunDirectory(model_dir)
  config = _config(train={"batch_size": 128, "learning_rate": 1e-3})
  assert run.begin(config) == "fresh"
  _fake_backup(model_dir)
  assert run.state() == "interrupted"
  # The data may have moved: its location is not part of the run's identity.
  moved = config_lib.apply_overrides(config, {"data": {"data_dir": "/elsewhere"}})
  assert run.begin(moved) == "resumed"
  other = config_lib.apply_overrides(config, {"train": {"batch_size": 64,
                                                        "learning_rate": 3e-3}})
  with pytest.raises(run_directory.RunDirectoryError,
                     match=r"under another config \(train.batch_size: 128 -> 64; "
                     r"train.learning_rate: 0.001 -> 0.003\)"):
    run.begin(other)
  assert run.begin(other, overwrite=True) == "fresh"
  assert run.state() == "empty"


def test_a_pending_config_without_a_backup_does_not_block_a_new_config(tmp_path):
  """A run that died before its first backup left nothing to resume."""
  run = run_directory.RunDirectory(str(tmp_path))
  run.begin(_config(seed=1))
  assert run.begin(_config(seed=2)) == "fresh"


def test_restore_against_another_data_set_of_equal_size_is_one_clear_error(tmp_path):
  model_dir = str(tmp_path)
  experiment = experiment_lib.Experiment(_config(), model_dir)
  experiment.fit(experiment.prepare_data(_log()))
  with open(os.path.join(model_dir, "vocabularies", "data.json"), encoding="utf-8") as f:
    recorded = json.load(f)
  assert recorded["num_items"] == 12 and recorded["num_users"] == 12
  with open(os.path.join(model_dir, "vocabularies", "item_ids.txt"), encoding="utf-8") as f:
    assert f.read().split() == sorted(f"i{k}" for k in range(12))

  # Same sizes, other ids: without the check every id would map to another item.
  other = experiment.prepare_data(_log(prefix="t"))
  assert other.item_vocabulary.size == experiment.prepare_data(_log()).item_vocabulary.size
  with pytest.raises(run_directory.DataMismatchError,
                     match=r"was trained on streaming_logs \(12 items, 12 users, leave_one_out "
                     r"split, engagement protocol\), but the data loaded now is "
                     r"streaming_logs \(12 items.*the item vocabularies differ \(12 ids only "
                     r"in the run's, 12 only in the loaded data's, e.g. 'i0'\)"):
    experiment.restore(other)
  # Same ids, other item features: the feature tables are part of the run's data.
  with pytest.raises(run_directory.DataMismatchError, match="item feature tables differ"):
    experiment.restore(experiment.prepare_data(_log(genres="Comedy")))
  restored = experiment.restore(experiment.prepare_data(_log()))
  assert np.sum(restored.counts.numpy()) > 0


def test_fit_into_a_run_of_another_data_set_is_refused(tmp_path):
  experiment = experiment_lib.Experiment(_config(), str(tmp_path))
  experiment.fit(experiment.prepare_data(_log()))
  with pytest.raises(run_directory.DataMismatchError, match="user vocabularies differ|item"):
    experiment.fit(experiment.prepare_data(_log(prefix="t")))


def test_config_differences_lists_changed_keys_only():
  old = _config()
  new = config_lib.apply_overrides(old, {"data": {"max_len": 20, "tfds_data_dir": "/x"},
                                         "model": {"name": "bst"}})
  assert run_directory.config_differences(old, new) == [
      "data.max_len: 50 -> 20", "model.name: 'popularity' -> 'bst'"]


def _watch_log(plan="basic", digest="a" * 64, studio="A24"):
  """`_log` as a watch log read from files: user and item features, source digests."""
  log = _log()
  log.items.features = {"studio": np.array([studio] * 12)}
  log.users = schema.UserTable(user_id=[f"u{u}" for u in range(12)],
                               features={"plan": np.array([plan] * 12)})
  log.metadata = {"columns": {"user_id": "account"},
                  "source_files": {"interactions.csv": digest}}
  return log


def test_a_watch_log_run_records_its_files_and_features(tmp_path, caplog):
  model_dir = str(tmp_path)
  experiment = experiment_lib.Experiment(_config(), model_dir)
  experiment.fit(experiment.prepare_data(_watch_log()))
  with open(os.path.join(model_dir, "vocabularies", "data.json"), encoding="utf-8") as f:
    recorded = json.load(f)
  assert recorded["columns"] == {"user_id": "account"}
  assert recorded["source_files"] == {"interactions.csv": "a" * 64}
  assert recorded["item_features"] == ["studio"] and recorded["user_features"] == ["plan"]
  # Changed files with the same vocabularies and tables: restored, with a warning naming them.
  with caplog.at_level("WARNING"):
    experiment.restore(experiment.prepare_data(_watch_log(digest="b" * 64)))
  assert "changed since" in caplog.text and "(interactions.csv)" in caplog.text
  with pytest.raises(run_directory.DataMismatchError, match="user feature tables differ"):
    experiment.restore(experiment.prepare_data(_watch_log(plan="premium")))
  with pytest.raises(run_directory.DataMismatchError, match="item feature tables differ"):
    experiment.restore(experiment.prepare_data(_watch_log(studio="Neon")))


def test_data_without_extra_features_keeps_its_recorded_digest():
  """Runs recorded before categorical tables existed still match their data."""
  split = experiment_lib.Experiment(_config(), "/unused").prepare_data(_log())
  identity = run_directory.RunDirectory.describe_data(split, _config())
  assert not {"item_features", "user_features", "source_files"} & set(identity)
  tables = item_features.ItemFeatureTables.from_catalog(split.items, split.item_vocabulary)
  digest = hashlib.sha256()
  for array in (tables.genres, tables.year_bucket):
    digest.update(np.ascontiguousarray(array, np.int32).tobytes())
  assert identity["item_features_sha256"] == digest.hexdigest()
