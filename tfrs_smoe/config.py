"""Typed experiment configuration, `params.yaml` reading/writing and `--params_override`.

Configs are nested dataclasses (as in TF Model Garden). Overrides are YAML or JSON mappings, given
inline or as a file path, applied field by field with type checks: an unknown key or a value of
the wrong type is an error that names the key and lists the valid ones. Every field's range is
checked when a config is made (`__post_init__`, so overrides and params.yaml too), with an error
that names the key, e.g. "train.learning_rate must be >= 0 and finite, got -0.1."

Example:
  >>> config = override(ExperimentConfig(), "data: {max_len: 20}\\ntrain: {epochs: 2}")
  >>> config.data.max_len
  20
"""

import dataclasses
import math
import os
import re
import typing
from typing import Any, Dict, Optional, Tuple

import yaml

from tfrs_smoe import distribute as distribute_lib
from tfrs_smoe.data import hard_negatives
from tfrs_smoe.data import movielens_files
from tfrs_smoe.data import watch_log_format
from tfrs_smoe.evaluation import metrics as metrics_lib
from tfrs_smoe.evaluation import phns_protocol
from tfrs_smoe.models import registry
from tfrs_smoe.models import sasrec as sasrec_lib
from tfrs_smoe.models import smoe_bst
from tfrs_smoe.models import two_tower as two_tower_lib
from tfrs_smoe.tasks import engagement_multitask

LEARNING_RATE_SCHEDULES = ("constant", "cosine")
SPLITS = ("leave_one_out", "time")
# The configs of `streaming_logs.StreamingLogs` (not imported here: it pulls in TFDS; a test
# keeps the two lists equal).
STREAMING_LOGS_CONFIGS = ("tiny", "small", "medium", "large")
# The seeds NumPy takes (`tf.keras.utils.set_random_seed` seeds NumPy too).
MAX_SEED = 2**32 - 1
# A validation metric of early stopping: "<name>@<k>" with k one of eval.ks
# (`metrics.metric_names`, the keys `RankingValidation` logs with a "val_" prefix).
_MONITOR = re.compile(r"(ndcg|recall|mrr)@([1-9][0-9]*)")


def _require(ok: bool, key: str, rule: str, value: Any) -> None:
  """Raises ValueError("<key> must be <rule>, got <value>.") unless `ok`."""
  if not ok:
    raise ValueError(f"{key} must be {rule}, got {value!r}.")


def _check_dataset(dataset: str) -> None:
  """Raises a ValueError naming data.dataset unless `load_watch_log` knows `dataset`."""
  variants = {"streaming_logs": STREAMING_LOGS_CONFIGS,
              "movielens": tuple(movielens_files.FORMATS), "watch_log": ()}
  name, slash, variant = dataset.partition("/")
  if name not in variants or (slash and variant not in variants[name]):
    raise ValueError(
        f"data.dataset: Unknown dataset {dataset!r}; use streaming_logs[/"
        f"{'|'.join(STREAMING_LOGS_CONFIGS)}], movielens[/{'|'.join(movielens_files.FORMATS)}] "
        "(the format is detected without it) or watch_log.")


