"""Models by name: one table from a model name to its config, builder and input stream.

A model plugs into the toolkit here and nowhere else (the shape of TF Model Garden's
`exp_factory`): `Experiment` builds, trains and restores through `get(name)`, the binaries
check `--model` and `--export_dir` against it before any work, and `ModelConfig.name` is
validated against `names()`.

Each `ModelSpec` says:
- `config_fields`: the `ModelConfig` fields its builder reads (the rest are ignored).
- `build(config, split)`: the untrained model, built so that a checkpoint restores into it.
- `training`: how it learns: "counted" (`fit_counts` on the training positives, no batches),
  "sequences" (whole sequences, `Experiment._sequence_stream`) or "windows" ((history window,
  next positive) pairs, `Experiment._two_tower_stream`).
- `check(model_config)`: raises a ValueError naming the key for settings the model cannot
  take; run when the config is made (`ModelConfig.__post_init__`), before any work.
- `servable`: whether it meets `contract.ServableRanker` (an export can rank with it);
  `retriever`: whether it can be the first stage of a two-stage export.

Example:
  >>> from tfrs_smoe.models import registry
  >>> registry.names()
  ('popularity', 'bst', 'smoe_bst', 'two_tower', 'sasrec')
  >>> spec = registry.get("smoe_bst")
  >>> spec.training, spec.servable, spec.retriever
  ('sequences', True, False)
"""

import dataclasses
from typing import Any, Callable, Dict, Optional, Tuple

from absl import logging
import numpy as np
import tensorflow as tf

from tfrs_smoe.data import item_features
from tfrs_smoe.data import user_features
from tfrs_smoe.models import popularity
from tfrs_smoe.models import sasrec
from tfrs_smoe.models import smoe_bst
from tfrs_smoe.models import two_tower

TRAINING_KINDS = ("counted", "sequences", "windows")

# (ExperimentConfig, splits.Split) -> built tf.keras.Model; typed loosely because the config
# module imports this one.
Builder = Callable[[Any, Any], tf.keras.Model]


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """How the toolkit builds, trains and serves one model; see the module docstring."""

  name: str
  description: str
  build: Builder
  training: str
  config_fields: Tuple[str, ...] = ()
  servable: bool = True
  retriever: bool = False
  check: Optional[Callable[[Any], None]] = None

  def __post_init__(self):
    if self.training not in TRAINING_KINDS:
      raise ValueError(f"{self.name}: training must be one of {TRAINING_KINDS}, got "
                       f"{self.training!r}.")


_REGISTRY: Dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
  """Adds `spec` under `spec.name`; a name is registered once."""
  if spec.name in _REGISTRY:
    raise ValueError(f"A model named {spec.name!r} is registered already.")
  _REGISTRY[spec.name] = spec
  return spec


def names() -> Tuple[str, ...]:
  """The registered model names, in registration order."""
  return tuple(_REGISTRY)


def get(name: str) -> ModelSpec:
  """The spec of `name`; a ValueError listing the registered names for an unknown one."""
  if name not in _REGISTRY:
    raise ValueError(f"Unknown model {name!r}; available: {', '.join(_REGISTRY)}.")
  return _REGISTRY[name]


def _positive_counts(split) -> np.ndarray:
  """[num_items] training positives per item: `Split.positive_counts` (a `PreparedSplit` has
  them from its preparation, without the training log)."""
  return split.positive_counts()


def _named(tables: Dict[str, np.ndarray], names, key: str) -> Dict[str, np.ndarray]:
  """The tables of the features the config names (`key`), in its order; others are left out,
  so that a data set's own columns (MovieLens' user file) change no model unless named."""
  missing = [name for name in names if name not in tables]
  if missing:
    raise ValueError(f"{key}: {missing} are not features of the split (it has "
                     f"{sorted(tables)}).")
  return {name: tables[name] for name in names}


