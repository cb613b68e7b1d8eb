"""Runs you can trust, tried as a user would with the binaries: refused model dirs, the lock,
resumption under another config, a model that cannot be served, restoring on other data."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from tfrs_smoe import config as config_lib
from tfrs_smoe import model_dir_lock
from tfrs_smoe import run_directory

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(script, *args):
  return subprocess.run([sys.executable, os.path.join(_ROOT, "experiments", script), *args],
                        capture_output=True, text=True, timeout=600, check=False,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


@pytest.fixture(scope="module", name="trained")
def _trained(tmp_path_factory, tiny_tfds_dir):
  """A finished popularity run on the tiny log: (model_dir, tfds_dir). Tests that change the
  run work on a copy of it."""
  root = tmp_path_factory.mktemp("trained")
  model_dir, tfds_dir = str(root / "run"), tiny_tfds_dir
  result = _run("train.py", "--dataset=streaming_logs/tiny", f"--model_dir={model_dir}",
                f"--tfds_data_dir={tfds_dir}")
  assert result.returncode == 0, result.stderr[-3000:]
  return model_dir, tfds_dir


def _files(model_dir):
  with open(os.path.join(model_dir, "params.yaml"), encoding="utf-8") as f:
    params = f.read()
  with open(os.path.join(model_dir, "checkpoints", "model.index"), "rb") as f:
    return params, f.read()


def test_a_trained_model_dir_is_kept_by_failed_and_refused_runs(trained):
  model_dir, tfds_dir = trained
  before = _files(model_dir)
  assert os.path.exists(os.path.join(model_dir, "vocabularies", "item_ids.txt"))
  # A config error: reported before anything is written.
  bad = _run("train.py", "--dataset=streaming_logs/tiny", "--model=nope",
             f"--model_dir={model_dir}", f"--tfds_data_dir={tfds_dir}")
  assert bad.returncode != 0 and "Unknown model 'nope'" in bad.stderr
  # Another run into the finished one: refused, naming the run and the way out.
  again = _run("train.py", "--dataset=streaming_logs/tiny", "--seed=4",
               f"--model_dir={model_dir}", f"--tfds_data_dir={tfds_dir}")
  assert again.returncode == 1
  assert "holds a finished run (popularity on streaming_logs/tiny, seed 0)" in again.stderr
  assert "--overwrite" in again.stderr and "Traceback" not in again.stderr
  assert _files(model_dir) == before
  assert config_lib.load_params(model_dir).seed == 0


def test_a_model_that_cannot_be_served_is_refused_before_any_work(tmp_path):
  result = _run("train.py", "--dataset=streaming_logs/tiny", "--model=popularity",
                f"--model_dir={tmp_path / 'run'}", f"--export_dir={tmp_path / 'export'}",
                f"--tfds_data_dir={tmp_path / 'tfds'}")
  assert result.returncode != 0
  assert "--export_dir: popularity cannot be served" in result.stderr
  assert "bst or smoe_bst or two_tower" in result.stderr
  assert not os.path.exists(tmp_path / "tfds")  # No data was prepared.
  assert not os.path.exists(tmp_path / "run" / "params.yaml")


def test_a_second_run_on_a_locked_model_dir_names_the_holder(tmp_path):
  model_dir = str(tmp_path / "run")
  with model_dir_lock.ModelDirLock(model_dir):
    result = _run("train.py", "--dataset=streaming_logs/tiny", f"--model_dir={model_dir}",
                  f"--tfds_data_dir={tmp_path / 'tfds'}")
  assert result.returncode == 1
  assert f"is in use by another run: pid {os.getpid()}" in result.stderr
  assert not os.path.exists(tmp_path / "tfds")


def test_resuming_a_backup_under_another_config_is_refused_with_the_difference(tmp_path):
  model_dir = str(tmp_path / "run")
  config = config_lib.apply_overrides(config_lib.ExperimentConfig(), {
      "data": {"dataset": "streaming_logs/tiny"}, "model": {"name": "bst"}})
  run_directory.RunDirectory(model_dir).begin(config)
  os.makedirs(os.path.join(model_dir, "backup", "chief"))
  with open(os.path.join(model_dir, "backup", "chief", "checkpoint"), "w",
            encoding="utf-8") as f:
    f.write('model_checkpoint_path: "ckpt-2"\n')
  result = _run("train.py", "--dataset=streaming_logs/tiny", "--model=bst",
                "--params_override=train: {batch_size: 64}", f"--model_dir={model_dir}",
                f"--tfds_data_dir={tmp_path / 'tfds'}")
  assert result.returncode == 1
  assert "backup of an interrupted run under another config (train.batch_size: 128 -> 64)" in (
      result.stderr)
  assert os.path.exists(os.path.join(model_dir, "backup", "chief", "checkpoint"))


def _write_latest_small(directory):
  """A MovieLens latest-small layout: 8 users rating 6 of 10 movies each."""
  os.makedirs(directory)
  with open(os.path.join(directory, "movies.csv"), "w", encoding="utf-8") as f:
    f.write("movieId,title,genres\n" + "".join(
        f"{m},Movie {m} (1999),Drama|Comedy\n" for m in range(1, 11)))
  with open(os.path.join(directory, "ratings.csv"), "w", encoding="utf-8") as f:
    f.write("userId,movieId,rating,timestamp\n" + "".join(
        f"{u},{1 + (u + k) % 10},4.0,{1000 * u + k}\n" for u in range(1, 9) for k in range(6)))


def test_evaluate_and_export_against_another_data_set_fail_with_one_clear_error(
    trained, tmp_path):
  model_dir, tfds_dir = trained
  movielens = str(tmp_path / "ml")
  _write_latest_small(movielens)
  with open(os.path.join(model_dir, "vocabularies", "data.json"), encoding="utf-8") as f:
    recorded = json.load(f)
  # The other data set is prepared in a directory of its own (the tiny log's is shared).
  other = ["--dataset=movielens/latest-small", f"--data_dir={movielens}",
           f"--tfds_data_dir={tmp_path / 'tfds'}", f"--model_dir={model_dir}"]
  result = _run("evaluate.py", *other)
  assert result.returncode == 1, result.stderr[-2000:]
  message = result.stderr.strip().splitlines()[-1]
  assert message.startswith(f"evaluate.py: {model_dir} was trained on streaming_logs/tiny "
                            f"({recorded['num_items']:,} items")
  assert "but the data loaded now is movielens/latest-small (10 items, 8 users" in message
  assert "the item vocabularies differ" in message and "Traceback" not in result.stderr
  assert not os.path.exists(os.path.join(model_dir, "metrics_test.json"))
  # The run's own data still evaluates.
  result = _run("evaluate.py", f"--model_dir={model_dir}", f"--tfds_data_dir={tfds_dir}")
  assert result.returncode == 0, result.stderr[-2000:]
  with open(os.path.join(model_dir, "params.yaml"), encoding="utf-8") as f:
    assert yaml.safe_load(f)["data"]["dataset"] == "streaming_logs/tiny"


def test_overwrite_replaces_a_finished_run(trained, tmp_path):
  # A finished run (a copy of the module's, which train.py wrote as this would: popularity on
  # the tiny log, seed 0).
  model_dir = str(tmp_path / "run")
  shutil.copytree(trained[0], model_dir)
  assert config_lib.load_params(model_dir).seed == 0
  common = ["--dataset=streaming_logs/tiny", f"--model_dir={model_dir}",
            f"--tfds_data_dir={trained[1]}"]
  result = _run("train.py", *common, "--seed=7", "--overwrite")
  assert result.returncode == 0, result.stderr[-2000:]
  assert config_lib.load_params(model_dir).seed == 7
  assert not os.path.exists(os.path.join(model_dir, "backup"))
