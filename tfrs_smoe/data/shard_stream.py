"""The users of a prepared output's train shards as a tf.data stream, in user order.

`tfrs-smoe-prepare` writes user u (its vocabulary index) into train shard (u - 2) % n, every
user once (an empty record without training events), each shard in user order. Reading the n
files round-robin, one record from each in shard order (`interleave` with `cycle_length` n and
`block_length` 1, deterministic, the files read in parallel), therefore gives every user in
index order: the order of `SequencePipeline.user_sequences` on the in-memory training log, so
the examples built from the stream, and their seeded shuffle in `EpochStream`, are the in-memory
path's. Nothing is held but the records in flight: memory does not grow with the log.

Under a multi-worker strategy the stream is auto-sharded by FILE (`file_sharded`): each worker
reads only its files (tf.distribute gives worker w the files w, w + W, ...), so num_shards must
be at least the number of workers; under a parameter-server strategy each worker's dataset
function takes its files itself (`users(input_context)`). Each worker then reads its own users,
in user order, so the global batches differ from one process's (the examples are the same).

Example (a tiny synthetic log, prepared and streamed):
  >>> from tfrs_smoe import config
  >>> from tfrs_smoe.data import sequences, splits, synthetic
  >>> from tfrs_smoe.data.preparation import config as preparation_config, pipeline, shards
  >>> tiny = synthetic.SyntheticConfig(num_users=20, num_titles=30)
  >>> _ = pipeline.PreparationPipeline(preparation_config.PreparationConfig(
  ...     config.DataConfig(), "prepared", num_shards=3, synthetic=tiny)).run()
  >>> stream = ShardStream(shards.PreparedShards("prepared").files("train"))
  >>> streamed = [int(user["user_index"]) for user in stream.users()]
  >>> in_memory = sequences.SequencePipeline().user_sequences(
  ...     splits.leave_one_out(synthetic.generate_watch_log(tiny)[0]).train)
  >>> streamed == [int(user["user_index"]) for user in in_memory]
  True
"""

from typing import Callable, Dict, Optional, Sequence

import tensorflow as tf

from tfrs_smoe.data.preparation import sequence_records

# fn(items [n], timestamps [n], positive [n] bool) -> more features of the user's element.
UserFeaturesFn = Callable[[tf.Tensor, tf.Tensor, tf.Tensor], Dict[str, tf.Tensor]]


class ShardStream:
  """The user sequences of train shard files, streamed in user order.

  Args:
    files: the train shard files of one prepared output, in shard order (all of them:
      `PreparedShards.files("train")`).
    user_features: optional fn(items, timestamps, positive) of a user's training events (all of
      them, positives or not) -> features added to its element, e.g. the PHNS pools of
      `HardNegativeSampler.user_pools`.

  Elements of `users()`, one per user with at least 2 training positives (as
  `SequencePipeline.user_sequences` gives them): user_index [] int32, items [n] int32,
  timestamps [n] int64, engagement [n] float32 of its positives in time order, and the
  `user_features`.
  """

  def __init__(self, files: Sequence[str], user_features: Optional[UserFeaturesFn] = None):
    self.files = [str(path) for path in files]
    if not self.files:
      raise ValueError("ShardStream: no train shard files.")
    self.user_features = user_features

  def _user(self, record: tf.Tensor) -> Dict[str, tf.Tensor]:
    events = tf.io.parse_single_example(record, sequence_records.feature_spec(evaluation=False))
    positive = events["positive"] > 0
    user = {
        "user_index": tf.cast(events["user_index"], tf.int32),
        "items": tf.cast(tf.boolean_mask(events["item"], positive), tf.int32),
        "timestamps": tf.boolean_mask(events["timestamp"], positive),
        "engagement": tf.boolean_mask(events["engagement"], positive),
    }
    if self.user_features is not None:
      user.update(self.user_features(events["item"], events["timestamp"], positive))
    return user

  def users(self, input_context: Optional[tf.distribute.InputContext] = None
            ) -> tf.data.Dataset:
    """The users' elements (see the class docstring), in user order.

    Args:
      input_context: a parameter-server worker's input context: only its share of the files
        (file i for worker i % num_input_pipelines) is read. None reads every file (a
        multi-worker strategy shards them itself: `file_sharded`).
    """
    files = tf.data.Dataset.from_tensor_slices(self.files)
    cycle_length = len(self.files)
    if input_context is not None and input_context.num_input_pipelines > 1:
      if len(self.files) < input_context.num_input_pipelines:
        raise ValueError(f"{len(self.files)} train shard files cannot be shared by "
                         f"{input_context.num_input_pipelines} workers: prepare with "
                         "--num_shards >= the number of workers.")
      files = files.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
      cycle_length = -(-len(self.files) // input_context.num_input_pipelines)
    records = files.interleave(tf.data.TFRecordDataset, cycle_length=cycle_length,
                               block_length=1, num_parallel_calls=tf.data.AUTOTUNE,
                               deterministic=True)
    return records.map(self._user, num_parallel_calls=tf.data.AUTOTUNE,
                       deterministic=True).filter(lambda user: tf.size(user["items"]) >= 2)

  @staticmethod
  def file_sharded(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` auto-sharded by FILE under a multi-worker strategy: each worker reads its
    files (tf.distribute finds the shard files' reader and shards the file names)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.FILE)
    return dataset.with_options(options)
