"""tf.distribute strategies from the config and TF_CONFIG, and replica-aware loss reductions.

Strategies:
- "default": one device.
- "mirrored": `MirroredStrategy` over this machine's devices; `num_cpu_devices` splits the CPU
  into that many logical devices first (a CPU-only machine then trains data-parallel too).
- "multi_worker": `MultiWorkerMirroredStrategy`, one process per worker, the cluster from the
  standard `TF_CONFIG` environment variable.

Keras splits each global batch of `train.batch_size` examples between the replicas; multi-worker
input is sharded by DATA (every worker builds the same pipeline and keeps its share of each
global batch), set explicitly because the pipelines are not file based. Losses are written so
that the sum of the replicas' gradients (what the optimizer aggregates) equals the gradient of
one device on the whole global batch: means divide by `global_sum` of their weights, and the
two-tower softmax sees the candidates of every replica (`gather_local_first`).

Example:
  >>> strategy = make_strategy(DistributeConfig(strategy="mirrored", num_cpu_devices=2))
  >>> with strategy.scope():
  ...   model = build_model()
"""

import dataclasses
import json
import os

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker")


@dataclasses.dataclass
class DistributeConfig:
  """Which tf.distribute strategy trains the model.

  Attributes:
    strategy: "default", "mirrored" or "multi_worker".
    num_cpu_devices: with "mirrored", split the CPU into this many logical devices (0 = use the
      devices as they are). Must be set before TensorFlow initialises its devices.
  """

  strategy: str = "default"
  num_cpu_devices: int = 0

  def __post_init__(self):
    if self.strategy not in STRATEGIES:
      raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}.")
    if self.num_cpu_devices < 0:
      raise ValueError(f"num_cpu_devices must be >= 0, got {self.num_cpu_devices}.")


def make_strategy(config: DistributeConfig) -> tf.distribute.Strategy:
  """The configured strategy; call it before anything else touches TensorFlow's devices."""
  if config.strategy == "default":
    return tf.distribute.get_strategy()
  if config.strategy == "mirrored":
    devices = None
    if config.num_cpu_devices:
      cpu = tf.config.list_physical_devices("CPU")[0]
      tf.config.set_logical_device_configuration(
          cpu, [tf.config.LogicalDeviceConfiguration()] * config.num_cpu_devices)
      devices = [f"/cpu:{i}" for i in range(config.num_cpu_devices)]
    return tf.distribute.MirroredStrategy(devices)
  if "TF_CONFIG" not in os.environ:
    raise ValueError("strategy multi_worker needs the cluster in the TF_CONFIG environment "
                     "variable, e.g. {\"cluster\": {\"worker\": [\"host1:port\", \"host2:port\"]}, "
                     "\"task\": {\"type\": \"worker\", \"index\": 0}}.")
  return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief() -> bool:
  """Whether this process writes the run's artifacts (the chief, else worker 0, or no cluster)."""
  cluster_config = json.loads(os.environ.get("TF_CONFIG", "{}"))
  task = cluster_config.get("task")
  if not task or task.get("type") == "chief":
    return True
  return (task.get("type") == "worker" and int(task.get("index", 0)) == 0
          and "chief" not in cluster_config.get("cluster", {}))


def data_sharded(dataset: tf.data.Dataset) -> tf.data.Dataset:
  """`dataset` with DATA auto-sharding across workers (each keeps its share of every batch)."""
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
  return dataset.with_options(options)


def _replica_context():
  context = tf.distribute.get_replica_context()
  return context if context is not None and context.num_replicas_in_sync > 1 else None


def global_sum(value: tf.Tensor) -> tf.Tensor:
  """The sum of `value` over the replicas in sync (`value` itself on one replica)."""
  context = _replica_context()
  return value if context is None else context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def gather_local_first(value: tf.Tensor) -> tf.Tensor:
  """[replicas * n, ...]: every replica's `value` [n, ...], this replica's rows first.

  The other replicas' rows follow in replica order (wrapping around), so row i of the local
  batch keeps index i: in-batch softmax labels stay the diagonal. Replicas must hold equal n.
  """
  context = _replica_context()
  if context is None:
    return value
  gathered = context.all_gather(value, axis=0)
  return tf.roll(gathered, -context.replica_id_in_sync_group * tf.shape(value)[0], axis=0)