@dataclasses.dataclass
class DataConfig:
  """Which data set, which protocol, which example shape.

  Attributes:
    dataset: "streaming_logs" (embedded synthetic default, config "small"),
      "streaming_logs/<config>" (tiny, small, medium, large), "movielens/<format>" (100k, 1m,
      latest-small) or "watch_log" (your own CSV / TSV / Parquet files in data_dir; see
      tfrs_smoe/data/watch_log_files.py and the README's "Your own data").
    data_dir: directory with the raw MovieLens files (the TFDS manual_dir) or the watch_log
      files; unused for streaming_logs.
    tfds_data_dir: where TFDS writes prepared data (and watch_log its prepared Parquet copy);
      "" is TFDS's default (~/tensorflow_datasets).
    skip_bad_lines: skip and report malformed raw lines (watch_log: bad rows) instead of
      failing.
    columns: watch_log: default column name -> your files' name for it, e.g.
      {user_id: account, item_id: title_id}; one mapping for every file.
    genre_separator: watch_log: splits a text genres column of the items file.
    item_features: watch_log: extra categorical columns of the items file to carry with the
      catalogue (ItemCatalog.features, ItemFeatureTables.categorical).
    user_features: watch_log: categorical columns of the users file to carry
      (UserTable.features, UserFeatureTables).
    abandonment_threshold: engagement <= this is an abandonment; None is the data set's default
      (0.05 completion for streaming logs, rating <= 2 i.e. 0.4 for MovieLens).
    implicit: every interaction is a positive (the literature's implicit protocol).
    split: "leave_one_out" or "time".
    min_positives: leave-one-out users with fewer positives are only used for training.
    validation_fraction: time split: share of interactions in the validation period.
    test_fraction: time split: share of interactions in the test period.
    max_len: history length fed to models.
    next_k: number of next targets per training position. The paper's 3 (soft labels 1.0,
      0.6, 0.3) scored below next_k 1 on next-item full ranking on both data sets
      (experiments/report.py, S-MoE-BST NDCG@10 over 3 seeds: 0.1959 vs 0.2177 on the
      embedded default, 0.0487 vs 0.0546 on MovieLens), so the default is 1; with 3,
      `model.task.next_k_mode: auxiliary` trains the later targets through a separate head and
      left next-item NDCG@10 unchanged (-0.0012, interval [-0.0051, +0.0026], one seed).
    soft_labels: label weight of the k-th next target; next_k values.
    all_chunks: sequential models train on every chunk of max_len + 1 positives of each user's
      sequence, not only on the most recent one (`SequencePipeline.sequences`).
  """

  dataset: str = "streaming_logs"
  data_dir: str = ""
  tfds_data_dir: str = ""
  skip_bad_lines: bool = False
  columns: Dict[str, str] = dataclasses.field(default_factory=dict)
  genre_separator: str = "|"
  item_features: Tuple[str, ...] = ()
  user_features: Tuple[str, ...] = ()
  abandonment_threshold: Optional[float] = None
  implicit: bool = False
  split: str = "leave_one_out"
  min_positives: int = 3
  validation_fraction: float = 0.1
  test_fraction: float = 0.1
  max_len: int = 50
  next_k: int = 1
  soft_labels: Tuple[float, ...] = (1.0,)
  all_chunks: bool = True

  def __post_init__(self):
    watch_log_format.check_format(self.columns, self.genre_separator, self.item_features,
                                  self.user_features, prefix="data.")
    if self.abandonment_threshold is not None and not 0.0 <= self.abandonment_threshold < 1.0:
      raise ValueError("data.abandonment_threshold must be in [0, 1) or null, got "
                       f"{self.abandonment_threshold}.")
    _check_dataset(self.dataset)
    _require(self.split in SPLITS, "data.split", f"one of {SPLITS}", self.split)
    _require(self.min_positives >= 3, "data.min_positives",
             ">= 3 (test, validation and one history item)", self.min_positives)
    for name in ("validation_fraction", "test_fraction"):
      value = getattr(self, name)
      _require(0.0 < value < 1.0, f"data.{name}", "in (0, 1)", value)
    if not self.validation_fraction + self.test_fraction < 1.0:
      raise ValueError("data.validation_fraction + data.test_fraction must be < 1 (what is left "
                       f"is the training period), got {self.validation_fraction} + "
                       f"{self.test_fraction}.")
    _require(self.max_len >= 1, "data.max_len", ">= 1", self.max_len)
    _require(self.next_k >= 1, "data.next_k", ">= 1", self.next_k)
    if len(self.soft_labels) != self.next_k:
      raise ValueError(f"data.soft_labels must have data.next_k = {self.next_k} values, got "
                       f"{list(self.soft_labels)}.")
    _require(all(0.0 < label <= 1.0 for label in self.soft_labels), "data.soft_labels",
             "label weights in (0, 1]", list(self.soft_labels))


@dataclasses.dataclass
class ModelConfig:
  """Which model, its architecture and its loss.

  Attributes:
    name: a model of `models.registry`: "popularity" (most popular positives in the training
      log), "bst" (one expert over the whole history, no gate), "smoe_bst" (the experts of
      `encoder.expert_windows` mixed by the gate), "two_tower" (sampling-bias-corrected
      retrieval) or "sasrec" (SASRec with full softmax cross-entropy).
    encoder: architecture of bst / smoe_bst, and the content embeddings and history encoders
      of two_tower.
    task: the multitask loss of bst / smoe_bst.
    two_tower: towers, softmax and correction of two_tower.
    sasrec: architecture of sasrec.
  """

  name: str = "popularity"
  encoder: smoe_bst.SMoEBSTConfig = dataclasses.field(default_factory=smoe_bst.SMoEBSTConfig)
  task: engagement_multitask.MultitaskConfig = dataclasses.field(
      default_factory=engagement_multitask.MultitaskConfig)
  two_tower: two_tower_lib.TwoTowerConfig = dataclasses.field(
      default_factory=two_tower_lib.TwoTowerConfig)
  sasrec: sasrec_lib.SASRecConfig = dataclasses.field(default_factory=sasrec_lib.SASRecConfig)

  def __post_init__(self):
    try:
      spec = registry.get(self.name)
    except ValueError as error:
      raise ValueError(f"model.name: {error}") from None
    if spec.check is not None:
      spec.check(self)


