"""One experiment from a config: data, split, model, fit, evaluate, artifacts.

The order is fixed and shared by `experiments/train.py` and `experiments/evaluate.py`:

  load the watch log (TFDS, offline) -> split (leave-one-out or time) -> build the model ->
  fit on the training split -> checkpoint -> evaluate (full ranking over the whole catalogue,
  and the PHNS test) -> metrics JSON, TensorBoard scalars, a printed table.
"""

import json
import os
import re
import shutil
import sys
import tempfile
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Union

from absl import logging
import numpy as np
import tensorflow as tf

from tfrs_smoe import config as config_lib
from tfrs_smoe import distribute
from tfrs_smoe import resumable_early_stopping
from tfrs_smoe import run_directory
from tfrs_smoe.data import epoch_stream
from tfrs_smoe.data import hard_negatives
from tfrs_smoe.data import prepared_split
from tfrs_smoe.data import schema
from tfrs_smoe.data import sequences
from tfrs_smoe.data import shard_stream
from tfrs_smoe.data import splits as splits_lib
from tfrs_smoe.data.preparation import finish
from tfrs_smoe.evaluation import full_ranking
from tfrs_smoe.evaluation import next_k
from tfrs_smoe.evaluation import per_user as per_user_lib
from tfrs_smoe.evaluation import phns_protocol
from tfrs_smoe.evaluation import ranking_callback
from tfrs_smoe.models import registry


class Results(dict):
  """Protocol -> metric name -> value: what metrics_<subset>.json holds.

  A dict (compares, prints and serialises as one), which also carries every evaluated user's
  metric values, for paired comparisons between models.

  Attributes:
    per_user: protocol -> the per-user metrics whose means are that protocol's metrics; empty
      for results not produced by `Experiment.evaluate`.
  """

  def __init__(self, *args,
               per_user: Optional[Dict[str, per_user_lib.PerUserMetrics]] = None, **kwargs):
    super().__init__(*args, **kwargs)
    self.per_user = dict(per_user or {})


def load_watch_log(data: config_lib.DataConfig) -> schema.WatchLog:
  """Loads `data.dataset` offline: through its TFDS builder, or (watch_log) from the files of
  `data.data_dir`, prepared once into `data.tfds_data_dir` and again when they change.

  Raises:
    ValueError: data.data_dir is a prepared output (`Experiment.prepare_data` reads those as a
      `PreparedSplit`, never as a whole log in memory).
  """
  if prepared_split.check_directory(data.data_dir):
    raise ValueError(f"data.data_dir {data.data_dir} is a prepared output (tfrs-smoe-prepare): "
                     "it is read from its shards by Experiment.prepare_data, not as a log.")
  # Imported here so that a user of one data set does not pay for building the other's module.
  name, _, variant = data.dataset.partition("/")
  tfds_data_dir = data.tfds_data_dir or None
  if name == "streaming_logs":
    from tfrs_smoe.data import streaming_logs  # pylint: disable=g-import-not-at-top
    return streaming_logs.load_streaming_logs(config=variant or "small", data_dir=tfds_data_dir)
  if name == "movielens":
    from tfrs_smoe.data import movielens  # pylint: disable=g-import-not-at-top
    from tfrs_smoe.data import movielens_files  # pylint: disable=g-import-not-at-top
    if not data.data_dir:
      raise ValueError("movielens needs data_dir (--data_dir): the directory holding the raw "
                       "MovieLens files, e.g. ../shared/data/ml-latest-small.")
    return movielens.load_movielens(
        data.data_dir, format=variant or movielens_files.detect_format(data.data_dir),
        data_dir=tfds_data_dir, skip_bad_lines=data.skip_bad_lines)
  if name == "watch_log" and not variant:
    from tfrs_smoe.data import prepared_watch_log  # pylint: disable=g-import-not-at-top
    from tfrs_smoe.data import watch_log_format  # pylint: disable=g-import-not-at-top
    if not data.data_dir:
      raise ValueError("watch_log needs data_dir (--data_dir): the directory holding your "
                       "interactions file (and optional items and users files).")
    return prepared_watch_log.PreparedWatchLog(data.data_dir, watch_log_format.WatchLogFormat(
        columns=dict(data.columns), genre_separator=data.genre_separator,
        item_features=data.item_features, user_features=data.user_features,
        skip_bad_lines=data.skip_bad_lines), root=tfds_data_dir).load()
  raise ValueError(f"Unknown dataset {data.dataset!r}; use "
                   "streaming_logs[/tiny|small|medium|large], movielens/<100k|1m|latest-small> "
                   "or watch_log (with --data_dir).")


