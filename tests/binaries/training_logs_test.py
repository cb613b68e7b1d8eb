"""Tests of the training log: the per-epoch summary line and TensorBoard's per-step scalars."""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from tfrs_smoe import config as config_lib
from tfrs_smoe import experiment as experiment_lib
from tfrs_smoe.data import schema


def _scalars(log_dir):
  """{tag: {step: value}} of every scalar in the event files of `log_dir`."""
  scalars = {}
  for path in glob.glob(os.path.join(log_dir, "events.out.tfevents.*")):
    for record in tf.data.TFRecordDataset(path):
      event = tf.compat.v1.Event.FromString(record.numpy())
      for value in event.summary.value:
        scalars.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
  return scalars


def test_the_epoch_summary_reads_as_one_line():
  logs = {"gate_entropy": 0.53, "gate_weight_1": 0.4944, "gate_weight_0": 0.5056,
          "loss_softmax": 6.61834, "loss_ctr": 0.70331, "loss": 6.79041,
          "regularization_loss": 0.02641, "total_loss": 6.8168, "val_ndcg@1": 0.0133,
          "val_ndcg@10": 0.02691, "val_recall@10": 0.05}
  assert experiment_lib.format_epoch_summary(0, 10, logs, 17.26) == (
      "epoch 1/10 | loss 6.7904 (softmax 6.6183, ctr 0.7033) | regularization 0.0264 | "
      "validation NDCG@10 0.0269 | gate_weight_0 0.51, gate_weight_1 0.49 | 17.3 s")
  # Another monitor is shown beside NDCG@10; without validation or gates, neither is shown.
  assert experiment_lib.format_epoch_summary(4, 5, logs, 1.0, monitor="recall@10").endswith(
      "validation NDCG@10 0.0269, Recall@10 0.0500 | gate_weight_0 0.51, gate_weight_1 0.49 | "
      "1.0 s")
  assert experiment_lib.format_epoch_summary(1, 2, {"loss": 3.0}, 0.04) == (
      "epoch 2/2 | loss 3.0000 | 0.0 s")

  lines = []
  callback = experiment_lib.EpochSummary(10, print_fn=lines.append)
  callback.on_epoch_begin(2)
  callback.on_epoch_end(2, {"loss": 1.5, "val_ndcg@10": 0.25})
  assert len(lines) == 1 and lines[0].startswith(
      "epoch 3/10 | loss 1.5000 | validation NDCG@10 0.2500 | ")


def test_step_summaries_write_the_learning_rate_and_losses_every_n_steps(tmp_path):
  model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(2,))])
  schedule = tf.keras.optimizers.schedules.PolynomialDecay(0.1, decay_steps=6,
                                                           end_learning_rate=0.01)
  model.compile(optimizer=tf.keras.optimizers.Adam(schedule), loss="mse")
  features = np.random.RandomState(0).rand(12, 2).astype("float32")
  model.fit(features, features[:, :1], batch_size=2, epochs=1, verbose=0,
            callbacks=[experiment_lib.StepSummaries(str(tmp_path), every_steps=2)])
  scalars = _scalars(str(tmp_path))
  assert set(scalars) == {"step_learning_rate", "step_loss"}
  assert sorted(scalars["step_loss"]) == [2, 4, 6]
  # The rate the step's update used: the schedule at the step before.
  for step, rate in scalars["step_learning_rate"].items():
    assert rate == pytest.approx(float(schedule(step - 1)), rel=1e-5), step
  with pytest.raises(ValueError, match="every_steps must be >= 1"):
    experiment_lib.StepSummaries(str(tmp_path), every_steps=0)


def test_log_every_steps_is_range_checked():
  assert config_lib.TrainConfig().log_every_steps == 100
  assert config_lib.TrainConfig(log_every_steps=0).log_every_steps == 0
  with pytest.raises(ValueError, match=r"train.log_every_steps must be >= 0 \(0 = off\)"):
    config_lib.apply_overrides(config_lib.ExperimentConfig(),
                               {"train": {"log_every_steps": -1}})


def _log(num_users=24, num_items=30, events=8):
  rng = np.random.RandomState(0)
  rows = [(f"u{user}", f"i{item}", 100 * user + step, 1.0) for user in range(num_users)
          for step, item in enumerate(rng.choice(num_items, size=events, replace=False))]
  users, items, times, engagement = zip(*rows)
  item_ids = [f"i{i}" for i in range(num_items)]
  return schema.WatchLog(
      name="hand", abandonment_threshold=0.05, users=None,
      interactions=schema.Interactions(user_id=users, item_id=items, timestamp=times,
                                       engagement=engagement),
      items=schema.ItemCatalog(item_id=item_ids, title=item_ids, genres=[""] * num_items,
                               year=[0] * num_items, runtime_seconds=[0] * num_items))


def test_a_tiny_fit_logs_step_scalars_to_tensorboard_and_one_line_per_epoch(tmp_path, capsys):
  config = config_lib.override(config_lib.ExperimentConfig(), """
      model: {name: bst, encoder: {item_dim: 4, genre_dim: 2, year_dim: 2, user_dim: 0,
              num_blocks: 1, feed_forward_dim: 4}}
      data: {max_len: 5}
      train: {epochs: 2, batch_size: 8, log_every_steps: 1, early_stopping_patience: 0}
      eval: {phns_test: false}""")
  experiment = experiment_lib.Experiment(config, str(tmp_path))
  experiment.fit(experiment.prepare_data(_log()), progress=True)
  lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
  assert [line[:len("epoch 1/2 | loss ")] for line in lines] == ["epoch 1/2 | loss ",
                                                                 "epoch 2/2 | loss "]
  assert all("(softmax " in line and "| validation NDCG@10 " in line for line in lines), lines
  logs = tmp_path / "logs" / "train"  # Keras' TensorBoard writes into its train/, validation/.
  scalars = _scalars(str(logs / "train"))
  steps = sorted(scalars["step_loss"])
  assert len(steps) >= 4 and steps == list(range(1, len(steps) + 1))  # Every step, both epochs.
  assert scalars["step_learning_rate"][1] == pytest.approx(config.train.learning_rate)
  assert "step_loss_softmax" in scalars and "step_total_loss" in scalars
  assert "epoch_loss" in scalars and "epoch_ndcg@10" in _scalars(str(logs / "validation"))
