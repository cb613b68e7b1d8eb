"""A training process killed with SIGKILL and started again resumes from its backup.

The resumed run must end where an uninterrupted run on the same seed ends: with neither
dropout nor gate noise (whose random streams are not backed up) its epochs validate as the
uninterrupted run's, because `EpochStream` gives the resumed run the batches, and PHNS
negatives, that the uninterrupted run saw at the same step; and early stopping, whose state is
backed up too (`ResumableEarlyStopping`), ends it with the weights of the same best epoch,
although that epoch ended before the kill.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

from tfrs_smoe import config as config_lib
from tfrs_smoe import experiment as experiment_lib
from tfrs_smoe.tasks import engagement_multitask

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_EPOCHS = 5
# At this learning rate validation NDCG@10 rises and then falls within a few epochs, so early
# stopping keeps an epoch that ends before the kill, and the kill falls in a later epoch. Where
# the peak falls depends on the CPU's floating-point kernels: 0.058, 0.066, 0.048 on one
# machine, 0.039, 0.037, 0.041, 0.061, 0.055 on another (AVX-512 oneDNN kernels), so five epochs
# leave room for a later, worse one on both. (Early stopping restores the best epoch's weights
# at the end of fit, also when patience has not run out.)
_OVERRIDE = {
    "data": {"max_len": 10},
    "model": {"encoder": {"item_dim": 8, "genre_dim": 4, "year_dim": 4, "user_dim": 4,
                          "expert_windows": [3, 0], "num_blocks": 1, "feed_forward_dim": 16,
                          "dropout": 0.0, "gate_noise_stddev": 0.0},
              # The paper's multitask loss: its CTR and hinge terms read the PHNS negatives.
              "task": engagement_multitask.PAPER_MULTITASK},
    "train": {"epochs": _EPOCHS, "batch_size": 16, "learning_rate": 0.1,
              "early_stopping_patience": 2, "phns": {"preset": "hard"}},
    # Full ranking only (the test compares its metrics): no PHNS test, no next-K protocol.
    "eval": {"phns_test": False, "next_k_metrics": False},
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


def _history(model_dir):
  with open(os.path.join(model_dir, "history.json"), encoding="utf-8") as f:
    return json.load(f)


def _validation_metrics(model_dir):
  with open(os.path.join(model_dir, "metrics_validation.json"), encoding="utf-8") as f:
    return json.load(f)["full_ranking"]


def _backup_count(model_dir):
  """How many backups the running process has written (0 before the first)."""
  try:
    with open(os.path.join(model_dir, "backup", "chief", "checkpoint"), encoding="utf-8") as f:
      match = re.search(r'model_checkpoint_path: "ckpt-(\d+)"', f.read())
  except FileNotFoundError:
    return 0
  return int(match.group(1)) if match else 0


def _steps_per_epoch(tfds_dir):
  config = config_lib.apply_overrides(config_lib.ExperimentConfig(), {
      **_OVERRIDE, "data": {**_OVERRIDE["data"], "dataset": "streaming_logs/tiny",
                            "tfds_data_dir": tfds_dir},
      "model": {**_OVERRIDE["model"], "name": "smoe_bst"}, "seed": 5})
  experiment = experiment_lib.Experiment(config, "/tmp/unused")
  return experiment.training_stream(experiment.prepare_data()).steps_per_epoch


def test_killed_training_resumes_after_its_best_epoch_and_ends_like_an_uninterrupted_run(
    tmp_path, tiny_tfds_dir):
  tfds_dir = tiny_tfds_dir
  uninterrupted = str(tmp_path / "uninterrupted")
  result = subprocess.run(_command(uninterrupted, tfds_dir, 0), capture_output=True, text=True,
                          env=_env(), timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  expected_ndcg = _history(uninterrupted)["val_ndcg@10"]
  best_epoch = int(np.argmax(expected_ndcg))
  assert best_epoch < len(expected_ndcg) - 1, expected_ndcg  # Later epochs validate worse ...
  expected_metrics = _validation_metrics(uninterrupted)
  # ... and the run ended with the best epoch's weights.
  assert abs(expected_metrics["ndcg@10"] - expected_ndcg[best_epoch]) < 1e-6
  assert not os.path.exists(os.path.join(uninterrupted, "backup", "chief"))  # Deleted at the end.

  # Killed right after the first backup past the end of the best epoch: in the middle of the
  # next epoch, since backups fall every steps_per_epoch + 1 steps.
  steps_per_epoch = _steps_per_epoch(tfds_dir)
  backup_every_steps = steps_per_epoch + 1
  kill_after_backup = (best_epoch + 1) * steps_per_epoch // backup_every_steps + 1
  kill_step = kill_after_backup * backup_every_steps
  assert kill_step % steps_per_epoch and kill_step < len(expected_ndcg) * steps_per_epoch
  interrupted = str(tmp_path / "interrupted")
  command = _command(interrupted, tfds_dir, backup_every_steps)
  process = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 600
  while (_backup_count(interrupted) < kill_after_backup and process.poll() is None
         and time.time() < deadline):
    time.sleep(0.02)
  process.send_signal(signal.SIGKILL)
  _, stderr = process.communicate(timeout=60)
  assert process.returncode == -signal.SIGKILL, stderr[-3000:]  # Killed, not finished.
  assert not os.path.exists(os.path.join(interrupted, "history.json"))
  resume_epoch = kill_step // steps_per_epoch
  state_path = os.path.join(interrupted, "backup", "chief",
                            f"early_stopping_state-{resume_epoch - 1}.json")
  with open(state_path, encoding="utf-8") as f:
    assert json.load(f)["best_epoch"] == best_epoch  # Early stopping's state, backed up.

  result = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=600,
                          check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  # Resumed in the epoch after the best one (history holds the resumed epochs only), the
  # resumed epochs validated as the uninterrupted run's ...
  resumed_ndcg = _history(interrupted)["val_ndcg@10"]
  np.testing.assert_allclose(resumed_ndcg, expected_ndcg[resume_epoch:], atol=1e-6)
  assert not os.path.exists(os.path.join(interrupted, "backup", "chief"))
  # ... and it ended with the best epoch's weights, where the uninterrupted run ended.
  expected, resumed = _weights(uninterrupted), _weights(interrupted)
  assert expected.keys() == resumed.keys() and len(expected) > 10
  for name, value in expected.items():
    np.testing.assert_allclose(resumed[name], value, rtol=1e-4, atol=1e-5, err_msg=name)
  resumed_metrics = _validation_metrics(interrupted)
  for name, value in expected_metrics.items():
    assert abs(resumed_metrics[name] - value) < 1e-6, name
