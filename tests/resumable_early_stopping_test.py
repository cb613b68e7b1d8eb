"""Tests of ResumableEarlyStopping: a fit killed after its best epoch resumes to its best weights.

A "kill" is an exception raised by a callback at an epoch end, before or after
BackupAndRestore's backup of that epoch: the fit ends without on_train_end, as a killed
process does, leaving the backup directory behind. The monitor follows a script, so the
best epoch is known, and full-batch SGD on fixed data makes every fit deterministic.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tfrs_smoe.resumable_early_stopping import ResumableEarlyStopping

_X = np.random.RandomState(0).normal(size=[8, 3]).astype(np.float32)
_Y = _X @ np.array([[1.0], [-2.0], [0.5]], np.float32)
# Best at epoch 1; the value at epoch 0 only counts without start_from_epoch.
_SCRIPT = [0.9, 0.5, 0.3, 0.2, 0.25, 0.1, 0.0, 0.0]


class _Killed(Exception):
  pass


class _Script(tf.keras.callbacks.Callback):
  """Logs `val_score` from a script indexed by the (run-wide) epoch number."""

  def __init__(self, values):
    super().__init__()
    self.values = values

  def on_epoch_end(self, epoch, logs=None):
    logs["val_score"] = self.values[epoch]


class _Recorder(tf.keras.callbacks.Callback):
  """Keeps the weights at each epoch end; with `kill_at`, raises at that epoch's end."""

  def __init__(self, kill_at=None):
    super().__init__()
    self.kill_at = kill_at
    self.weights = {}

  def on_epoch_end(self, epoch, logs=None):
    self.weights[epoch] = self.model.get_weights()
    if epoch == self.kill_at:
      raise _Killed(epoch)


def _model(seed=0):
  tf.keras.utils.set_random_seed(seed)
  model = tf.keras.Sequential([tf.keras.Input([3]), tf.keras.layers.Dense(1)])
  model.compile(tf.keras.optimizers.SGD(0.05), "mse")
  return model


def _fit(model, backup_dir, epochs=8, kill_at=None, kill_before_backup=False, script=_SCRIPT,
         backup_first=False, **early_stopping):
  """Fits; returns the early stopping callback and the recorder.

  The callbacks run in the order script, early stopping, backup, recorder (which kills), or
  with `kill_before_backup` recorder before backup, or with `backup_first` backup, recorder,
  early stopping.
  """
  early = ResumableEarlyStopping(str(backup_dir), monitor="val_score", mode="max",
                                 restore_best_weights=True, **{"patience": 3, **early_stopping})
  recorder = _Recorder(kill_at)
  backup = tf.keras.callbacks.BackupAndRestore(str(backup_dir))
  if backup_first:
    callbacks = [_Script(script), backup, recorder, early]
  elif kill_before_backup:
    callbacks = [_Script(script), early, recorder, backup]
  else:
    callbacks = [_Script(script), early, backup, recorder]
  model.fit(_X, _Y, batch_size=len(_X), epochs=epochs, shuffle=False, verbose=0,
            callbacks=callbacks)
  return early, recorder


def _state_files(backup_dir):
  chief = os.path.join(backup_dir, "chief")
  return sorted(name for name in os.listdir(chief) if name.startswith("early_stopping"))


def _assert_same_weights(actual, expected):
  assert len(actual) == len(expected)
  for a, e in zip(actual, expected):
    np.testing.assert_allclose(a, e, rtol=1e-6)


@pytest.mark.parametrize("kill_before_backup, start_from_epoch", [
    (False, 1), (True, 1), (False, 0)])
def test_fit_killed_after_its_best_epoch_resumes_to_its_best_weights(
    tmp_path, kill_before_backup, start_from_epoch):
  best_epoch = 1 if start_from_epoch else 0
  uninterrupted, recorded = _fit(_model(), tmp_path / "uninterrupted",
                                 start_from_epoch=start_from_epoch)
  model = uninterrupted.model
  assert uninterrupted.best_epoch == best_epoch
  assert uninterrupted.best == _SCRIPT[best_epoch]
  assert uninterrupted.stopped_epoch == best_epoch + 3  # Patience 3.
  _assert_same_weights(model.get_weights(), recorded.weights[best_epoch])
  assert not (tmp_path / "uninterrupted" / "chief").exists()  # Deleted with the backup.

  backup_dir = tmp_path / "interrupted"
  with pytest.raises(_Killed):
    _fit(_model(), backup_dir, kill_at=3, kill_before_backup=kill_before_backup,
         start_from_epoch=start_from_epoch)
  # The state of epoch 3 and the one before it, with the best epoch's weights.
  assert _state_files(backup_dir) == [f"early_stopping_state-{2}.json",
                                      f"early_stopping_state-{3}.json",
                                      f"early_stopping_weights-{best_epoch}.npz"]
  with open(backup_dir / "chief" / "early_stopping_state-3.json", encoding="utf-8") as f:
    state = json.load(f)
  assert state["best"] == _SCRIPT[best_epoch] and state["best_epoch"] == best_epoch
  assert state["wait"] == 3 - best_epoch and state["stopped_epoch"] == (3 if best_epoch == 0
                                                                         else 0)

  resumed_model = _model(seed=1)  # A new process: other initial weights, restored from backup.
  resumed, recorder = _fit(resumed_model, backup_dir, start_from_epoch=start_from_epoch)
  # Killed before the backup of epoch 3, the fit redoes it; after it, it goes on at epoch 4.
  first_resumed_epoch = min(recorder.weights)
  assert first_resumed_epoch == (3 if kill_before_backup else 4)
  assert resumed.best_epoch == best_epoch and resumed.best == _SCRIPT[best_epoch]
  assert resumed.stopped_epoch == uninterrupted.stopped_epoch
  _assert_same_weights(resumed_model.get_weights(), model.get_weights())
  assert not (backup_dir / "chief").exists()