@dataclasses.dataclass
class TrainConfig:
  """Optimisation settings for trainable models.

  Attributes:
    batch_size: examples per step (sequences for bst / smoe_bst, (history, next positive)
      pairs for two_tower, whose in-batch softmax gets batch_size - 1 negatives).
    epochs: most passes over the training examples. The default schedule, at most 200
      epochs with early stopping after 10 validations without a better `monitor`, is where
      every sequence model of issue 22's probes peaked: best validation epochs 45 to 80 at
      lr 1e-3 (docs/results.md); the former 10-epoch cap stopped them at a fifth of their
      NDCG@10. The README's main command shortens it for speed.
    learning_rate: Adam learning rate (the peak one under a schedule).
    learning_rate_schedule: "constant", or "cosine": linear warm-up from 0 over
      `warmup_epochs`, then cosine decay to 0 at the end of `epochs` (Loshchilov & Hutter's
      SGDR without restarts, as in TF Model Garden's "cosine" learning-rate config). The run
      ends at a small rate instead of leaving early stopping to pick among the noisy epochs of
      a constant one; pair it with a patience that lets the decay finish. (On MovieLens it
      scored below the constant rate: see the README's probes.)
    warmup_epochs: epochs of linear warm-up of the cosine schedule (0 = none).
    validate_every: epochs between full-ranking evaluations on the validation split.
    early_stopping_patience: validations without a better `monitor` before training stops
      (the best weights are kept); 0 trains all epochs and keeps the last weights.
    early_stopping_start_epoch: epochs trained before early stopping starts watching
      `monitor`; validation metrics of sequence models on MovieLens dip after a few epochs and
      climb past the early peak later, so a short patience alone stops them in the dip.
    monitor: validation metric of early stopping: ndcg@k, recall@k or mrr@k with k one of
      eval.ks, e.g. "ndcg@10".
    phns: personalised hard negatives for training (preset "none" keeps the model's in-batch
      negatives).
    backup_every_steps: steps between fault-tolerance backups into model_dir/backup (0 = at the
      end of every epoch); a run killed mid-way and started again resumes from its backup.
    log_every_steps: steps between TensorBoard scalars of the learning rate and the losses
      (`step_*` in model_dir/logs/train, beside the `epoch_*` metrics; 0 = off).
  """

  batch_size: int = 128
  epochs: int = 200
  learning_rate: float = 1e-3
  learning_rate_schedule: str = "constant"
  warmup_epochs: int = 0
  validate_every: int = 1
  early_stopping_patience: int = 10
  early_stopping_start_epoch: int = 0
  monitor: str = "ndcg@10"
  phns: hard_negatives.PHNSConfig = dataclasses.field(default_factory=hard_negatives.PHNSConfig)
  backup_every_steps: int = 0
  log_every_steps: int = 100

  def __post_init__(self):
    _require(self.batch_size >= 1, "train.batch_size", ">= 1", self.batch_size)
    _require(self.epochs >= 1, "train.epochs", ">= 1", self.epochs)
    # Negative would be gradient ascent; NaN and inf fail too. 0 freezes the weights (a probe).
    _require(0.0 <= self.learning_rate < math.inf, "train.learning_rate", ">= 0 and finite",
             self.learning_rate)
    if self.learning_rate_schedule not in LEARNING_RATE_SCHEDULES:
      raise ValueError(f"train.learning_rate_schedule must be one of {LEARNING_RATE_SCHEDULES}, "
                       f"got {self.learning_rate_schedule!r}.")
    if not 0 <= self.warmup_epochs < self.epochs:
      raise ValueError(f"train.warmup_epochs must be in [0, epochs = {self.epochs}), got "
                       f"{self.warmup_epochs}.")
    if self.warmup_epochs and self.learning_rate_schedule == "constant":
      raise ValueError("train.warmup_epochs needs learning_rate_schedule: cosine.")
    _require(self.validate_every >= 1, "train.validate_every", ">= 1", self.validate_every)
    _require(self.early_stopping_patience >= 0, "train.early_stopping_patience",
             ">= 0 (0 = no early stopping)", self.early_stopping_patience)
    _require(_MONITOR.fullmatch(self.monitor) is not None, "train.monitor",
             "a validation metric ndcg@k, recall@k or mrr@k with k one of eval.ks", self.monitor)
    if self.backup_every_steps < 0:
      raise ValueError(f"train.backup_every_steps must be >= 0, got {self.backup_every_steps}.")
    if self.log_every_steps < 0:
      raise ValueError("train.log_every_steps must be >= 0 (0 = off), got "
                       f"{self.log_every_steps}.")
    if self.early_stopping_start_epoch < 0:
      raise ValueError("train.early_stopping_start_epoch must be >= 0, got "
                       f"{self.early_stopping_start_epoch}.")


