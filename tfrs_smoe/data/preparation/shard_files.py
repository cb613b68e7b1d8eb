"""The shard files of the prepared output, their names and their writing.

Layout of `output_dir`:

  train-00000-of-00008.tfrecord ...       one record per user (empty without training events)
  validation-00000-of-00008.tfrecord ...  one record per user with a validation target
  test-00000-of-00008.tfrecord ...        one record per user with a test target
  vocabularies/item_ids.txt, user_ids.txt the ids, one a line in index order (line n = n + 2)
  items.parquet                           the catalogue of the item vocabulary, in index order
  users.parquet                           the user features, in index order (where there are)
  popularity.npz                          training counts and the trending / tailing pools
  statistics.json                         counts; written last, so it marks a complete output

User u (its vocabulary index) is in shard (u - 2) % num_shards of every split, and a shard's
records are in user order. Every user has a train record (with no events when it has no training
events), so that reading the train files round-robin, one record from each in shard order, gives
the users in index order (`shard_stream.ShardStream`). Each shard file is written under a
temporary name and renamed when complete, so a retried worker never leaves half a file. Paths go
through tf.io.gfile: local folders, or gs://... on Dataflow.
"""

import os
from typing import Dict

import numpy as np
import tensorflow as tf

from tfrs_smoe.data import vocabulary
from tfrs_smoe.data.preparation import event_batch
from tfrs_smoe.data.preparation import sequence_records
from tfrs_smoe.data.preparation import user_blocks

SPLITS = ("train", "validation", "test")
_EVENT_FIELDS = ("item", "timestamp", "engagement", "positive")


def shard_path(output_dir: str, split: str, shard: int, num_shards: int) -> str:
  """The file of `shard` of `split`.

  Example:
    >>> shard_path("out", "train", 3, 8)
    'out/train-00003-of-00008.tfrecord'
  """
  return os.path.join(output_dir, f"{split}-{shard:05d}-of-{num_shards:05d}.tfrecord")


def shard_pattern(output_dir: str, split: str) -> str:
  """The glob of every shard of `split`."""
  return os.path.join(output_dir, f"{split}-?????-of-?????.tfrecord")


def write_shard(output_dir: str, shard: int, num_shards: int, block: event_batch.EventBatch,
                cut: user_blocks.UserSplits, user_ids: np.ndarray) -> Dict[str, Dict[str, int]]:
  """Writes the three files of one shard.

  Args:
    output_dir: the output folder.
    shard: the shard's number.
    num_shards: the number of shards.
    block: the shard's indexed block, sorted by (user, timestamp, item), with "positive".
    cut: `user_blocks.split_block(block, ...)`.
    user_ids: [u] str, the user vocabulary's ids (index i is user_ids[i - 2]).

  Returns:
    split -> {"users", "events", "positives"}: the users with records (train: with training
    events), and the events and positives they hold (training events, or evaluation contexts).
  """
  counts = {split: {"users": 0, "events": 0, "positives": 0} for split in SPLITS}
  paths = {split: shard_path(output_dir, split, shard, num_shards) for split in SPLITS}
  temporary = {split: f"{path}.tmp-{os.getpid()}" for split, path in paths.items()}
  writers = {split: tf.io.TFRecordWriter(path) for split, path in temporary.items()}
  columns = block.columns

  def add(split, user_id, user, start, length, target_row=None, counted=True):
    events = {name: columns[name][start:start + length] for name in _EVENT_FIELDS}
    target = None
    if target_row is not None:
      target = {name: columns[name][target_row] for name in ("item", "timestamp", "engagement")}
    writers[split].write(sequence_records.encode(user_id, user, events, target))
    if not counted:
      return
    counts[split]["users"] += 1
    counts[split]["events"] += int(length)
    counts[split]["positives"] += int(np.sum(events["positive"]))

  try:
    for g, user in enumerate(cut.user.tolist()):
      user_id = str(user_ids[user - vocabulary.NUM_RESERVED])
      start = int(cut.start[g])
      # Every user has a train record, an empty one without training events (not counted).
      add("train", user_id, user, start, int(cut.train_length[g]), counted=cut.train_length[g] > 0)
      for split, rows in (("validation", cut.validation_row), ("test", cut.test_row)):
        if rows[g] >= 0:
          add(split, user_id, user, start, int(rows[g]) - start, int(rows[g]))
  finally:
    for writer in writers.values():
      writer.close()
  for split in SPLITS:
    tf.io.gfile.rename(temporary[split], paths[split], overwrite=True)
  return counts


def write_empty_shard(output_dir: str, split: str, shard: int, num_shards: int) -> None:
  """An empty file for a shard that got no user, so that every split has num_shards files."""
  path = shard_path(output_dir, split, shard, num_shards)
  if not tf.io.gfile.exists(path):
    with tf.io.TFRecordWriter(path):
      pass


def write_ids(path: str, ids: np.ndarray) -> None:
  """`ids` one a line in index order, as `IdVocabulary.write` writes them (atomically)."""
  temporary = f"{path}.tmp-{os.getpid()}"
  with tf.io.gfile.GFile(temporary, "w") as f:
    f.write("".join(f"{raw_id}\n" for raw_id in ids.tolist()))
  tf.io.gfile.rename(temporary, path, overwrite=True)
