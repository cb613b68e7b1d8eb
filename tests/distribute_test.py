"""Tests of tfrs_smoe.distribute: mirrored training on 2 logical CPUs equals one device.

Logical devices must be configured before TensorFlow initialises its devices, so the
distributed runs happen in fresh processes.
"""

import json
import os
import socket
import subprocess
import sys

import pytest

from tfrs_smoe import distribute

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_CONFIG = r"""
from tfrs_smoe import config as config_lib


def tiny_config(name):
  # No dropout, no gate noise and no replica-local in-batch CTR/hinge negatives: every other
  # term is a global mean (or the two-tower softmax over the gathered global batch).
  return config_lib.apply_overrides(config_lib.ExperimentConfig(), {
      "data": {"max_len": 8}, "train": {"batch_size": 32},
      "model": {"name": name, "encoder": {
          "item_dim": 8, "genre_dim": 4, "year_dim": 4, "user_dim": 4, "expert_windows": [2, 0],
          "num_blocks": 1, "feed_forward_dim": 16, "dropout": 0.0, "gate_noise_stddev": 0.0},
          "task": {"ctr_weight": 0.0, "hinge_weight": 0.0},
          "two_tower": {"query_hidden_units": [16], "candidate_hidden_units": [16],
                        "correction": "streaming", "num_buckets": 500,
                        "estimator_learning_rate": 0.3}}})
"""

# Trains the same model from the same weights on the same global batches with the default
# strategy and with MirroredStrategy over 2 logical CPUs; prints both trajectories as JSON.
_SAME_STEPS = r"""
import json, os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import numpy as np
import tensorflow as tf
from tfrs_smoe import distribute
from tfrs_smoe import experiment as experiment_lib
from tfrs_smoe.data import synthetic

mirrored = distribute.make_strategy(distribute.DistributeConfig("mirrored", num_cpu_devices=2))
log, _ = synthetic.generate_watch_log(synthetic.SyntheticConfig(num_users=60, num_titles=80))
answers = {"replicas": mirrored.num_replicas_in_sync}
for name in ("smoe_bst", "two_tower"):
  config = tiny_config(name)
  default = experiment_lib.Experiment(config, "/tmp/unused")
  split = default.prepare_data(log)
  dataset = default.training_stream(split).dataset(epochs=1)
  batches = list(dataset.take(3))
  assert all(int(b["targets"].shape[0]) == 32 for b in batches)
  trajectories, states = {}, {}
  weights = None
  # Losses are computed by a one-device copy: a mirrored model's metrics cannot update outside
  # a replica context.
  tf.keras.utils.set_random_seed(0)
  scorer = default.build_model(split)
  for label, strategy in (("default", tf.distribute.get_strategy()), ("mirrored", mirrored)):
    experiment = experiment_lib.Experiment(config, "/tmp/unused", strategy)
    with strategy.scope():
      tf.keras.utils.set_random_seed(0)
      model = experiment.build_model(split)
      model.compile(tf.keras.optimizers.SGD(0.5))
    if weights is None:
      weights = model.get_weights()
    model.set_weights(weights)
    losses = []
    for batch in batches:
      model.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0)
      # The loss of every batch after each step, computed outside any replica context.
      scorer.set_weights(model.get_weights())
      losses.append([float(scorer.compute_loss(b)) + float(sum(scorer.losses)) for b in batches])
    trajectories[label] = losses
    states[label] = [w.tolist() for w in model.get_weights()]
  answers[name] = {
      "trajectories": trajectories,
      # Relative to the magnitude where it exceeds 1 (the estimator's gaps start at 100).
      "max_weight_difference": max(
          float(np.max(np.abs(np.array(a) - np.array(b)) / np.maximum(1.0, np.abs(a))))
          if np.size(a) else 0.0 for a, b in zip(states["default"], states["mirrored"])),
  }
print(json.dumps(answers))
"""


def test_mirrored_training_on_two_logical_cpus_matches_one_device(tmp_path):
  script = tmp_path / "same_steps.py"
  script.write_text(_CONFIG + _SAME_STEPS)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
             PYTHONPATH=_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
  result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=env, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  answers = json.loads(result.stdout.strip().splitlines()[-1])
  assert answers["replicas"] == 2
  for name in ("smoe_bst", "two_tower"):
    default = answers[name]["trajectories"]["default"]
    mirrored = answers[name]["trajectories"]["mirrored"]
    # Training moved the losses (so the comparison says something) ...
    assert abs(default[-1][0] - default[0][0]) > 1e-3, name
    # ... and both strategies moved them identically, to float32 rounding.
    for step_default, step_mirrored in zip(default, mirrored):
      assert step_mirrored == pytest.approx(step_default, rel=1e-4, abs=1e-5), name
    assert answers[name]["max_weight_difference"] < 1e-4, name