@dataclasses.dataclass
class EvalConfig:
  """Evaluation protocols.

  Attributes:
    ks: cut-offs of NDCG@k, Recall@k and MRR@k.
    batch_size: users scored against the whole catalogue per step.
    phns_test: also run the PHNS test (test positives vs the user's abandoned items and sampled
      trending and tailing items).
    phns: how the PHNS test builds candidate sets (size, pools, seed).
    next_k_metrics: with a leave-one-out split, the validation results also hold the
      "next_k" protocol: Recall@k and NDCG@k over each user's next 2 items (the validation
      and the test item) from the validation history (`evaluation.next_k.NextKEvaluator`),
      beside the next-item metrics, so that a next-K objective's gain and cost show side by
      side. Reported only: early stopping watches the next-item metrics.
  """

  ks: Tuple[int, ...] = (1, 5, 10)
  batch_size: int = 256
  phns_test: bool = True
  next_k_metrics: bool = True
  phns: phns_protocol.PHNSTestConfig = dataclasses.field(
      default_factory=phns_protocol.PHNSTestConfig)

  def __post_init__(self):
    _require(bool(self.ks) and all(k >= 1 for k in self.ks) and len(set(self.ks)) == len(self.ks),
             "eval.ks", "distinct cut-offs >= 1", list(self.ks))
    _require(self.batch_size >= 1, "eval.batch_size", ">= 1", self.batch_size)


@dataclasses.dataclass
class ExperimentConfig:
  """A whole experiment.

  Attributes:
    data: data set and protocol.
    model: model choice.
    train: optimisation.
    eval: evaluation.
    distribute: the tf.distribute strategy of training.
    seed: global seed (TensorFlow, NumPy, shuffling).
  """

  data: DataConfig = dataclasses.field(default_factory=DataConfig)
  model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
  train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
  eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
  distribute: distribute_lib.DistributeConfig = dataclasses.field(
      default_factory=distribute_lib.DistributeConfig)
  seed: int = 0

  def __post_init__(self):
    _require(0 <= self.seed <= MAX_SEED, "seed", "in [0, 2**32 - 1]", self.seed)
    # The monitor is read only when early stopping is on, by models trained on batches.
    training = self.train
    if training.early_stopping_patience and registry.get(self.model.name).training != "counted":
      valid = metrics_lib.metric_names(self.eval.ks)
      if training.monitor not in valid:
        raise ValueError(f"train.monitor {training.monitor!r} is not a validation metric of "
                         f"eval.ks {list(self.eval.ks)}: early stopping watches one of "
                         f"{', '.join(valid)}.")
    # PHNS negatives are a field of the examples; a task without a term that reads them would
    # train exactly as without them.
    if (training.phns.enabled and "task" in registry.get(self.model.name).config_fields
        and not self.model.task.uses_row_negatives()):
      paper = ", ".join(f"{key}: {value}"
                        for key, value in engagement_multitask.PAPER_MULTITASK.items())
      paper = "{" + paper + "}"
      raise ValueError(
          f"train.phns.preset {training.phns.preset!r} adds hard negatives to every training "
          f"position, but model.task has no term that reads them (ctr_weight and hinge_weight "
          f"are 0 and softmax is {self.model.task.softmax!r}): set model.task ctr_weight or "
          f"hinge_weight > 0 (the paper's multitask: {paper}), or softmax: sampled with "
          f"negative_sampler: rows; or train.phns.preset: none.")