def check_data_source(data: config_lib.DataConfig) -> None:
  """Checks, before any work, that the data `load_watch_log` will read is there.

  movielens and watch_log read the files of `data.data_dir`, which must be a directory (the
  files in it are checked when they are read); streaming_logs is generated. A data_dir that holds
  a preparation (tfrs-smoe-prepare) must be complete and of the data set and protocol asked for.

  Raises:
    ValueError: naming data.data_dir (--data_dir), or the key that differs from the
      preparation's.
  """
  if prepared_split.check_directory(data.data_dir):
    prepared_split.check_protocol(data.data_dir, finish.read_statistics(data.data_dir), data)
    return
  name = data.dataset.partition("/")[0]
  if name not in ("movielens", "watch_log"):
    return
  if not data.data_dir:
    raise ValueError(f"{name} needs data.data_dir (--data_dir): the directory holding "
                     + ("the raw MovieLens files, e.g. ../shared/data/ml-latest-small."
                        if name == "movielens" else
                        "your interactions file (and optional items and users files)."))
  if not os.path.isdir(data.data_dir):
    raise ValueError(f"data.data_dir (--data_dir): no such directory: {data.data_dir}")


_FAMILIES = {"ndcg": "NDCG", "recall": "Recall", "mrr": "MRR"}


def format_epoch_summary(epoch: int, epochs: int, logs: Mapping[str, float], seconds: float,
                         monitor: str = "ndcg@10") -> str:
  """One readable line for an epoch's Keras logs: loss terms, validation, gate weights, time.

  Args:
    epoch: the epoch's 0-based index (Keras' `on_epoch_end` argument).
    epochs: how many epochs the fit runs at most.
    logs: the epoch's logs: `loss` and the task's `loss_<term>`s, `regularization_loss`,
      `val_<metric>` of `RankingValidation`, `gate_weight_<expert>` of the adaptive gate.
    seconds: the epoch's wall time, validation included.
    monitor: early stopping's metric, shown beside validation NDCG@10.

  Example:
    >>> print(format_epoch_summary(1, 10, {"loss": 6.75, "loss_softmax": 6.56,
    ...                                    "val_ndcg@10": 0.0341, "gate_weight_0": 0.62,
    ...                                    "gate_weight_1": 0.38}, 12.34))
    ... # doctest: +NORMALIZE_WHITESPACE
    epoch 2/10 | loss 6.7500 (softmax 6.5600) | validation NDCG@10 0.0341 | gate_weight_0 0.62,
    gate_weight_1 0.38 | 12.3 s
  """
  parts = [f"epoch {epoch + 1}/{epochs}"]
  terms = ", ".join(f"{name[len('loss_'):]} {float(value):.4f}" for name, value in logs.items()
                    if name.startswith("loss_"))
  if "loss" in logs:
    parts.append(f"loss {float(logs['loss']):.4f}" + (f" ({terms})" if terms else ""))
  elif terms:
    parts.append(f"losses {terms}")
  if logs.get("regularization_loss"):
    parts.append(f"regularization {float(logs['regularization_loss']):.4f}")
  shown = [name for name in dict.fromkeys(("ndcg@10", monitor)) if f"val_{name}" in logs]
  if shown:
    parts.append("validation " + ", ".join(
        f"{_FAMILIES.get(name.split('@')[0], name.split('@')[0])}@{name.split('@')[1]} "
        f"{float(logs[f'val_{name}']):.4f}" for name in shown))
  # The gate's weights under their log (and history.json) names.
  gates = sorted((int(match.group(1)), name) for name in logs
                 for match in [re.fullmatch(r"gate_weight_(\d+)", name)] if match)
  if gates:
    parts.append(", ".join(f"{name} {float(logs[name]):.2f}" for _, name in gates))
  parts.append(f"{seconds:.1f} s")
  return " | ".join(parts)


class EpochSummary(tf.keras.callbacks.Callback):
  """Prints `format_epoch_summary`'s line at the end of every epoch.

  Placed after `RankingValidation` in the callback list, so that the line has the epoch's
  validation metrics.

  Args:
    epochs: the fit's `epochs`.
    monitor: early stopping's metric.
    print_fn: where the line goes (default: `print` to stdout, flushed).

  Example (a tiny Keras model; an `Experiment` fit adds validation and the task's loss terms):
    >>> model = tf.keras.Sequential([tf.keras.layers.Dense(1, kernel_initializer="zeros")])
    >>> model.compile(tf.keras.optimizers.SGD(0.1), "mse")
    >>> dataset = tf.data.Dataset.from_tensors((tf.ones([4, 2]), tf.ones([4, 1])))
    >>> _ = model.fit(dataset, epochs=2, verbose=0, callbacks=[EpochSummary(2)])
    epoch 1/2 | loss 1.0000 | ... s
    epoch 2/2 | loss 0.1600 | ... s
  """

  def __init__(self, epochs: int, monitor: str = "ndcg@10",
               print_fn: Optional[Callable[[str], None]] = None):
    super().__init__()
    self.epochs = epochs
    self.monitor = monitor
    self.print_fn = print_fn or (lambda line: print(line, flush=True))
    self._start = time.monotonic()

  def on_epoch_begin(self, epoch, logs=None):
    self._start = time.monotonic()

  def on_epoch_end(self, epoch, logs=None):
    self.print_fn(format_epoch_summary(epoch, self.epochs, logs or {},
                                       time.monotonic() - self._start, self.monitor))