def _tables(config, split) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray],
                                    Dict[str, np.ndarray]]:
  """(genre and year tables, the named extra item features, the named user features): the
  categorical columns of `data.item_features` / `data.user_features` as [num_items] /
  [num_users] value-id tables (`ItemFeatureTables.categorical`, `UserFeatureTables.tables`)."""
  items = item_features.ItemFeatureTables.from_catalog(split.items, split.item_vocabulary)
  users = user_features.UserFeatureTables.from_table(getattr(split, "users", None),
                                                     split.user_vocabulary)
  return (items.as_dict(),
          _named(items.categorical, config.data.item_features, "data.item_features"),
          _named(users.tables, config.data.user_features, "data.user_features"))


def _build_popularity(config, split) -> tf.keras.Model:
  del config
  return popularity.PopularityModel(num_items=split.item_vocabulary.size)


def _build_sequential(config, split, windows) -> tf.keras.Model:
  encoder = config.model.encoder if windows is None else dataclasses.replace(
      config.model.encoder, expert_windows=windows)
  tables, item_categorical, user_tables = _tables(config, split)
  model = smoe_bst.SMoEBST(split.item_vocabulary.size, split.user_vocabulary.size,
                           tables, encoder, config.model.task,
                           max_len=config.data.max_len,
                           candidate_counts=_positive_counts(split),
                           item_categorical=item_categorical, user_features=user_tables)
  model.initialize()
  return model


def _check_smoe_bst(model_config) -> None:
  windows = model_config.encoder.expert_windows
  if len(windows) < 2:
    raise ValueError(f"model.encoder.expert_windows: smoe_bst needs >= 2 expert windows, got "
                     f"{list(windows)}; use model name bst for one expert.")


def _build_smoe_bst(config, split) -> tf.keras.Model:
  _check_smoe_bst(config.model)
  return _build_sequential(config, split, None)


def _build_bst(config, split) -> tf.keras.Model:
  return _build_sequential(config, split, (0,))


def _build_two_tower(config, split) -> tf.keras.Model:
  max_len = config.data.max_len
  tables, item_categorical, user_tables = _tables(config, split)
  model = two_tower.TwoTower(split.item_vocabulary.size, split.user_vocabulary.size,
                             tables, config.model.encoder, config.model.two_tower,
                             max_len=max_len, candidate_counts=_positive_counts(split),
                             item_categorical=item_categorical, user_features=user_tables)
  model({"history": tf.zeros([1, max_len], tf.int32), "user_index": tf.zeros([1], tf.int32)})
  return model


def _build_sasrec(config, split) -> tf.keras.Model:
  """SASRec; it trains on the first next-K target only and ignores PHNS negatives (see
  `sasrec.SASRec`), which the data and train configs cannot be checked for in `check` (it sees
  the model config), so they are logged here."""
  if config.data.next_k > 1:
    logging.warning("sasrec trains on the next item only: data.next_k=%d, so targets 2..%d and "
                    "their soft labels are unused; set data: {next_k: 1, soft_labels: [1.0]}.",
                    config.data.next_k, config.data.next_k)
  if config.train.phns.enabled:
    logging.warning("sasrec ignores PHNS negatives (train.phns.preset=%s): its full softmax "
                    "ranks against every item; set train: {phns: {preset: none}}.",
                    config.train.phns.preset)
  model = sasrec.SASRec(split.item_vocabulary.size, config.model.sasrec,
                        max_len=config.data.max_len)
  model.initialize()
  return model


register(ModelSpec("popularity", "most popular positives of the training log, for every user",
                   _build_popularity, training="counted", servable=False))
register(ModelSpec("bst", "Behavior Sequence Transformer: one expert over the whole history",
                   _build_bst, training="sequences", config_fields=("encoder", "task")))
register(ModelSpec("smoe_bst", "S-MoE-BST: time-scale experts mixed by the gate",
                   _build_smoe_bst, training="sequences", config_fields=("encoder", "task"),
                   check=_check_smoe_bst))
register(ModelSpec("two_tower", "sampling-bias-corrected two-tower retrieval",
                   _build_two_tower, training="windows", config_fields=("encoder", "two_tower"),
                   retriever=True))
register(ModelSpec("sasrec", "SASRec: item ids, causal self-attention, full softmax over the "
                   "catalogue", _build_sasrec, training="sequences", config_fields=("sasrec",)))
