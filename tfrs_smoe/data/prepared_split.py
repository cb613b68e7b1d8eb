"""A prepared output (`tfrs-smoe-prepare`) as the split an `Experiment` trains and evaluates on.

`data.data_dir` pointing at a complete preparation (it holds statistics.json) makes the
experiment read it instead of the raw log: `--dataset=prepared --data_dir=DIR` takes the data set
and its protocol from DIR (`data_overrides`), or name them (`--dataset=streaming_logs/small
--data_dir=DIR`), which must be the preparation's (`check_protocol`: another split, threshold,
... is an error naming the key). The run records the real data set, so its vocabularies and
feature tables are checked as any run's, and a run trained in memory can be evaluated on the
prepared copy of its data and back.

What a `splits.Split` holds in memory comes from the files beside the shards: vocabularies/,
items.parquet / users.parquet (the catalogue and user features), popularity.npz (training counts
and pools) and statistics.json. The training examples are streamed from the train shards
(`train_stream`, `shard_stream.ShardStream`); validation and test are read from their shards on
first use, as `examples.EvalExamples`. `train` (the whole training log in memory) is read only
if some caller asks for it: the toolkit's training and evaluation never do.
"""

import os
from typing import Any, Dict, Optional

import numpy as np
import tensorflow as tf

from tfrs_smoe.data import examples as examples_lib
from tfrs_smoe.data import shard_stream
from tfrs_smoe.data import splits
from tfrs_smoe.data.preparation import catalog_files
from tfrs_smoe.data.preparation import finish
from tfrs_smoe.data.preparation import shard_files
from tfrs_smoe.data.preparation import shards
from tfrs_smoe.evaluation import phns_protocol

# The DataConfig keys a preparation fixes, by the statistics' protocol key.
_PROTOCOL_KEYS = ("split", "implicit", "min_positives", "abandonment_threshold")
_TIME_KEYS = ("validation_fraction", "test_fraction")
_DEFAULT_VARIANTS = {"streaming_logs": "small"}


def _exists(path: str) -> bool:
  return tf.io.gfile.exists(path)


def is_prepared(directory: str) -> bool:
  """Whether `directory` holds a complete preparation (statistics.json, written last)."""
  return bool(directory) and _exists(os.path.join(directory, finish.STATISTICS))


def check_directory(directory: str) -> bool:
  """True for a complete preparation, False for other folders (raw files); raises for an
  incomplete one (shards or vocabularies without statistics.json: a failed or running
  tfrs-smoe-prepare)."""
  if is_prepared(directory):
    return True
  if directory and (tf.io.gfile.glob(shard_files.shard_pattern(directory, "train")) or
                    _exists(os.path.join(directory, finish.POPULARITY))):
    raise ValueError(f"data.data_dir (--data_dir): {directory} holds an incomplete preparation "
                     f"(shards but no {finish.STATISTICS}): tfrs-smoe-prepare failed or is still "
                     "running; run it again (--overwrite).")
  return False


def data_overrides(directory: str) -> Dict[str, Any]:
  """The `data:` keys a preparation fixes: data set, protocol, extra features, data_dir.

  Raises:
    ValueError: `directory` is not a complete preparation.

  Example (for `--dataset=prepared`):
    >>> from tfrs_smoe import config
    >>> from tfrs_smoe.data import synthetic
    >>> from tfrs_smoe.data.preparation import config as preparation_config, pipeline
    >>> _ = pipeline.PreparationPipeline(preparation_config.PreparationConfig(
    ...     config.DataConfig(split="time"), "prepared_time", num_shards=2,
    ...     synthetic=synthetic.SyntheticConfig(num_users=20, num_titles=30))).run()
    >>> overrides = data_overrides("prepared_time")
    >>> overrides["dataset"], overrides["split"], overrides["abandonment_threshold"]
    ('streaming_logs', 'time', 0.05)
  """
  if not check_directory(directory):
    raise ValueError(f"--dataset=prepared: --data_dir {directory!r} holds no prepared data "
                     f"(no {finish.STATISTICS}); run tfrs-smoe-prepare --output_dir={directory} "
                     "first.")
  statistics = finish.read_statistics(directory)
  protocol = statistics["protocol"]
  overrides = {"dataset": statistics["dataset"], "data_dir": directory,
               **{key: protocol[key] for key in _PROTOCOL_KEYS}}
  if protocol["split"] == "time":
    overrides.update({key: protocol[key] for key in _TIME_KEYS})
  overrides.update({key: list(value) for key, value in statistics.get("features", {}).items()})
  return overrides


def _dataset(name: str) -> str:
  base, _, variant = name.partition("/")
  return f"{base}/{variant or _DEFAULT_VARIANTS.get(base, '')}".rstrip("/")