def _coerce(value: Any, field_type: Any, key: str) -> Any:
  """`value` converted to `field_type`, or a ValueError naming `key`."""
  origin = typing.get_origin(field_type)
  args = typing.get_args(field_type)
  if origin is typing.Union and type(None) in args:
    if value is None:
      return None
    return _coerce(value, next(a for a in args if a is not type(None)), key)
  if origin is dict:
    if not isinstance(value, dict):
      raise ValueError(f"{key}: expected a mapping, got {value!r}.")
    return {_coerce(k, args[0], f"{key} key"): _coerce(v, args[1], f"{key}.{k}")
            for k, v in value.items()}
  if origin is tuple:
    if not isinstance(value, (list, tuple)):
      raise ValueError(f"{key}: expected a list, got {value!r}.")
    return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
  if field_type is float and isinstance(value, int) and not isinstance(value, bool):
    return float(value)
  if field_type in (bool, int, float, str):
    if type(value) is not field_type:  # bool is an int subclass; be strict.
      raise ValueError(f"{key}: expected {field_type.__name__}, got {value!r}.")
    return value
  raise TypeError(f"{key}: unsupported config type {field_type}.")


def apply_overrides(config: Any, overrides: Dict[str, Any], prefix: str = "") -> Any:
  """A copy of `config` with a nested mapping of field values applied (type-checked)."""
  if not isinstance(overrides, dict):
    raise ValueError(f"{prefix or 'params_override'}: expected a mapping, got {overrides!r}.")
  hints = typing.get_type_hints(type(config))
  changes = {}
  for key, value in overrides.items():
    if key not in hints:
      raise ValueError(f"Unknown config key {prefix + key!r}; valid keys: "
                       f"{', '.join(prefix + k for k in hints)}.")
    current = getattr(config, key)
    if dataclasses.is_dataclass(current):
      changes[key] = apply_overrides(current, value, f"{prefix}{key}.")
    else:
      changes[key] = _coerce(value, hints[key], prefix + key)
  try:
    return dataclasses.replace(config, **changes)
  except ValueError as error:
    # The configs of other modules (train.phns, eval.phns, distribute, model.task) may word a
    # range error without the key's section: name it. (A prefix without a final "." labels a
    # whole config, as `variants.resolve` does; its errors name their keys.)
    if not prefix.endswith("."):
      raise
    field = re.split(r"[.\s]", prefix[:-1])[-1]
    if f"{field}." in str(error) or f"{field}:" in str(error):
      raise
    raise ValueError(f"{prefix[:-1]}: {error}") from None


def read_yaml(text_or_path: str) -> Any:
  """The YAML/JSON value of inline text or of the file at that path (None for "")."""
  text = text_or_path
  if os.path.isfile(text_or_path):
    with open(text_or_path, encoding="utf-8") as f:
      text = f.read()
  return yaml.safe_load(text)


def override(config: Any, params_override: str) -> Any:
  """A copy of `config` with a YAML/JSON mapping (inline text or a file path) applied."""
  if not params_override:
    return config
  return apply_overrides(config, read_yaml(params_override) or {})


def to_dict(config: Any) -> Dict[str, Any]:
  """Plain nested dict (tuples as lists) for YAML/JSON."""
  def plain(value):
    if isinstance(value, dict):
      return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
      return [plain(v) for v in value]
    return value
  return plain(dataclasses.asdict(config))


def save_params(config: Any, model_dir: str) -> str:
  """Writes `<model_dir>/params.yaml` atomically (a temporary file renamed into place) and
  returns its path."""
  os.makedirs(model_dir, exist_ok=True)
  path = os.path.join(model_dir, "params.yaml")
  temporary = f"{path}.tmp-{os.getpid()}"
  with open(temporary, "w", encoding="utf-8") as f:
    yaml.safe_dump(to_dict(config), f, sort_keys=False)
  os.replace(temporary, path)
  return path


def load_params(model_dir: str) -> ExperimentConfig:
  """Reads `<model_dir>/params.yaml` written by `save_params`."""
  path = os.path.join(model_dir, "params.yaml")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"No params.yaml in {model_dir!r}: was it written by "
                            "experiments/train.py?")
  with open(path, encoding="utf-8") as f:
    return apply_overrides(ExperimentConfig(), yaml.safe_load(f) or {})
