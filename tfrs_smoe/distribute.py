"""tf.distribute strategies from the config and TF_CONFIG, and replica-aware loss reductions.

Strategies:
- "default": one device.
- "mirrored": `MirroredStrategy` over this machine's devices; `num_cpu_devices` splits the CPU
  into that many logical devices first (a CPU-only machine then trains data-parallel too).
- "multi_worker": `MultiWorkerMirroredStrategy`, one process per worker, the cluster from the
  standard `TF_CONFIG` environment variable.
- "parameter_server": `ParameterServerStrategy`: a coordinator (task type "chief") runs the
  training loop, workers take steps asynchronously, parameter servers ("ps") hold the variables.
  Variables of at least `ps_min_shard_bytes` are split into up to one shard per parameter server
  (`MinSizePartitioner`): the item embedding tables and the frequency estimator's arrays are.
  Workers and parameter servers only serve (`serve`); the same binary starts every role.

Keras splits each global batch of `train.batch_size` examples between the replicas; multi-worker
input is sharded by DATA (every worker builds the same pipeline and keeps its share of each
global batch), set explicitly because the pipelines are not file based. Losses are written so
that the sum of the replicas' gradients (what the optimizer aggregates) equals the gradient of
one device on the whole global batch: means divide by `global_sum` of their weights, and the
two-tower softmax sees the candidates of every replica (`gather_local_first`).

Example (`num_cpu_devices=2` would split the CPU into two replicas first, which only works
before TensorFlow has set up its devices, so not here):
  >>> strategy = make_strategy(DistributeConfig(strategy="mirrored"))
  >>> with strategy.scope():
  ...   model = tf.keras.Sequential([tf.keras.layers.Dense(1)])
  >>> type(strategy).__name__, strategy.num_replicas_in_sync
  ('MirroredStrategy', 1)
"""

import dataclasses
import os
import socket
from typing import List

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker", "parameter_server")
_SERVER_TASKS = ("worker", "ps")


@dataclasses.dataclass
class DistributeConfig:
  """Which tf.distribute strategy trains the model.

  Attributes:
    strategy: "default", "mirrored", "multi_worker" or "parameter_server".
    num_cpu_devices: with "mirrored", split the CPU into this many logical devices (0 = use the
      devices as they are). Must be set before TensorFlow initialises its devices.
    ps_min_shard_bytes: with "parameter_server", the smallest shard of a variable split across
      parameter servers (smaller variables stay whole).
  """

  strategy: str = "default"
  num_cpu_devices: int = 0
  ps_min_shard_bytes: int = 256 << 10

  def __post_init__(self):
    if self.strategy not in STRATEGIES:
      raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}.")
    if self.num_cpu_devices < 0:
      raise ValueError(f"num_cpu_devices must be >= 0, got {self.num_cpu_devices}.")
    if self.ps_min_shard_bytes < 1:
      raise ValueError(f"ps_min_shard_bytes must be >= 1, got {self.ps_min_shard_bytes}.")


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
    raise ValueError(f"strategy {config.strategy} needs the cluster in the TF_CONFIG environment "
                     "variable, e.g. {\"cluster\": {\"worker\": [\"host1:port\", \"host2:port\"]}, "
                     "\"task\": {\"type\": \"worker\", \"index\": 0}}.")
  if config.strategy == "multi_worker":
    return tf.distribute.MultiWorkerMirroredStrategy()
  resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
  cluster = resolver.cluster_spec().as_dict()
  if not {"chief", "worker", "ps"} <= set(cluster) or resolver.task_type != "chief":
    raise ValueError("strategy parameter_server needs TF_CONFIG with chief, worker and ps jobs, "
                     "and is made by the coordinator (task type chief) only; workers and "
                     f"parameter servers call serve(). Got jobs {sorted(cluster)} and task type "
                     f"{resolver.task_type!r}.")
  partitioner = tf.distribute.experimental.partitioners.MinSizePartitioner(
      min_shard_bytes=config.ps_min_shard_bytes, max_shards=len(cluster["ps"]))
  return tf.distribute.ParameterServerStrategy(resolver, variable_partitioner=partitioner)


def is_server_task(config: DistributeConfig) -> bool:
  """Whether this process is a worker or parameter server of parameter-server training."""
  if config.strategy != "parameter_server":
    return False
  return tf.distribute.cluster_resolver.TFConfigClusterResolver().task_type in _SERVER_TASKS


def serve() -> None:
  """Runs this worker's or parameter server's gRPC server from TF_CONFIG; never returns.

  The coordinator sends the steps (workers) and holds variables here (ps); the process ends
  when it is stopped, as parameter-server tasks do once the coordinator is done.
  """
  resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
  if resolver.task_type not in _SERVER_TASKS:
    raise ValueError(f"serve() is for task types {_SERVER_TASKS}, got {resolver.task_type!r}.")
  server = tf.distribute.Server(resolver.cluster_spec(), job_name=resolver.task_type,
                                task_index=resolver.task_id,
                                protocol=resolver.rpc_layer or "grpc", start=True)
  server.join()


def is_chief() -> bool:
  """Whether this process writes the run's artifacts (the chief, else worker 0, or no cluster)."""
  resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
  if resolver.task_type in (None, "chief"):
    return True
  return (resolver.task_type == "worker" and not resolver.task_id
          and "chief" not in resolver.cluster_spec().jobs)


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


def free_local_addresses(count: int) -> List[str]:
  """`count` "127.0.0.1:port" addresses free right now, for a cluster of local processes."""
  sockets = [socket.socket() for _ in range(count)]
  for open_socket in sockets:
    open_socket.bind(("127.0.0.1", 0))
  addresses = [f"127.0.0.1:{open_socket.getsockname()[1]}" for open_socket in sockets]
  for open_socket in sockets:
    open_socket.close()
  return addresses