def check_protocol(directory: str, statistics: Dict[str, Any], data) -> None:
  """Raises a ValueError naming the key unless `data` (a `config.DataConfig`) asks for the data
  set and protocol the preparation in `directory` has."""
  protocol = statistics["protocol"]
  prepared_name = statistics.get("name", statistics["dataset"])
  if _dataset(data.dataset) not in (_dataset(statistics["dataset"]), _dataset(prepared_name)):
    raise ValueError(f"data.dataset: {directory} was prepared from {statistics['dataset']!r}, "
                     f"but the config asks for {data.dataset!r}; use --dataset=prepared or "
                     f"--dataset={statistics['dataset']}.")
  keys = _PROTOCOL_KEYS + (_TIME_KEYS if protocol["split"] == "time" else ())
  for key in keys:
    value, prepared = getattr(data, key), protocol[key]
    if key == "abandonment_threshold" and value is None:
      continue  # The data set's default: the preparation resolved it.
    same = (np.isclose(value, prepared) if isinstance(prepared, float) else value == prepared)
    if not same:
      raise ValueError(f"data.{key}: {directory} was prepared with {key} {prepared!r}, but the "
                       f"config has {value!r}; set data.{key}: {prepared!r} (or "
                       "--dataset=prepared), or prepare the log again with it.")


class PreparedSplit:
  """The split of a prepared output; it quacks like `splits.Split` where training reads it.

  Args:
    directory: the output_dir of tfrs-smoe-prepare (complete: it holds statistics.json).
    data: the experiment's `config.DataConfig`; its data set and protocol must be the
      preparation's.

  Attributes:
    item_vocabulary, user_vocabulary: the preparation's vocabularies.
    items: the catalogue of the item vocabulary (genres, years, extra features).
    users: the user features, or None.
    metadata: where the log came from (statistics.json's "source": data_dir, columns,
      source_files with their SHA-256, or the generator's config).
    statistics: statistics.json.

  Raises:
    ValueError: an incomplete preparation, or another data set or protocol than `data`'s.
    FileNotFoundError: no preparation there.

  Example:
    >>> from tfrs_smoe import config
    >>> from tfrs_smoe.data import synthetic
    >>> from tfrs_smoe.data.preparation import config as preparation_config, pipeline
    >>> _ = pipeline.PreparationPipeline(preparation_config.PreparationConfig(
    ...     config.DataConfig(), "prepared", num_shards=2,
    ...     synthetic=synthetic.SyntheticConfig(num_users=20, num_titles=30))).run()
    >>> split = PreparedSplit("prepared", config.DataConfig())
    >>> split.item_vocabulary.size, len(split.validation), int(split.positive_counts().sum())
    (67, 20, 327)
  """

  def __init__(self, directory: str, data):
    check_directory(directory)
    self.directory = os.fspath(directory)
    self._shards = shards.PreparedShards(self.directory)
    self.statistics = self._shards.statistics
    check_protocol(self.directory, self.statistics, data)
    self.item_vocabulary = self._shards.item_vocabulary()
    self.user_vocabulary = self._shards.user_vocabulary()
    self.items, self.users = catalog_files.read(self.directory)
    self.metadata = dict(self.statistics.get("source", {}))
    self._popularity = self._shards.popularity()
    self._loaded: Dict[str, Any] = {}

  def _examples(self, subset: str) -> examples_lib.EvalExamples:
    if subset not in self._loaded:
      self._loaded[subset] = self._shards.examples(subset)
    return self._loaded[subset]

  @property
  def validation(self) -> examples_lib.EvalExamples:
    """The validation examples, read from the validation shards on first use."""
    return self._examples("validation")

  @property
  def test(self) -> examples_lib.EvalExamples:
    """The test examples, read from the test shards on first use."""
    return self._examples("test")

  @property
  def train(self) -> splits.IndexedLog:
    """The whole training log in memory (read on first use): for tools that need it, never
    for training, which streams it (`train_stream`)."""
    if "train" not in self._loaded:
      self._loaded["train"] = self._shards.train()
    return self._loaded["train"]

  @property
  def train_loaded(self) -> bool:
    """Whether `train` has been read (what the streamed training path never does)."""
    return "train" in self._loaded

  def positive_counts(self) -> np.ndarray:
    """[num_items] int64 training positives per item index."""
    return self._popularity["positive_counts"]

  def num_training(self) -> Dict[str, int]:
    """{"events", "positives"}: the training split's sizes (statistics.json)."""
    train = self.statistics["splits"]["train"]
    return {"events": int(train["events"]), "positives": int(train["positives"])}

  def pools(self, config) -> phns_protocol.PopularityPools:
    """The trending and tailing pools of `config` (a `PHNSTestConfig` or `PHNSConfig`), from the
    training counts (as `PopularityPools.from_log` builds them from the training log).

    Raises:
      ValueError: config.trending_window_fraction is not the preparation's (its recent counts
        are of that window).
    """
    prepared = self.statistics["pools"]["trending_window_fraction"]
    if not np.isclose(config.trending_window_fraction, prepared):
      raise ValueError(f"trending_window_fraction {config.trending_window_fraction} differs from "
                       f"the preparation's ({prepared}) in {self.directory}: set it to {prepared}"
                       ", or prepare again with preparation: {trending_window_fraction: "
                       f"{config.trending_window_fraction}}}.")
    return phns_protocol.PopularityPools.from_counts(
        self._popularity["counts"], self._popularity["recent_counts"],
        phns_protocol.PHNSTestConfig(trending_pool_size=config.trending_pool_size,
                                     trending_window_fraction=config.trending_window_fraction,
                                     tail_fraction=config.tail_fraction))

  def train_stream(self, user_features: Optional[shard_stream.UserFeaturesFn] = None
                   ) -> shard_stream.ShardStream:
    """The training users streamed from the train shards (`shard_stream.ShardStream`)."""
    return shard_stream.ShardStream(self._shards.files("train"), user_features)
