"""Tests of run_experiment's outcome file and resume, and of the table helpers."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tfrs_smoe import config as config_lib
from tfrs_smoe import reporting


def _config(tfds_dir, seed=0):
  return config_lib.apply_overrides(config_lib.ExperimentConfig(), {
      "data": {"dataset": "streaming_logs/tiny", "tfds_data_dir": tfds_dir},
      "eval": {"phns_test": False}, "seed": seed})


def test_resume_reuses_a_finished_run_with_the_same_params(tmp_path, tiny_tfds_dir):
  model_dir = str(tmp_path / "run")
  first = reporting.run_experiment(_config(tiny_tfds_dir), model_dir)
  checkpoint = os.path.join(model_dir, "checkpoints", "model.index")
  written = os.stat(checkpoint).st_mtime_ns
  assert reporting.run_experiment(_config(tiny_tfds_dir), model_dir, resume=True) == first
  assert os.stat(checkpoint).st_mtime_ns == written  # Not trained again.

  # Other params: trained again, and the new outcome replaces the old one.
  second = reporting.run_experiment(_config(tiny_tfds_dir, seed=1), model_dir, resume=True)
  assert second.seed == 1 and os.stat(checkpoint).st_mtime_ns != written
  assert reporting.run_experiment(_config(tiny_tfds_dir, seed=1), model_dir, resume=True) == second
  # Without resume a finished run is trained again.
  reporting.run_experiment(_config(tiny_tfds_dir, seed=1), model_dir)
  assert os.stat(checkpoint).st_mtime_ns != written


def test_resume_reuses_a_finished_run_whose_data_now_lies_elsewhere(tmp_path, tiny_tfds_dir,
                                                                    monkeypatch):
  model_dir = str(tmp_path / "run")
  first = reporting.run_experiment(_config(tiny_tfds_dir), model_dir)

  def no_training(*args, **kwargs):
    raise AssertionError("trained again")
  monkeypatch.setattr(reporting.experiment_lib.Experiment, "prepare_data", no_training)
  moved = config_lib.apply_overrides(_config(tiny_tfds_dir), {
      "data": {"tfds_data_dir": str(tmp_path / "elsewhere"), "data_dir": "/raw/files"}})
  assert reporting.run_experiment(moved, model_dir, resume=True) == first


def test_a_run_interrupted_after_its_params_were_written_is_not_reused(tmp_path, tiny_tfds_dir,
                                                                      monkeypatch):
  model_dir = str(tmp_path / "run")
  reporting.run_experiment(_config(tiny_tfds_dir), model_dir)

  def interrupted(*args, **kwargs):
    raise KeyboardInterrupt
  monkeypatch.setattr(reporting.experiment_lib.Experiment, "fit", interrupted)
  with pytest.raises(KeyboardInterrupt):
    reporting.run_experiment(_config(tiny_tfds_dir, seed=1), model_dir, resume=True)
  assert not os.path.exists(os.path.join(model_dir, "outcome.json"))


def test_a_run_resumed_from_its_backup_counts_the_epochs_before_the_resume_and_times_the_rest(
    tmp_path, tiny_tfds_dir, monkeypatch):
  config = config_lib.apply_overrides(_config(tiny_tfds_dir), {
      "data": {"max_len": 10},
      "model": {"name": "bst", "encoder": {"item_dim": 8, "num_blocks": 1,
                                           "feed_forward_dim": 16}},
      "train": {"epochs": 3, "early_stopping_patience": 0}})
  model_dir = str(tmp_path / "run")
  fit = reporting.experiment_lib.Experiment.fit

  class StopAfterSecondEpoch(tf.keras.callbacks.Callback):

    def on_epoch_end(self, epoch, logs=None):
      if epoch == 1:  # After the backup of that epoch, which the experiment's callbacks write.
        raise KeyboardInterrupt

  monkeypatch.setattr(reporting.experiment_lib.Experiment, "fit",
                      lambda self, split: fit(self, split, callbacks=[StopAfterSecondEpoch()]))
  with pytest.raises(KeyboardInterrupt):
    reporting.run_experiment(config, model_dir)
  monkeypatch.undo()
  outcome = reporting.run_experiment(config, model_dir, resume=True)
  # Only the third epoch ran after the resume, and the seconds per epoch are its own.
  assert (outcome.epochs, outcome.epochs_run) == (3, 1)
  assert outcome.seconds_per_epoch == outcome.train_seconds
  assert outcome.machine == reporting.machine_description()


def test_seconds_per_epoch_of_outcomes_with_and_without_epochs_run():
  assert reporting.RunOutcome(0, {}, 4, 8.0).seconds_per_epoch == 2.0  # Older outcome.json.
  assert reporting.RunOutcome(0, {}, 4, 8.0, epochs_run=1).seconds_per_epoch == 8.0
  assert reporting.RunOutcome(0, {}, 0, 0.5, epochs_run=0).seconds_per_epoch == 0.0


def test_mean_std_formats_population_spread():
  assert reporting.mean_std([0.1, 0.3]) == f"{0.2:.4f} ± {np.std([0.1, 0.3]):.4f}"


def test_replace_generated_section_keeps_the_text_around_it(tmp_path):
  readme = tmp_path / "README.md"
  readme.write_text("# Title\n\n<!-- begin report -->\nold table\n<!-- end report -->\n\nAfter.\n",
                    encoding="utf-8")
  assert reporting.generated_section(str(readme), "report") == "old table"
  reporting.replace_generated_section(str(readme), "report", "| new | table |\n")
  assert readme.read_text(encoding="utf-8") == (
      "# Title\n\n<!-- begin report -->\n| new | table |\n<!-- end report -->\n\nAfter.\n")


@pytest.mark.parametrize("text", ["no markers\n", "<!-- end report -->\n<!-- begin report -->\n",
                                  "<!-- begin report -->\n<!-- end report -->\n" * 2])
def test_replace_generated_section_needs_its_markers_once_in_order(tmp_path, text):
  readme = tmp_path / "README.md"
  readme.write_text(text, encoding="utf-8")
  with pytest.raises(ValueError, match="begin report"):
    reporting.replace_generated_section(str(readme), "report", "table")
  with pytest.raises(ValueError, match="begin report"):
    reporting.generated_section(str(readme), "report")
  assert readme.read_text(encoding="utf-8") == text
