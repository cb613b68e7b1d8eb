"""Early stopping whose best value, patience and best weights survive a killed-and-resumed fit.

`tf.keras.callbacks.BackupAndRestore` backs up the model and optimizer, but not
`EarlyStopping`: a resumed fit starts early stopping afresh, so a run killed after its best
epoch ends with the best weights since the restart, and waits a whole patience again.
`ResumableEarlyStopping` writes its state at every epoch end into BackupAndRestore's backup
directory and restores it when a fit resumes.
"""

import io
import json
import os
import re
from typing import Any, Dict, List, Optional

from absl import logging
import numpy as np
import tensorflow as tf

from tfrs_smoe import distribute

_STATE = "early_stopping_state-{}.json"
_WEIGHTS = "early_stopping_weights-{}.npz"
_STATE_PATTERN = re.compile(r"early_stopping_state-(\d+)\.json$")
_WEIGHTS_PATTERN = re.compile(r"early_stopping_weights-(\d+)\.npz$")


class ResumableEarlyStopping(tf.keras.callbacks.EarlyStopping):
  """`tf.keras.callbacks.EarlyStopping` that resumes where a killed fit left it.

  After EarlyStopping's own update at the end of epoch e, the chief writes best, wait,
  best_epoch and stopped_epoch into `<backup_dir>/chief/early_stopping_state-<e>.json`, and the
  best weights, when they change, into `early_stopping_weights-<best_epoch>.npz` (each file
  written whole, then renamed into place). That is the directory of
  `BackupAndRestore(backup_dir)`'s backup, so BackupAndRestore deletes the state with its backup
  at the end of a fit that ends normally, after this callback has put the best weights back.

  A resumed fit (its first epoch E > 0, as BackupAndRestore's backup sets it) takes the state of
  the latest epoch before E; states of epoch E and later (the killed process went past its last
  backup) are dropped, and so is everything in a fit starting at epoch 0. Keras numbers
  resumed epochs from the start of the run, so `start_from_epoch` and best_epoch keep their
  meaning. A state that had already stopped training stops the resumed fit after its first
  batch, without counting that epoch (`restore_best_weights` undoes the batch).

  Place it after the callback that logs `monitor` and before `BackupAndRestore` in the callback
  list, so that the state of an epoch is written before the model backup of that epoch. With
  step backups (`save_freq` an integer) a backup at an epoch's last step precedes that epoch's
  end: a process killed between the two resumes without the epoch's monitor value, with a
  warning.

  Args:
    backup_dir: the `backup_dir` of the fit's `BackupAndRestore`.
    writes: whether this process writes the state; the default, `distribute.is_chief()`, has
      only the chief write under multi-worker training (every worker reads it).
    **kwargs: `tf.keras.callbacks.EarlyStopping`'s arguments (monitor, min_delta, patience,
      verbose, mode, baseline, restore_best_weights, start_from_epoch).

  Example (on the training loss of a tiny model; the experiments monitor "val_ndcg@10" with
  mode "max", logged by a `RankingValidation` placed before it):
    >>> model = tf.keras.Sequential([tf.keras.Input(shape=(1,)),
    ...                              tf.keras.layers.Dense(1, kernel_initializer="ones")])
    >>> model.compile(tf.keras.optimizers.SGD(0.1), "mse")
    >>> data = tf.data.Dataset.from_tensor_slices((tf.ones([8, 1]), tf.zeros([8, 1]))).batch(4)
    >>> backup_dir = "runs/example/backup"
    >>> history = model.fit(data, epochs=20, verbose=0, callbacks=[
    ...     ResumableEarlyStopping(backup_dir, monitor="loss", min_delta=0.01, patience=2,
    ...                            restore_best_weights=True),
    ...     tf.keras.callbacks.BackupAndRestore(backup_dir)])
    >>> len(history.epoch)  # Of 20: stopped after 2 epochs that beat the best by < 0.01.
    7
  """

  def __init__(self, backup_dir: str, writes: Optional[bool] = None, **kwargs):
    super().__init__(**kwargs)
    self.backup_dir = backup_dir
    self.state_dir = os.path.join(backup_dir, "chief")
    self.writes = distribute.is_chief() if writes is None else writes
    self._resolved = False
    self._resumed_stopped = False
    self._written_weights_epoch: Optional[int] = None

  def on_train_begin(self, logs=None):
    super().on_train_begin(logs)
    self._resolved = False
    self._resumed_stopped = False
    self._written_weights_epoch = None

  def on_epoch_begin(self, epoch, logs=None):
    if not self._resolved:
      self._resume(first_epoch=epoch)
      if self._resumed_stopped:
        self.model.stop_training = True

  def on_epoch_end(self, epoch, logs=None):
    if self._resumed_stopped:
      return  # Stopped before the resumption: this epoch's batch does not count.
    super().on_epoch_end(epoch, logs)
    if self.writes:
      self._write(epoch)

  def on_train_end(self, logs=None):
    if not self._resolved:  # No epoch left to run: the backup was of the last epoch.
      self._resume(first_epoch=self.params.get("epochs", 0) if self.params else 0)
    super().on_train_end(logs)

  def _resume(self, first_epoch: int) -> None:
    """Takes the state of the latest epoch before `first_epoch`; drops later states."""
    self._resolved = True
    epochs = sorted(epoch for epoch in self._files(_STATE_PATTERN) if epoch < first_epoch)
    if epochs:
      state = self._read_json(_STATE.format(epochs[-1]))
      self.best = float(state["best"])
      self.wait = int(state["wait"])
      self.best_epoch = int(state["best_epoch"])
      self.stopped_epoch = int(state["stopped_epoch"])
      if state["weights_epoch"] is not None:
        self.best_weights = self._read_weights(state["weights_epoch"])
        self._written_weights_epoch = state["weights_epoch"]
      self._resumed_stopped = self.stopped_epoch > 0
      if self.verbose > 0:
        print(f"Early stopping resumed at epoch {first_epoch + 1}: best {self.monitor} "
              f"{self.best} at epoch {self.best_epoch + 1}, wait {self.wait}.", flush=True)
    recorded = epochs[-1] if epochs else -1
    if recorded < first_epoch - 1:
      logging.warning("Early stopping resumes at epoch %d %s: the end of epoch %d was not "
                      "recorded before the process stopped, so its %s does not count.",
                      first_epoch + 1, f"with its state of epoch {recorded + 1}" if epochs
                      else "afresh", first_epoch, self.monitor)
    if self.writes:
      self._remove_unused(keep_states=epochs[-2:])

  def _write(self, epoch: int) -> None:
    """Writes the state after `epoch` (and the best weights, when new)."""
    weights_epoch = None
    if self.best_weights is not None:
      weights_epoch = int(self.best_epoch)
      if weights_epoch != self._written_weights_epoch:
        buffer = io.BytesIO()
        np.savez(buffer, *self.best_weights)
        self._write_file(_WEIGHTS.format(weights_epoch), buffer.getvalue())
        self._written_weights_epoch = weights_epoch
    state = {"epoch": epoch, "monitor": self.monitor, "best": float(self.best),
             "wait": int(self.wait), "best_epoch": int(self.best_epoch),
             "stopped_epoch": int(self.stopped_epoch), "weights_epoch": weights_epoch}
    self._write_file(_STATE.format(epoch), json.dumps(state, indent=2).encode("utf-8"))
    # The previous epoch's state stays: a process killed before this epoch's model backup
    # resumes before this epoch and needs it.
    states = sorted(e for e in self._files(_STATE_PATTERN) if e <= epoch)
    self._remove_unused(keep_states=states[-2:])

  def _remove_unused(self, keep_states: List[int]) -> None:
    keep_weights = set()
    for epoch, path in self._files(_STATE_PATTERN).items():
      if epoch in keep_states:
        keep_weights.add(self._read_json(os.path.basename(path))["weights_epoch"])
      else:
        tf.io.gfile.remove(path)
    for epoch, path in self._files(_WEIGHTS_PATTERN).items():
      if epoch not in keep_weights:
        tf.io.gfile.remove(path)

  def _files(self, pattern: re.Pattern) -> Dict[int, str]:
    if not tf.io.gfile.isdir(self.state_dir):
      return {}
    files = {}
    for name in tf.io.gfile.listdir(self.state_dir):
      match = pattern.match(name)
      if match:
        files[int(match.group(1))] = os.path.join(self.state_dir, name)
    return files

  def _write_file(self, name: str, data: bytes) -> None:
    tf.io.gfile.makedirs(self.state_dir)
    path = os.path.join(self.state_dir, name)
    temporary = path + ".tmp"
    with tf.io.gfile.GFile(temporary, "wb") as f:
      f.write(data)
    tf.io.gfile.rename(temporary, path, overwrite=True)

  def _read_json(self, name: str) -> Dict[str, Any]:
    with tf.io.gfile.GFile(os.path.join(self.state_dir, name), "rb") as f:
      return json.loads(f.read().decode("utf-8"))

  def _read_weights(self, epoch: int) -> List[np.ndarray]:
    with tf.io.gfile.GFile(os.path.join(self.state_dir, _WEIGHTS.format(epoch)), "rb") as f:
      arrays = np.load(io.BytesIO(f.read()))
    return [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
