"""A self-describing `--model_dir`: config, vocabularies, checkpoint written and checked together.

Layout (written by `experiments/train.py` through `Experiment.fit`):

  params.yaml                  the resolved config, written atomically with the final checkpoint
  checkpoints/model.*          the trained model
  vocabularies/item_ids.txt    raw item ids, one a line in index order (line n = index n + 2)
  vocabularies/user_ids.txt    raw user ids, the same way
  vocabularies/data.json       the data set the run was trained on: its name, protocol, sizes,
                               the SHA-256 of both id files and of the item (and user) feature
                               tables (with their genre vocabulary and first year); for a
                               watch_log, its column mapping and the SHA-256 of its files
  backup/params.yaml           while training: the config of the run a backup belongs to
  backup/chief/                while training: Keras' `BackupAndRestore` state

A directory is in one of three states: "empty" (nothing to lose), "interrupted" (a backup of a
killed run: starting the same config again resumes it; another config is refused, naming what
differs) or "finished" (a checkpoint: refused unless the caller asks to overwrite it). A restore
(`Experiment.restore`, so `evaluate.py` and `export.py`) checks the loaded data against
vocabularies/ first, so another data set is one clear error naming both, never a shape mismatch
or, with an equal-size catalogue, every id silently mapped to another item.

Example:
  >>> run = RunDirectory("runs/example")
  >>> run.state()
  'empty'
  >>> run.begin(config_lib.ExperimentConfig())  # before loading any data
  'fresh'
"""

import hashlib
import json
import os
import shutil
from typing import Any, Dict, List, Optional

from absl import logging
import numpy as np
import yaml

from tfrs_smoe import config as config_lib
from tfrs_smoe.data import item_features
from tfrs_smoe.data import user_features
from tfrs_smoe.data import vocabulary as vocabulary_lib

# Keys that may differ between an interrupted run and its resumption: where the data lies.
_LOCATION_KEYS = ("data.data_dir", "data.tfds_data_dir")
# What `overwrite` removes: every artifact of a run, nothing else the user keeps there.
_ARTIFACTS = ("checkpoints", "backup", "vocabularies", "logs", "params.yaml", "history.json",
              "metrics_validation.json", "metrics_test.json")


class RunDirectoryError(RuntimeError):
  """A model_dir holds another run (finished, or interrupted under another config)."""


class DataMismatchError(ValueError):
  """The data loaded now is not the data set a run was trained on."""


