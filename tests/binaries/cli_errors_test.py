"""Config errors of the binaries: found before any work, reported in one line that names the
culprit (the key and its choices, the override and its line, the missing file)."""

import os
import subprocess
import sys
import types

import pytest

from tfrs_smoe import cli
from tfrs_smoe import config as config_lib
from tfrs_smoe import experiment as experiment_lib

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _flags(**values):
  defaults = dict(dataset=None, data_dir=None, tfds_data_dir=None, model=None, seed=None,
                  params_override="")
  return types.SimpleNamespace(**{**defaults, **values})


def test_a_bad_yaml_override_names_the_flag_the_line_and_the_column(tmp_path):
  with pytest.raises(ValueError, match=r"^--params_override is not valid YAML at line 2, "
                     r"column 18: expected ',' or '}', but got '\]' \(while parsing a flow "
                     r"mapping at line 2, column 8\)\n    train: \{epochs: 2\]"):
    cli.read_params_override("data: {max_len: 20}\ntrain: {epochs: 2]\n")
  path = tmp_path / "override.yaml"
  path.write_text("data:\n  max_len: 20\n  next_k: [1\n", encoding="utf-8")
  with pytest.raises(ValueError, match=rf"^--params_override file {path} is not valid YAML at "
                     r"line 4, column 1: .*\(while parsing a flow sequence at line 3, "):
    cli.read_params_override(str(path))


def test_a_missing_override_file_is_named_as_such(tmp_path):
  missing = str(tmp_path / "absent.yaml")
  with pytest.raises(ValueError, match=f"^--params_override: no such file: {missing} "):
    cli.resolve_config(config_lib.ExperimentConfig(), _flags(params_override=missing))
  with pytest.raises(ValueError, match=r"^--params_override: expected a mapping .*got \[1, 2\]"):
    cli.read_params_override("[1, 2]")
  assert cli.read_params_override("") == {} and cli.read_params_override("# nothing") == {}


def test_an_unknown_model_names_the_choices():
  with pytest.raises(ValueError, match="Unknown model 'nope'; available: popularity, bst, "):
    cli.resolve_config(config_lib.ExperimentConfig(), _flags(model="nope"))


def test_the_data_directory_is_checked_before_any_work(tmp_path):
  experiment_lib.check_data_source(config_lib.DataConfig())  # Generated: nothing to check.
  with pytest.raises(ValueError, match=r"movielens needs data.data_dir \(--data_dir\)"):
    experiment_lib.check_data_source(config_lib.DataConfig(dataset="movielens"))
  with pytest.raises(ValueError, match=f"no such directory: {tmp_path / 'absent'}$"):
    experiment_lib.check_data_source(config_lib.DataConfig(
        dataset="watch_log", data_dir=str(tmp_path / "absent")))
  experiment_lib.check_data_source(config_lib.DataConfig(dataset="watch_log",
                                                         data_dir=str(tmp_path)))


def _run(script, *args):
  return subprocess.run([sys.executable, os.path.join(_ROOT, "experiments", script), *args],
                        capture_output=True, text=True, timeout=300, check=False,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


def test_train_with_an_unknown_model_fails_before_any_work(tmp_path):
  result = _run("train.py", "--model=nope", "--dataset=streaming_logs/tiny",
                f"--model_dir={tmp_path / 'run'}", f"--tfds_data_dir={tmp_path / 'tfds'}")
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      "train.py: model.name: Unknown model 'nope'; available: popularity, bst, smoe_bst, "
      "two_tower, sasrec."), result.stderr[-2000:]
  assert "Traceback" not in result.stderr
  assert not os.path.exists(tmp_path / "tfds") and not os.path.exists(tmp_path / "run")


def test_the_sweep_names_a_bad_override_and_its_line_before_training(tmp_path):
  result = _run("sweep.py", "--variant_set=models", "--datasets=streaming_logs", "--seeds=0",
                f"--output_dir={tmp_path / 'out'}", f"--tfds_data_dir={tmp_path / 'tfds'}",
                "--dataset_params_override=streaming_logs:\n  data: {max_len: 10\n")
  assert result.returncode == 1
  assert ("sweep.py: --dataset_params_override is not valid YAML at line 3, column 1: "
          "expected ',' or '}'") in result.stderr, result.stderr[-2000:]
  assert "Traceback" not in result.stderr
  assert not os.path.exists(tmp_path / "out") and not os.path.exists(tmp_path / "tfds")