class StepSummaries(tf.keras.callbacks.Callback):
  """Writes the learning rate and the losses to TensorBoard every `every_steps` steps.

  Scalars `step_learning_rate` (the rate of the step's update, under a schedule too) and
  `step_<name>` for every log with "loss" in its name, at the optimizer step, into `log_dir`
  beside the Keras TensorBoard callback's `epoch_*` scalars. `loss`, `regularization_loss` and
  `total_loss` are the step's own; the task's `loss_<term>`s are Keras metrics, the mean over
  the epoch's steps so far. Steps are counted from the optimizer's `iterations` at the start of
  fit (a resumed run goes on from its backup's step: place this after `BackupAndRestore`).
  Keras allows no batch-level callbacks under a parameter-server strategy.

  Args:
    log_dir: the TensorBoard directory; `Experiment` writes into that of Keras' TensorBoard
      callback's train writer (model_dir/logs/train/train).
    every_steps: steps between two writes, >= 1.

  Example (a tiny Keras model, 4 steps per epoch, a write every 2 steps):
    >>> model = tf.keras.Sequential([tf.keras.layers.Dense(1, kernel_initializer="zeros")])
    >>> model.compile(tf.keras.optimizers.SGD(0.1), "mse")
    >>> dataset = tf.data.Dataset.from_tensors((tf.ones([4, 2]), tf.ones([4, 1]))).repeat(4)
    >>> _ = model.fit(dataset, epochs=2, verbose=0,
    ...               callbacks=[StepSummaries("runs/x/logs/train", 2)])
    >>> events = [tf.compat.v1.Event.FromString(record.numpy()) for record in
    ...           tf.data.TFRecordDataset(tf.io.gfile.glob("runs/x/logs/train/events.*"))]
    >>> sorted({(event.step, value.tag) for event in events for value in event.summary.value})
    [(2, 'step_learning_rate'), (2, 'step_loss'), (4, 'step_learning_rate'), (4, 'step_loss'),
     (6, 'step_learning_rate'), (6, 'step_loss'), (8, 'step_learning_rate'), (8, 'step_loss')]
  """

  def __init__(self, log_dir: str, every_steps: int):
    super().__init__()
    if every_steps < 1:
      raise ValueError(f"every_steps must be >= 1, got {every_steps}.")
    self.log_dir = log_dir
    self.every_steps = every_steps
    # The logs stay tensors: only the steps that are written wait for their values.
    self._supports_tf_logs = True
    self._writer = None
    self._step = 0

  def on_train_begin(self, logs=None):
    self._writer = tf.summary.create_file_writer(self.log_dir)
    self._step = int(self.model.optimizer.iterations.numpy())

  def on_train_batch_end(self, batch, logs=None):
    self._step += 1
    if self._step % self.every_steps:
      return
    values = {"learning_rate": self.model.optimizer.learning_rate}
    values.update((name, value) for name, value in (logs or {}).items() if "loss" in name)
    with self._writer.as_default(step=self._step):
      for name, value in values.items():
        tf.summary.scalar(f"step_{name}", float(tf.keras.backend.get_value(value)))

  def on_train_end(self, logs=None):
    if self._writer is not None:
      self._writer.close()
      self._writer = None


def learning_rate(training: config_lib.TrainConfig, steps_per_epoch: int
                  ) -> Union[float, tf.keras.optimizers.schedules.LearningRateSchedule]:
  """Adam's learning rate: `training.learning_rate`, or its schedule over the optimizer's steps.

  A schedule is a function of `optimizer.iterations`, which backups restore, so a resumed run
  continues the schedule where the interrupted one stopped.

  Example:
    >>> training = config_lib.TrainConfig(epochs=10, learning_rate_schedule="cosine",
    ...                                   warmup_epochs=1)
    >>> schedule = learning_rate(training, steps_per_epoch=100)
    >>> round(float(schedule(100)), 6), float(schedule(1000))  # peak after warm-up, 0 at the end
    (0.001, 0.0)
  """
  if training.learning_rate_schedule == "constant":
    return training.learning_rate
  warmup_steps = training.warmup_epochs * steps_per_epoch
  return tf.keras.optimizers.schedules.CosineDecay(
      initial_learning_rate=0.0, decay_steps=training.epochs * steps_per_epoch - warmup_steps,
      alpha=0.0, warmup_target=training.learning_rate, warmup_steps=warmup_steps)


