"""A training process killed with SIGKILL and started again resumes from its backup.

The resumed run must end where an uninterrupted run on the same seed ends: with neither
dropout nor gate noise (whose random streams are not backed up) the weights agree to float32
rounding, because `EpochStream` gives the resumed run the batches, and PHNS negatives, that the
uninterrupted run saw at the same step.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

from tfrs_smoe import config as config_lib
from tfrs_smoe import experiment as experiment_lib

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_EPOCHS = 4
_OVERRIDE = {
    "data": {"max_len": 10},
    "model": {"encoder": {"item_dim": 8, "genre_dim": 4, "year_dim": 4, "user_dim": 4,
                          "expert_windows": [3, 0], "num_blocks": 1, "feed_forward_dim": 16,
                          "dropout": 0.0, "gate_noise_stddev": 0.0}},
    "train": {"epochs": _EPOCHS, "batch_size": 16, "early_stopping_patience": 0,
              "phns": {"preset": "hard"}},
    "eval": {"phns_test": False},
}


def _command(model_dir, tfds_dir, backup_every_steps):
  override = json.dumps({**_OVERRIDE, "train": {**_OVERRIDE["train"],
                                                "backup_every_steps": backup_every_steps}})
  return [sys.executable, os.path.join(_ROOT, "experiments", "train.py"),
          "--dataset=streaming_logs/tiny", "--model=smoe_bst", "--seed=5",
          f"--model_dir={model_dir}", f"--tfds_data_dir={tfds_dir}",
          f"--params_override={override}"]


def _env():
  return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
              PYTHONPATH=_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _weights(model_dir):
  reader = tf.train.load_checkpoint(os.path.join(model_dir, "checkpoints", "model"))
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
          if name.startswith("model/") and "OPTIMIZER_SLOT" not in name}


def _history_epochs(model_dir):
  with open(os.path.join(model_dir, "history.json"), encoding="utf-8") as f:
    return len(json.load(f)["loss"])


def _steps_per_epoch(tfds_dir):
  config = config_lib.apply_overrides(config_lib.ExperimentConfig(), {
      **_OVERRIDE, "data": {**_OVERRIDE["data"], "dataset": "streaming_logs/tiny",
                            "tfds_data_dir": tfds_dir},
      "model": {**_OVERRIDE["model"], "name": "smoe_bst"}, "seed": 5})
  experiment = experiment_lib.Experiment(config, "/tmp/unused")
  return experiment.training_stream(experiment.prepare_data()).steps_per_epoch


def test_killed_training_resumes_mid_epoch_and_ends_like_an_uninterrupted_run(tmp_path):
  tfds_dir = str(tmp_path / "tfds")
  uninterrupted = str(tmp_path / "uninterrupted")
  result = subprocess.run(_command(uninterrupted, tfds_dir, 0), capture_output=True, text=True,
                          env=_env(), timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert _history_epochs(uninterrupted) == _EPOCHS
  assert not os.path.exists(os.path.join(uninterrupted, "backup", "chief"))  # Deleted at the end.

  # The first backup falls in the middle of the second epoch.
  steps_per_epoch = _steps_per_epoch(tfds_dir)
  assert steps_per_epoch >= 3
  backup_every_steps = steps_per_epoch + 1
  interrupted = str(tmp_path / "interrupted")
  command = _command(interrupted, tfds_dir, backup_every_steps)
  process = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
  marker = os.path.join(interrupted, "backup", "chief", "checkpoint")
  deadline = time.time() + 600
  while not os.path.exists(marker) and process.poll() is None and time.time() < deadline:
    time.sleep(0.02)
  process.send_signal(signal.SIGKILL)
  _, stderr = process.communicate(timeout=60)
  assert process.returncode == -signal.SIGKILL, stderr[-3000:]  # Killed, not finished.
  assert not os.path.exists(os.path.join(interrupted, "history.json"))

  result = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=600,
                          check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  # Resumed in the second epoch or later (history holds the resumed epochs only) ...
  assert _history_epochs(interrupted) < _EPOCHS
  assert not os.path.exists(os.path.join(interrupted, "backup", "chief"))
  # ... and ended where the uninterrupted run ended.
  expected, resumed = _weights(uninterrupted), _weights(interrupted)
  assert expected.keys() == resumed.keys() and len(expected) > 10
  for name, value in expected.items():
    np.testing.assert_allclose(resumed[name], value, rtol=1e-4, atol=1e-5, err_msg=name)
  with open(os.path.join(uninterrupted, "metrics_validation.json"), encoding="utf-8") as f:
    expected_metrics = json.load(f)["full_ranking"]
  with open(os.path.join(interrupted, "metrics_validation.json"), encoding="utf-8") as f:
    resumed_metrics = json.load(f)["full_ranking"]
  for name, value in expected_metrics.items():
    assert abs(resumed_metrics[name] - value) < 1e-6, name