# One worker of a two-worker cluster (TF_CONFIG from the environment): trains smoe_bst for 3
# global batches from the given weights; the chief writes the loss trajectory as JSON.
_WORKER = r"""
import json, os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import numpy as np
import tensorflow as tf
from tfrs_smoe import distribute
from tfrs_smoe import experiment as experiment_lib
from tfrs_smoe.data import synthetic

name, output = sys.argv[1], sys.argv[2]
strategy = distribute.make_strategy(distribute.DistributeConfig(sys.argv[3]))
log, _ = synthetic.generate_watch_log(synthetic.SyntheticConfig(num_users=60, num_titles=80))
config = tiny_config(name)
experiment = experiment_lib.Experiment(config, "/tmp/unused", strategy)
split = experiment.prepare_data(log)
dataset = experiment.training_stream(split).dataset(epochs=1)
batches = list(dataset.take(3))
tf.keras.utils.set_random_seed(0)
scorer = experiment_lib.Experiment(config, "/tmp/unused").build_model(split)
with strategy.scope():
  tf.keras.utils.set_random_seed(0)
  model = experiment.build_model(split)
  model.compile(tf.keras.optimizers.SGD(0.5))
model.set_weights(scorer.get_weights())  # Every worker starts from the same weights.
losses = []
for batch in batches:
  model.fit(distribute.data_sharded(tf.data.Dataset.from_tensors(batch)), epochs=1, verbose=0)
  scorer.set_weights(model.get_weights())
  losses.append([float(scorer.compute_loss(b)) + float(sum(scorer.losses)) for b in batches])
if distribute.is_chief():
  json.dump({"replicas": strategy.num_replicas_in_sync, "losses": losses}, open(output, "w"))
"""


def test_two_local_workers_train_like_one_device(tmp_path):
  script = tmp_path / "worker.py"
  script.write_text(_CONFIG + _WORKER)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
             PYTHONPATH=_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
  env.pop("TF_CONFIG", None)
  one_device = subprocess.run([sys.executable, str(script), "smoe_bst",
                               str(tmp_path / "default.json"), "default"],
                              capture_output=True, text=True, env=env, timeout=600, check=False)
  assert one_device.returncode == 0, one_device.stderr[-3000:]
  workers = distribute.free_local_addresses(2)
  processes = []
  for index in range(2):
    worker_env = dict(env, TF_CONFIG=json.dumps(
        {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
    processes.append(subprocess.Popen(
        [sys.executable, str(script), "smoe_bst", str(tmp_path / "multi_worker.json"),
         "multi_worker"], env=worker_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True))
  for process in processes:
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
  default = json.loads((tmp_path / "default.json").read_text())
  multi_worker = json.loads((tmp_path / "multi_worker.json").read_text())
  assert default["replicas"] == 1 and multi_worker["replicas"] == 2
  assert abs(default["losses"][-1][0] - default["losses"][0][0]) > 1e-3
  for step_default, step_workers in zip(default["losses"], multi_worker["losses"]):
    assert step_workers == pytest.approx(step_default, rel=1e-4, abs=1e-5)


def test_strategy_settings_are_checked():
  with pytest.raises(ValueError, match="strategy must be one of"):
    distribute.DistributeConfig(strategy="tpu")
  with pytest.raises(ValueError, match="num_cpu_devices"):
    distribute.DistributeConfig(strategy="mirrored", num_cpu_devices=-1)


def test_multi_worker_without_tf_config_says_what_is_missing(monkeypatch):
  monkeypatch.delenv("TF_CONFIG", raising=False)
  with pytest.raises(ValueError, match="TF_CONFIG"):
    distribute.make_strategy(distribute.DistributeConfig(strategy="multi_worker"))


@pytest.mark.parametrize("tf_config, chief", [
    (None, True),
    ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}, True),
    ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}, False),
    ({"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}},
     False),
    ({"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}},
     True)])
def test_is_chief_reads_tf_config(monkeypatch, tf_config, chief):
  if tf_config is None:
    monkeypatch.delenv("TF_CONFIG", raising=False)
  else:
    monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
  assert distribute.is_chief() == chief


@pytest.mark.parametrize("strategy, task_type, serves", [
    ("parameter_server", "ps", True), ("parameter_server", "worker", True),
    ("parameter_server", "chief", False), ("multi_worker", "worker", False)])
def test_is_server_task_reads_tf_config(monkeypatch, strategy, task_type, serves):
  cluster = {"chief": ["c:0"], "worker": ["a:1"], "ps": ["p:2"]}
  monkeypatch.setenv("TF_CONFIG", json.dumps(
      {"cluster": cluster, "task": {"type": task_type, "index": 0}}))
  assert distribute.is_server_task(distribute.DistributeConfig(strategy=strategy)) == serves


def test_free_local_addresses_are_distinct_and_bindable():
  addresses = distribute.free_local_addresses(3)
  assert len(set(addresses)) == 3 and all(a.startswith("127.0.0.1:") for a in addresses)
  with socket.socket() as listener:
    listener.bind(("127.0.0.1", int(addresses[0].split(":")[1])))