def _flatten(mapping: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
  flat = {}
  for key, value in mapping.items():
    if isinstance(value, dict):
      flat.update(_flatten(value, f"{prefix}{key}."))
    else:
      flat[prefix + key] = value
  return flat


def config_differences(old: config_lib.ExperimentConfig, new: config_lib.ExperimentConfig,
                       ignore=_LOCATION_KEYS) -> List[str]:
  """["key: old -> new", ...] for every config value that differs, data locations aside."""
  old, new = _flatten(config_lib.to_dict(old)), _flatten(config_lib.to_dict(new))
  return [f"{key}: {old.get(key)!r} -> {new.get(key)!r}" for key in sorted(set(old) | set(new))
          if key not in ignore and old.get(key) != new.get(key)]


def _sha256(path: str) -> str:
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


def _update(digest, name: str, table: np.ndarray, values: np.ndarray) -> None:
  """Adds one categorical table (name, value ids, value vocabulary) to `digest`."""
  digest.update(name.encode("utf-8") + b"\0")
  digest.update(np.ascontiguousarray(table, np.int32).tobytes())
  digest.update("\n".join(map(str, values)).encode("utf-8") + b"\0")


def _write_text_atomically(path: str, text: str) -> None:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  temporary = f"{path}.tmp-{os.getpid()}"
  with open(temporary, "w", encoding="utf-8") as f:
    f.write(text)
  os.replace(temporary, path)


class RunDirectory:
  """The files of one run in `model_dir`; see the module docstring for the layout and states.

  Args:
    model_dir: the run's directory (need not exist yet).
  """

  def __init__(self, model_dir: str):
    self.model_dir = model_dir

  def path(self, *parts: str) -> str:
    return os.path.join(self.model_dir, *parts)

  @property
  def params_path(self) -> str:
    return self.path("params.yaml")

  @property
  def checkpoint_prefix(self) -> str:
    return self.path("checkpoints", "model")

  @property
  def vocabulary_dir(self) -> str:
    return self.path("vocabularies")

  def _backup_checkpoint(self) -> Optional[str]:
    path = self.path("backup", "chief", "checkpoint")
    return path if os.path.exists(path) else None

  def state(self) -> str:
    """"finished" (a final checkpoint), "interrupted" (a backup) or "empty"."""
    if os.path.exists(self.checkpoint_prefix + ".index"):
      return "finished"
    if self._backup_checkpoint() is not None:
      return "interrupted"
    return "empty"

  def begin(self, config: config_lib.ExperimentConfig, overwrite: bool = False) -> str:
    """Claims the directory for a run of `config`, before any data is loaded.

    Returns "resumed" when an interrupted run of the same config will continue from its
    backup, "fresh" otherwise. Records `config` as the backup's config (backup/params.yaml).

    Args:
      config: the run's resolved config.
      overwrite: remove a finished or interrupted run's artifacts and start afresh.

    Raises:
      RunDirectoryError: a finished run, or an interrupted run of another config, and not
        `overwrite`.
    """
    state = self.state()
    if state != "empty" and overwrite:
      self.remove_artifacts()
      state = "empty"
    if state == "finished":
      described = ""
      if os.path.exists(self.params_path):
        old = config_lib.load_params(self.model_dir)
        described = f" ({old.model.name} on {old.data.dataset}, seed {old.seed})"
      raise RunDirectoryError(
          f"{self.model_dir} holds a finished run{described}: its checkpoint and params.yaml "
          "would be replaced. Choose another --model_dir, or pass --overwrite to replace it.")
    pending = self.path("backup", "params.yaml")
    if state == "interrupted" and os.path.exists(pending):
      with open(pending, encoding="utf-8") as f:
        old = config_lib.apply_overrides(config_lib.ExperimentConfig(), yaml.safe_load(f) or {})
      differences = config_differences(old, config)
      if differences:
        raise RunDirectoryError(
            f"{self.model_dir} holds the backup of an interrupted run under another config "
            f"({'; '.join(differences)}). Rerun with the backup's settings to resume it, or "
            "pass --overwrite to discard the backup and start afresh.")
    _write_text_atomically(pending, yaml.safe_dump(config_lib.to_dict(config), sort_keys=False))
    return "resumed" if state == "interrupted" else "fresh"

  def end_backup(self) -> None:
    """Removes backup/params.yaml, and backup/ when nothing else is left in it."""
    pending = self.path("backup", "params.yaml")
    if os.path.exists(pending):
      os.remove(pending)
    if os.path.isdir(self.path("backup")) and not os.listdir(self.path("backup")):
      os.rmdir(self.path("backup"))

  def remove_artifacts(self) -> None:
    """Deletes the run's artifacts (checkpoints, backup, vocabularies, logs, params, metrics)."""
    for name in _ARTIFACTS:
      path = self.path(name)
      if os.path.isdir(path):
        shutil.rmtree(path)
      elif os.path.exists(path):
        os.remove(path)

  def write_params(self, config: config_lib.ExperimentConfig) -> str:
    """Writes params.yaml atomically (a complete file or the previous one); returns its path."""
    _write_text_atomically(self.params_path,
                           yaml.safe_dump(config_lib.to_dict(config), sort_keys=False))
    return self.params_path

  @staticmethod
  def describe_data(split, config: config_lib.ExperimentConfig) -> Dict[str, Any]:
    """The identity of `split`'s data: name, protocol, sizes, feature tables' fingerprint."""
    tables = item_features.ItemFeatureTables.from_catalog(split.items, split.item_vocabulary)
    digest = hashlib.sha256()
    for array in (tables.genres, tables.year_bucket):
      digest.update(np.ascontiguousarray(array, np.int32).tobytes())
    # Extra categorical tables enter the digest only where there are some, so the digests of
    # data sets without them are those of runs recorded before they existed.
    for name in sorted(tables.categorical):
      _update(digest, name, tables.categorical[name], tables.categorical_vocabularies[name])
    identity = {
        "dataset": config.data.dataset, "data_dir": config.data.data_dir,
        "split": config.data.split, "implicit": config.data.implicit,
        "num_items": int(split.item_vocabulary.size - vocabulary_lib.NUM_RESERVED),
        "num_users": int(split.user_vocabulary.size - vocabulary_lib.NUM_RESERVED),
        "genre_vocabulary": [str(g) for g in tables.genre_vocabulary],
        "first_year": int(tables.first_year), "item_features_sha256": digest.hexdigest()}
    if tables.categorical:
      identity["item_features"] = sorted(tables.categorical)
    users = user_features.UserFeatureTables.from_table(getattr(split, "users", None),
                                                       split.user_vocabulary)
    if users.tables:
      digest = hashlib.sha256()
      for name in sorted(users.tables):
        _update(digest, name, users.tables[name], users.vocabularies[name])
      identity["user_features"] = sorted(users.tables)
      identity["user_features_sha256"] = digest.hexdigest()
    metadata = getattr(split, "metadata", None) or {}
    for key in ("columns", "source_files"):
      if key in metadata:
        identity[key] = metadata[key]
    return identity

  def write_data(self, split, config: config_lib.ExperimentConfig) -> None:
    """Writes vocabularies/ for `split` (ids of both vocabularies and data.json)."""
    identity = self.describe_data(split, config)
    for name, vocabulary in (("item_ids", split.item_vocabulary),
                             ("user_ids", split.user_vocabulary)):
      path = vocabulary.write(os.path.join(self.vocabulary_dir, f"{name}.txt"))
      identity[f"{name}_sha256"] = _sha256(path)
    _write_text_atomically(os.path.join(self.vocabulary_dir, "data.json"),
                           json.dumps(identity, indent=2))

  def has_data(self) -> bool:
    return os.path.exists(os.path.join(self.vocabulary_dir, "data.json"))

  def check_data(self, split, config: config_lib.ExperimentConfig) -> None:
    """Raises `DataMismatchError` naming both data sets unless `split` is the run's data.

    The vocabularies must be equal id for id, and the item feature tables (genres, year
    buckets) equal entry for entry.
    """
    with open(os.path.join(self.vocabulary_dir, "data.json"), encoding="utf-8") as f:
      recorded = json.load(f)
    loaded = self.describe_data(split, config)
    problems = []
    for name, what, vocabulary in (("item_ids", "item", split.item_vocabulary),
                                   ("user_ids", "user", split.user_vocabulary)):
      trained = vocabulary_lib.IdVocabulary.read(os.path.join(self.vocabulary_dir, f"{name}.txt"))
      if trained != vocabulary:
        only_trained = np.setdiff1d(trained.ids, vocabulary.ids)
        only_loaded = np.setdiff1d(vocabulary.ids, trained.ids)
        example = (f", e.g. {str(only_trained[0])!r}" if len(only_trained) else
                   f", e.g. {str(only_loaded[0])!r}" if len(only_loaded) else "")
        problems.append(f"the {what} vocabularies differ ({len(only_trained)} ids only in the "
                        f"run's, {len(only_loaded)} only in the loaded data's{example})")
    if not problems and (recorded.get("item_features_sha256") != loaded["item_features_sha256"]
                         or recorded.get("genre_vocabulary") != loaded["genre_vocabulary"]):
      problems.append("the item feature tables differ (the catalogue's genres, years or "
                      "categorical item features changed)")
    # Runs recorded before user feature tables existed have no digest of them to compare.
    if not problems and "user_features_sha256" in recorded and recorded[
        "user_features_sha256"] != loaded.get("user_features_sha256"):
      problems.append(f"the user feature tables differ ({recorded.get('user_features', [])} "
                      f"in the run's, {loaded.get('user_features', [])} in the loaded data's)")
    before, now = recorded.get("source_files"), loaded.get("source_files") or {}
    if not problems and before is not None and before != now:
      changed = sorted(n for n in set(before) | set(now) if before.get(n) != now.get(n))
      logging.warning("The files of %s changed since %s was trained (%s); its vocabularies and "
                      "feature tables still match, so it is evaluated on the data as it is now.",
                      config.data.data_dir, self.model_dir, ", ".join(changed))
    if problems:

      def describe(identity):
        where = f", data_dir {identity['data_dir']}" if identity.get("data_dir") else ""
        return (f"{identity['dataset']} ({identity['num_items']:,} items, "
                f"{identity['num_users']:,} users, {identity['split']} split, "
                f"{'implicit' if identity['implicit'] else 'engagement'} protocol{where})")

      raise DataMismatchError(
          f"{self.model_dir} was trained on {describe(recorded)}, but the data loaded now is "
          f"{describe(loaded)}: {'; '.join(problems)}. Point --dataset / --data_dir at the "
          "run's data set, or train a new run on this one.")