class Experiment:
  """Runs the steps of one experiment from an `ExperimentConfig`.

  Args:
    config: the resolved experiment config.
    model_dir: where checkpoints, metrics and TensorBoard logs go.

  Example (the popularity baseline on a tiny synthetic log, in the relative runs/popularity):
    >>> from tfrs_smoe.data import synthetic
    >>> log = synthetic.generate_watch_log(
    ...     synthetic.SyntheticConfig(num_users=20, num_titles=30))[0]
    >>> config = config_lib.apply_overrides(config_lib.ExperimentConfig(), {
    ...     "model": {"name": "popularity"}, "eval": {"ks": [10]}})
    >>> experiment = Experiment(config, "runs/popularity")
    >>> split = experiment.prepare_data(log)  # Without a log: the configured data set.
    >>> print(describe_split(split))
    20 users, 65 items, 522 training interactions (327 positives), 20 validation and 20 test
    targets
    >>> model = experiment.fit(split)  # Counted, then checkpointed in runs/popularity.
    >>> print(format_table(experiment.evaluate(model, split, "validation")))
    protocol          ndcg@10  recall@10     mrr@10  next_ndcg@10  next_recall@10  examples
    ---------------------------------------------------------------------------------------
    full_ranking       0.1995     0.4735     0.1212                                      20
    next_k                                                 0.2637          0.4355        20
    phns_test          0.3930     0.7967     0.2737                                      20
  """

  def __init__(self, config: config_lib.ExperimentConfig, model_dir: str,
               strategy: Optional[tf.distribute.Strategy] = None):
    self.config = config
    self.model_dir = model_dir
    self.strategy = strategy if strategy is not None else tf.distribute.get_strategy()

  def prepare_data(self, log: Optional[schema.WatchLog] = None
                   ) -> Union[splits_lib.Split, prepared_split.PreparedSplit]:
    """Loads the configured log (unless given) and splits it; a data_dir prepared by
    tfrs-smoe-prepare is read as a `PreparedSplit` (its training examples streamed)."""
    data = self.config.data
    if log is None and prepared_split.check_directory(data.data_dir):
      return prepared_split.PreparedSplit(data.data_dir, data)
    log = log if log is not None else load_watch_log(data)
    if data.split == "leave_one_out":
      return splits_lib.leave_one_out(log, implicit=data.implicit,
                                      min_positives=data.min_positives,
                                      abandonment_threshold=data.abandonment_threshold)
    if data.split == "time":
      return splits_lib.time_split(log, implicit=data.implicit,
                                   validation_fraction=data.validation_fraction,
                                   test_fraction=data.test_fraction,
                                   abandonment_threshold=data.abandonment_threshold)
    raise ValueError(f"Unknown split {data.split!r}; use leave_one_out or time.")

  def build_model(self, split: splits_lib.Split) -> tf.keras.Model:
    """The configured model, untrained (built, so that a checkpoint restores into it)."""
    return registry.get(self.config.model.name).build(self.config, split)

  def fit(self, split: splits_lib.Split, progress: bool = False,
          callbacks: Sequence[tf.keras.callbacks.Callback] = ()) -> tf.keras.Model:
    """Builds the model, fits it on the training split and writes its checkpoint.

    Sequential models train on whole sequences (`SequencePipeline.sequences`), two_tower on
    (history window, next positive) pairs; both are validated by full ranking on
    split.validation every `train.validate_every` epochs and stop early on `train.monitor`,
    keeping the best weights. `callbacks` are added to Keras' fit after the experiment's own
    (validation, early stopping, backup, TensorBoard with `StepSummaries` every
    `train.log_every_steps` steps, and with `progress` an `EpochSummary` line per epoch, plus
    Keras' progress bar when stdout is a terminal).

    The chief writes the run's vocabularies before training (or, resuming a backup or
    retraining in a directory that has them, checks that `split` is that run's data) and
    params.yaml atomically after the final checkpoint (see `run_directory.RunDirectory`).

    Raises:
      run_directory.DataMismatchError: model_dir holds a run on another data set.
    """
    tf.keras.utils.set_random_seed(self.config.seed)
    # Only the chief writes the run's artifacts; other workers write theirs (which every
    # worker must, for the collective ops of saving) into a directory removed afterwards.
    output_dir = self.model_dir
    run = run_directory.RunDirectory(self.model_dir)
    if not distribute.is_chief():
      output_dir = tempfile.mkdtemp(prefix="worker_", dir=self.model_dir)
    elif run.has_data() and run.state() != "empty":
      run.check_data(split, self.config)
    else:
      run.write_data(split, self.config)
    with self.strategy.scope():
      model = self.build_model(split)
      if registry.get(self.config.model.name).training == "counted":
        counts = split.positive_counts()
        model.fit_counts(np.arange(len(counts)), weights=counts)
      else:
        self._fit_validated(model, self.training_stream(split), split, progress, output_dir,
                            list(callbacks))
    tf.train.Checkpoint(model=model).write(self._checkpoint_path(output_dir))
    history = getattr(model, "history", None)
    if history is not None and history.history:
      with open(os.path.join(output_dir, "history.json"), "w", encoding="utf-8") as f:
        json.dump({name: [float(v) for v in values] for name, values in history.history.items()},
                  f, indent=2)
    if output_dir != self.model_dir:
      shutil.rmtree(output_dir, ignore_errors=True)
    else:
      run.write_params(self.config)
      run.end_backup()
    return model

  def training_stream(self, split, steps_per_epoch: Optional[int] = None,
                      input_context: Optional[tf.distribute.InputContext] = None
                      ) -> epoch_stream.EpochStream:
    """The training batches of the configured (trainable) model, epoch after epoch.

    Args:
      split: a `splits.Split`, or a `PreparedSplit` whose training users are streamed from
        its shards (`shard_stream`): the same examples in the same order, so the same batches.
      steps_per_epoch: batches per epoch when known; None counts them (one pass).
      input_context: a parameter-server worker's input context: a `PreparedSplit` stream then
        reads only that worker's shard files.
    """
    spec = registry.get(self.config.model.name)
    streams = {"sequences": self._sequence_stream, "windows": self._two_tower_stream}
    if spec.training not in streams:
      raise ValueError(f"{spec.name} is {spec.training}, not trained on batches.")
    return streams[spec.training](split, steps_per_epoch, input_context)

  @staticmethod
  def _training_users(split, input_context: Optional[tf.distribute.InputContext] = None,
                      user_features: Optional[shard_stream.UserFeaturesFn] = None
                      ) -> tf.data.Dataset:
    """The training users' positive sequences (`SequencePipeline.user_sequences`' elements):
    from the log in memory, or streamed from a `PreparedSplit`'s train shards."""
    if isinstance(split, prepared_split.PreparedSplit):
      return split.train_stream(user_features).users(input_context)
    if user_features is not None:
      raise ValueError("user_features: only a PreparedSplit's stream carries them.")
    return sequences.SequencePipeline().user_sequences(split.train)

  def _per_worker_datasets(self, split: splits_lib.Split,
                           steps_per_epoch: int) -> tf.keras.utils.experimental.DatasetCreator:
    """Parameter-server input: each worker builds the stream and keeps every n-th batch.

    Workers take steps asynchronously, so the stream repeats without end and an epoch is
    `steps_per_epoch` steps of any workers; the dataset is built on each worker (a dataset
    made on the coordinator cannot be sent to it).
    """
    if (registry.get(self.config.model.name).training == "windows" and
        self.config.model.two_tower.time_ordered):
      raise ValueError("time_ordered training needs one synchronous stream: use strategy "
                       "default, mirrored or multi_worker, not parameter_server.")
    epochs = self.config.train.epochs

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
      if isinstance(split, prepared_split.PreparedSplit):
        # Each worker streams its own shard files (FILE sharding), without end.
        stream = self.training_stream(split, steps_per_epoch, input_context=context)
        return stream.dataset(epochs).repeat()
      stream = self.training_stream(split, steps_per_epoch)
      return stream.dataset(epochs).shard(context.num_input_pipelines,
                                          context.input_pipeline_id).repeat()

    return tf.keras.utils.experimental.DatasetCreator(dataset_fn)

  def _sequence_stream(self, split, steps_per_epoch: Optional[int] = None,
                       input_context: Optional[tf.distribute.InputContext] = None
                       ) -> epoch_stream.EpochStream:
    """Shuffled batches of whole sequences, each cut to its longest sequence (see
    `SequencePipeline.without_leading_padding`), with PHNS negatives when configured.

    From a `PreparedSplit` the sequences are streamed from the shards (not cached: every epoch
    reads them again) and each example carries its user's PHNS pools, which the sampler takes
    out of the batch (`HardNegativeSampler.from_pools`): the negatives of the in-memory path.
    """
    data, training = self.config.data, self.config.train
    pipeline = sequences.SequencePipeline(data.max_len, data.next_k, data.soft_labels)
    prepared = isinstance(split, prepared_split.PreparedSplit)
    sampler = user_features = None
    if training.phns.enabled and prepared:
      sampler = hard_negatives.HardNegativeSampler.from_pools(split.pools(training.phns),
                                                              training.phns)
      user_features = sampler.user_pools
    elif training.phns.enabled:
      sampler = hard_negatives.HardNegativeSampler.from_log(
          split.train, split.item_vocabulary.size, training.phns)
    carried = ("phns_seen", "phns_hard") if user_features is not None else ()

    def cut(batch):
      kept = {name: batch.pop(name) for name in carried}
      return {**sequences.SequencePipeline.without_leading_padding(batch), **kept}

    def transform(batches: tf.data.Dataset) -> tf.data.Dataset:
      batches = batches.map(cut, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
      return batches if sampler is None else sampler.add_negatives(batches)

    examples = pipeline.sequences_of_users(
        self._training_users(split, input_context, user_features), data.all_chunks)
    return epoch_stream.EpochStream(examples if prepared else examples.cache(),
                                    training.batch_size, self.config.seed, transform,
                                    steps_per_epoch=steps_per_epoch)

  def _two_tower_stream(self, split, steps_per_epoch: Optional[int] = None,
                        input_context: Optional[tf.distribute.InputContext] = None
                        ) -> epoch_stream.EpochStream:
    """Batches of (history window, next positive) pairs: shuffled, or in time order.

    Time order materialises the windows to sort them by their target's timestamp, which a
    `PreparedSplit` (streamed) does not allow.
    """
    data, training = self.config.data, self.config.train
    config = self.config.model.two_tower
    prepared = isinstance(split, prepared_split.PreparedSplit)
    if prepared and config.time_ordered:
      raise ValueError("model.two_tower.time_ordered sorts every training window in memory; "
                       "it cannot train from prepared shards (data.data_dir): set it false.")
    pipeline = sequences.SequencePipeline(data.max_len, next_k=1, soft_labels=(1.0,))
    windows = pipeline.windows_of_users(self._training_users(split, input_context))
    if config.min_engagement > 0:
      windows = windows.filter(
          lambda example: example["target_engagement"][0] >= config.min_engagement)
    # The softmax gathers every replica's candidates, which needs equal per-replica batches.
    drop_remainder = self.strategy.num_replicas_in_sync > 1
    if not config.time_ordered:
      return epoch_stream.EpochStream(windows if prepared else windows.cache(),
                                      training.batch_size, self.config.seed,
                                      drop_remainder=drop_remainder,
                                      steps_per_epoch=steps_per_epoch)
    columns = {name: [] for name in windows.element_spec}
    for chunk in windows.batch(65_536):
      for name, values in chunk.items():
        columns[name].append(values.numpy())
    columns = {name: np.concatenate(values) for name, values in columns.items()}
    order = np.argsort(columns["timestamp"], kind="stable")
    return epoch_stream.EpochStream(
        tf.data.Dataset.from_tensor_slices({name: values[order]
                                            for name, values in columns.items()}),
        training.batch_size, seed=None, drop_remainder=drop_remainder)

  def _fit_validated(self, model: tf.keras.Model, stream: epoch_stream.EpochStream,
                     split: splits_lib.Split, progress: bool, output_dir: str,
                     extra_callbacks: List[tf.keras.callbacks.Callback]) -> None:
    """Adam on `stream`, validation by full ranking, early stopping, TensorBoard logs, backups.

    TensorBoard gets Keras' epoch metrics and `StepSummaries` (the learning rate and losses
    every `train.log_every_steps` steps; not under a parameter-server strategy, where Keras
    allows no batch-level callbacks). With `progress`, `EpochSummary` prints a line per epoch,
    and Keras' progress bar shows on a terminal only.

    `BackupAndRestore` backs the model and optimizer up into model_dir/backup every epoch (or
    every `train.backup_every_steps` steps) and deletes the backup when fit ends. A run started
    while a backup exists (its process was killed) restores it and goes on from the step after
    it, on the batches an uninterrupted run would see (`EpochStream`). Early stopping's best
    value, patience counter, best epoch and best weights are backed up beside it
    (`ResumableEarlyStopping`, written by the chief at each epoch end before the epoch's model
    backup), so a run killed after its best epoch still ends with that epoch's weights. What is
    not backed up starts afresh on resumption: dropout's and the gate noise's random streams
    (so a resumed run matches an uninterrupted one exactly only without dropout and gate
    noise), RankingValidation's last values (with validate_every > 1 a resumed run validates
    its first epoch) and history.json (the resumed epochs only). Under a parameter-server
    strategy Keras backs up at epoch ends only, and steps are asynchronous.
    """
    data, training = self.config.data, self.config.train
    model.compile(optimizer=tf.keras.optimizers.Adam(
        learning_rate(training, stream.steps_per_epoch)))
    backup_dir = os.path.join(self.model_dir, "backup")
    parameter_server = isinstance(self.strategy, tf.distribute.ParameterServerStrategy)
    if parameter_server:
      dataset = self._per_worker_datasets(split, stream.steps_per_epoch)
    else:
      dataset = stream.dataset(training.epochs,
                               start_step=self._backed_up_step(model, backup_dir))
      if isinstance(split, prepared_split.PreparedSplit) and isinstance(
          self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
        # Each worker reads its own shard files, without end: their numbers of examples differ.
        dataset = shard_stream.ShardStream.file_sharded(dataset.repeat())
      elif self.strategy.num_replicas_in_sync > 1:
        dataset = distribute.data_sharded(dataset)
    evaluator = full_ranking.FullRankingEvaluator(
        num_items=split.item_vocabulary.size, ks=self.config.eval.ks,
        batch_size=self.config.eval.batch_size, max_len=data.max_len)
    # Validation, then early stopping (its state written by the chief only), then the backup:
    # an epoch's backup follows its validation and early-stopping state, and at the end of fit
    # the backup (with that state) is deleted after the best weights are restored.
    callbacks = [ranking_callback.RankingValidation(evaluator, split.validation,
                                                    every=training.validate_every)]
    if training.early_stopping_patience:
      callbacks.append(resumable_early_stopping.ResumableEarlyStopping(
          backup_dir, monitor=f"val_{training.monitor}", mode="max", restore_best_weights=True,
          patience=training.early_stopping_patience * training.validate_every,
          start_from_epoch=training.early_stopping_start_epoch))
    callbacks.append(tf.keras.callbacks.BackupAndRestore(backup_dir, save_freq=(
        "epoch" if parameter_server else training.backup_every_steps or "epoch")))
    log_dir = os.path.join(output_dir, "logs", "train")
    callbacks.append(tf.keras.callbacks.TensorBoard(log_dir, write_graph=False))
    if training.log_every_steps and not parameter_server:
      # Into the directory of Keras' own train writer: one TensorBoard run with the epoch_*.
      callbacks.append(StepSummaries(os.path.join(log_dir, "train"), training.log_every_steps))
    # Keras' progress bar only on a terminal (placed here, it ends its line before the
    # epoch's summary); a log file gets EpochSummary's lines alone.
    progress_bar = progress and sys.stdout.isatty()
    if progress_bar:
      callbacks.append(tf.keras.callbacks.ProgbarLogger(count_mode="steps"))
    if progress:
      callbacks.append(EpochSummary(training.epochs, training.monitor))
    model.fit(dataset, epochs=training.epochs, steps_per_epoch=stream.steps_per_epoch,
              callbacks=callbacks + extra_callbacks, verbose=1 if progress_bar else 0)

  @staticmethod
  def _backed_up_step(model: tf.keras.Model, backup_dir: str) -> int:
    """Optimizer steps done by the backup in `backup_dir` (0 without one)."""
    # BackupAndRestore writes the chief's backup under "chief" and every worker restores it.
    latest = tf.train.latest_checkpoint(os.path.join(backup_dir, "chief"))
    if latest is None:
      return 0
    tf.train.Checkpoint(model=model).read(latest).expect_partial()
    return int(model.optimizer.iterations.numpy())

  def restore(self, split: splits_lib.Split) -> tf.keras.Model:
    """The model of `model_dir`'s checkpoint, after checking that `split` is the run's data.

    Raises:
      FileNotFoundError: model_dir has no checkpoint.
      run_directory.DataMismatchError: `split` is not the data set the run was trained on
        (vocabularies or item feature tables differ).
    """
    path = self._checkpoint_path()
    if not tf.io.gfile.exists(path + ".index"):
      raise FileNotFoundError(f"No checkpoint at {path!r}: run experiments/train.py with "
                              f"--model_dir={self.model_dir} first.")
    run = run_directory.RunDirectory(self.model_dir)
    if run.has_data():
      run.check_data(split, self.config)
    else:
      logging.warning("%s has no vocabularies/ (a run from before they were recorded): the "
                      "loaded data cannot be checked against the run's.", self.model_dir)
    model = self.build_model(split)
    tf.train.Checkpoint(model=model).read(path).expect_partial().assert_existing_objects_matched()
    return model

  def _checkpoint_path(self, directory: Optional[str] = None) -> str:
    return os.path.join(directory or self.model_dir, "checkpoints", "model")

  def evaluate(self, model: tf.keras.Model, split: splits_lib.Split, subset: str,
               progress: bool = False) -> Results:
    """Full-ranking (and PHNS-test) metrics of `model` on split.validation or split.test.

    Returns:
      Protocol -> metric -> mean over the subset's users, with every user's own values in
      `Results.per_user` (which `write_results` writes next to the metrics).
    """
    if subset not in ("validation", "test"):
      raise ValueError(f"subset must be validation or test, got {subset!r}.")
    # A model trained under a strategy is scored in that strategy's (cross-replica) scope.
    with self.strategy.scope():
      return self._evaluate(model, split, subset, progress)

  def _evaluate(self, model: tf.keras.Model, split: splits_lib.Split, subset: str,
                progress: bool) -> Results:
    examples = getattr(split, subset)
    evaluation = self.config.eval
    max_len = self.config.data.max_len
    user_id = split.user_vocabulary.to_ids(examples.user_index)
    results = Results()
    results["full_ranking"], per_example = full_ranking.FullRankingEvaluator(
        num_items=split.item_vocabulary.size, ks=evaluation.ks,
        batch_size=evaluation.batch_size, max_len=max_len).evaluate_per_example(
            model, examples, progress=progress)
    results.per_user["full_ranking"] = per_user_lib.PerUserMetrics(user_id, per_example)
    if (evaluation.next_k_metrics and subset == "validation"
        and self.config.data.split == "leave_one_out"):
      future_examples, future = next_k.NextKEvaluator.leave_one_out_future(split)
      results["next_k"], per_example = next_k.NextKEvaluator(
          num_items=split.item_vocabulary.size, ks=evaluation.ks,
          batch_size=evaluation.batch_size, max_len=max_len).evaluate_per_example(
              model, future_examples, future, progress=progress)
      results.per_user["next_k"] = per_user_lib.PerUserMetrics(
          split.user_vocabulary.to_ids(future_examples.user_index), per_example)
    if evaluation.phns_test:
      pools = (split.pools(evaluation.phns) if isinstance(split, prepared_split.PreparedSplit)
               else phns_protocol.PopularityPools.from_log(
                   split.train.item, split.train.timestamp, split.item_vocabulary.size,
                   evaluation.phns))
      results["phns_test"], per_example = phns_protocol.PHNSTestEvaluator(
          evaluation.phns, ks=evaluation.ks, batch_size=evaluation.batch_size,
          max_len=max_len).evaluate_per_example(model.score_candidates, examples, pools,
                                                progress=progress)
      results.per_user["phns_test"] = per_user_lib.PerUserMetrics(user_id, per_example)
    return results

  def write_results(self, results: Results, subset: str) -> str:
    """Writes metrics_<subset>.json, the per-user results and TensorBoard scalars.

    Every protocol's per-user values (`Results.per_user`) go to
    `per_user_<subset>.csv` (full ranking) and `per_user_<subset>_<protocol>.csv` (others, e.g.
    phns_test): user_id, then one column per metric, one row per evaluated user; their means
    are the JSON's metrics. Per-user files of protocols these results lack are removed, so the
    directory never pairs new metrics with old rows. Every file is written atomically.

    Returns:
      The JSON path.
    """
    os.makedirs(self.model_dir, exist_ok=True)
    per_user = getattr(results, "per_user", {})
    for protocol in {*results, "full_ranking", "phns_test", "next_k"}:
      per_user_path = os.path.join(self.model_dir,
                                   per_user_lib.PerUserMetrics.file_name(subset, protocol))
      if protocol in per_user:
        per_user[protocol].write_csv(per_user_path)
      elif os.path.exists(per_user_path):
        os.remove(per_user_path)
    path = os.path.join(self.model_dir, f"metrics_{subset}.json")
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as f:
      json.dump(results, f, indent=2, sort_keys=True)
    os.replace(temporary, path)
    writer = tf.summary.create_file_writer(os.path.join(self.model_dir, "logs", subset))
    with writer.as_default():
      for protocol, metrics in results.items():
        for name, value in metrics.items():
          tf.summary.scalar(f"{protocol}/{name}", value, step=0)
    writer.close()
    return path


def format_table(results: Results) -> str:
  """A fixed-width table: one row per protocol, one column per metric."""
  # Recall@1 and MRR@1 equal NDCG@1 for one target, so they are left out of the table; the
  # next-K protocol's metrics ("next_ndcg@k", "next_recall@k") come last.
  families = ("ndcg", "recall", "mrr", "next_ndcg", "next_recall")
  names = sorted({name for metrics in results.values() for name in metrics
                  if "@" in name and (name.startswith("ndcg") or not name.endswith("@1"))},
                 key=lambda n: (families.index(n.split("@")[0]), int(n.split("@")[1])))
  widths = [max(11, len(n) + 2) for n in names]
  header = (f"{'protocol':<14}" + "".join(f"{n:>{w}}" for n, w in zip(names, widths))
            + f"{'examples':>10}")
  lines = [header, "-" * len(header)]
  for protocol, metrics in results.items():
    cells = "".join(f"{metrics[n]:>{w}.4f}" if n in metrics else f"{'':>{w}}"
                    for n, w in zip(names, widths))
    lines.append(f"{protocol:<14}{cells}{int(metrics['num_examples']):>10d}")
  return "\n".join(lines)


def describe_split(split) -> str:
  """One line with the sizes of a split (a `splits.Split` or a `PreparedSplit`)."""
  if isinstance(split, prepared_split.PreparedSplit):
    training = split.num_training()
    evaluated = {name: split.statistics["splits"][name]["users"] for name in ("validation",
                                                                              "test")}
  else:
    training = {"events": len(split.train), "positives": int(np.sum(split.train.positive))}
    evaluated = {"validation": len(split.validation), "test": len(split.test)}
  return (f"{split.user_vocabulary.size - 2} users, {split.item_vocabulary.size - 2} items, "
          f"{training['events']} training interactions ({training['positives']} positives), "
          f"{evaluated['validation']} validation and {evaluated['test']} test targets")