def test_fit_killed_after_its_last_epoch_keeps_the_best_weights(tmp_path):
  # Killed after the last epoch's backup, the resumed fit runs no epoch at all.
  epochs = 4
  expected, recorded = _fit(_model(), tmp_path / "uninterrupted", epochs=epochs, patience=10,
                            start_from_epoch=1)
  _assert_same_weights(expected.model.get_weights(), recorded.weights[1])
  with pytest.raises(_Killed):
    _fit(_model(), tmp_path / "interrupted", epochs=epochs, kill_at=epochs - 1, patience=10,
         start_from_epoch=1)
  model = _model(seed=1)
  resumed, recorder = _fit(model, tmp_path / "interrupted", epochs=epochs, patience=10,
                           start_from_epoch=1)
  assert not recorder.weights  # No epoch ran.
  assert resumed.best_epoch == 1
  _assert_same_weights(model.get_weights(), recorded.weights[1])


def test_fit_killed_after_it_stopped_stops_at_once(tmp_path):
  expected, _ = _fit(_model(), tmp_path / "uninterrupted", start_from_epoch=1)
  with pytest.raises(_Killed):  # After the backup of the epoch that stopped training.
    _fit(_model(), tmp_path / "interrupted", kill_at=expected.stopped_epoch, start_from_epoch=1)
  model = _model(seed=1)
  resumed, recorder = _fit(model, tmp_path / "interrupted", start_from_epoch=1)
  assert list(recorder.weights) == [expected.stopped_epoch + 1]  # One batch, then it stopped.
  assert resumed.stopped_epoch == expected.stopped_epoch and resumed.wait == expected.wait
  _assert_same_weights(model.get_weights(), expected.model.get_weights())


def test_an_epoch_end_lost_after_its_backup_is_skipped_with_a_warning(tmp_path, caplog):
  # The model backup of epoch 2 precedes early stopping's state of epoch 2 (as a backup at an
  # epoch's last step does); killed between the two, the fit resumes without epoch 2's value.
  with pytest.raises(_Killed):
    _fit(_model(), tmp_path, kill_at=2, backup_first=True, start_from_epoch=1,
         script=[0.0, 0.5, 0.3, 0.9, 0.1, 0.1])  # A later best, 0.9 at epoch 3, still counts.
  assert _state_files(tmp_path) == ["early_stopping_state-0.json",
                                    "early_stopping_state-1.json",
                                    "early_stopping_weights-1.npz"]
  with caplog.at_level("WARNING"):
    early, recorder = _fit(_model(seed=1), tmp_path, epochs=6, backup_first=True,
                           start_from_epoch=1, script=[0.0, 0.5, 0.3, 0.9, 0.1, 0.1])
  assert "the end of epoch 3 was not recorded" in caplog.text
  assert min(recorder.weights) == 3
  assert early.best == 0.9 and early.best_epoch == 3 and early.wait == 2
  _assert_same_weights(early.model.get_weights(), recorder.weights[3])


def test_fresh_fit_drops_a_stale_state(tmp_path):
  with pytest.raises(_Killed):
    _fit(_model(), tmp_path, kill_at=3, start_from_epoch=1)
  # Without the model backup (deleted), the next fit starts at epoch 0 and must not take the
  # state of the killed one (best 0.5).
  for name in os.listdir(tmp_path / "chief"):
    if not name.startswith("early_stopping"):
      os.remove(tmp_path / "chief" / name)
  early, recorder = _fit(_model(), tmp_path, epochs=3, script=[0.1, 0.2, 0.05])
  assert min(recorder.weights) == 0
  assert early.best == 0.2 and early.best_epoch == 1
  _assert_same_weights(early.model.get_weights(), recorder.weights[1])


def test_only_a_writing_process_writes(tmp_path):
  with pytest.raises(_Killed):
    _fit(_model(), tmp_path, kill_at=2, writes=False)
  assert not _state_files(tmp_path)  # The model backup is there, the state is not.
