"""A prepared output read back: vocabularies, statistics, pools, and each split in memory.

`PreparedShards` gives the splits as the in-memory path's types (`splits.IndexedLog` for
training, `examples.EvalExamples` for validation and test), so that tests and small runs can
compare the two paths and use one code for both. It reads every shard of a split at once:
streaming them into training is milestone 2 of issue 25.
"""

import os
from typing import Any, Dict

import numpy as np
import tensorflow as tf

from tfrs_smoe.data import examples
from tfrs_smoe.data import splits
from tfrs_smoe.data import vocabulary
from tfrs_smoe.data.preparation import finish
from tfrs_smoe.data.preparation import sequence_records
from tfrs_smoe.data.preparation import shard_files
from tfrs_smoe.evaluation import phns_protocol

_BATCH = 4096


class PreparedShards:
  """The outputs of one `PreparationPipeline` run.

  Args:
    output_dir: the run's output_dir; it must hold statistics.json (a complete run).

  Raises:
    FileNotFoundError: statistics.json is missing (nothing prepared there, or a failed run).

  Example:
    >>> from tfrs_smoe import config
    >>> from tfrs_smoe.data import synthetic
    >>> from tfrs_smoe.data.preparation import config as config_lib, pipeline
    >>> _ = pipeline.PreparationPipeline(config_lib.PreparationConfig(
    ...     config.DataConfig(), "prepared", num_shards=2,
    ...     synthetic=synthetic.SyntheticConfig(num_users=20, num_titles=30))).run()
    >>> prepared = PreparedShards("prepared")
    >>> prepared.item_vocabulary().size, len(prepared.files("train"))
    (67, 2)
    >>> test = prepared.examples("test")
    >>> len(test), test.history.row(0)[-3:]  # 20 users; the first one's last positives.
    (20, array([26, 27, 28], dtype=int32))
  """

  def __init__(self, output_dir: str):
    self.output_dir = os.fspath(output_dir)
    path = os.path.join(self.output_dir, finish.STATISTICS)
    if not tf.io.gfile.exists(path):
      raise FileNotFoundError(f"{self.output_dir}: no {finish.STATISTICS}; it holds no complete "
                              "prepared data (run tfrs-smoe-prepare).")
    self.statistics: Dict[str, Any] = finish.read_statistics(self.output_dir)

  def files(self, split: str):
    """The shard files of `split` ("train", "validation", "test"), in shard order."""
    if split not in shard_files.SPLITS:
      raise ValueError(f"Unknown split {split!r}; use one of {shard_files.SPLITS}.")
    return sorted(tf.io.gfile.glob(shard_files.shard_pattern(self.output_dir, split)))

  def item_vocabulary(self) -> vocabulary.IdVocabulary:
    return vocabulary.IdVocabulary.read(
        os.path.join(self.output_dir, "vocabularies", "item_ids.txt"))

  def user_vocabulary(self) -> vocabulary.IdVocabulary:
    return vocabulary.IdVocabulary.read(
        os.path.join(self.output_dir, "vocabularies", "user_ids.txt"))

  def pools(self) -> phns_protocol.PopularityPools:
    """The trending and tailing pools of the training split."""
    with np.load(os.path.join(self.output_dir, finish.POPULARITY)) as arrays:
      return phns_protocol.PopularityPools(trending=arrays["trending"],
                                           tailing=arrays["tailing"],
                                           num_items=len(arrays["counts"]))

  def popularity(self) -> Dict[str, np.ndarray]:
    """popularity.npz: counts, positive_counts, recent_counts [num_items], the pools, ..."""
    with np.load(os.path.join(self.output_dir, finish.POPULARITY)) as arrays:
      return {name: arrays[name] for name in arrays.files}

  def _read(self, split: str) -> Dict[str, Any]:
    """Every record of `split`, in user order: scalars [n], event fields (values, row_splits)."""
    evaluation = split != "train"
    spec = sequence_records.feature_spec(evaluation)
    dataset = tf.data.TFRecordDataset(self.files(split)).batch(_BATCH).map(
        lambda records: tf.io.parse_example(records, spec))
    parts = {name: [] for name in spec}
    for batch in dataset:
      for name, value in batch.items():
        parts[name].append(value)
    columns = {}
    for name, values in parts.items():
      if isinstance(spec[name], tf.io.RaggedFeature):
        ragged = (tf.concat(values, axis=0) if values else
                  tf.RaggedTensor.from_row_lengths(tf.zeros([0], spec[name].dtype),
                                                   tf.zeros([0], tf.int64)))
        columns[name] = ragged
      else:
        columns[name] = (np.concatenate([v.numpy() for v in values]) if values else
                         np.zeros([0], spec[name].dtype.as_numpy_dtype))
    order = np.argsort(columns["user_index"], kind="stable")
    for name, value in columns.items():
      columns[name] = tf.gather(value, order) if isinstance(value, tf.RaggedTensor) else (
          value[order])
    return columns

  def train(self) -> splits.IndexedLog:
    """The training split as the in-memory path's `IndexedLog` (users, then time)."""
    columns = self._read("train")
    lengths = columns["item"].row_lengths().numpy()
    return splits.IndexedLog(
        user=np.repeat(columns["user_index"], lengths).astype(np.int32),
        item=columns["item"].flat_values.numpy().astype(np.int32),
        timestamp=columns["timestamp"].flat_values.numpy().astype(np.int64),
        engagement=columns["engagement"].flat_values.numpy().astype(np.float32),
        positive=columns["positive"].flat_values.numpy().astype(bool))

  def examples(self, split: str) -> examples.EvalExamples:
    """The validation or test split as the in-memory path's `EvalExamples`, in user order."""
    if split == "train":
      raise ValueError("examples() reads validation or test; train() reads the training split.")
    columns = self._read(split)
    positive = tf.cast(columns["positive"], tf.bool)

    def ragged(name, mask, dtype):
      values = tf.ragged.boolean_mask(columns[name], mask)
      return examples.RaggedArray(values.flat_values.numpy().astype(dtype),
                                  values.row_splits.numpy())

    return examples.EvalExamples(
        user_index=columns["user_index"].astype(np.int32),
        target=columns["target"].astype(np.int32),
        target_engagement=columns["target_engagement"].astype(np.float32),
        target_timestamp=columns["target_timestamp"].astype(np.int64),
        history=ragged("item", positive, np.int32),
        history_timestamps=ragged("timestamp", positive, np.int64),
        abandoned=ragged("item", ~positive, np.int32),
        seen=ragged("item", tf.ones_like(positive), np.int32))
