r"""Training throughput on one process vs tf.distribute setups of local processes.

Setups (the same global batch, model and synthetic log in every one):
- "1 process": the default strategy.
- "mirrored 2 CPUs": MirroredStrategy over 2 logical CPU devices in one process.
- "2 workers": MultiWorkerMirroredStrategy, two worker processes on 127.0.0.1 (TF_CONFIG).
- "2 workers + 1 ps": ParameterServerStrategy, a coordinator, two workers and one parameter
  server, each a local process.
Every process of a setup runs on this one machine, so on a small machine the setups share the
same cores: the table shows what each strategy's communication costs here, not the speed-up of
adding machines. Each process trains through `Experiment.fit` (as experiments/train.py does,
without validation after the first epoch); the median epoch after the first (warm-up) epoch is
reported. Prints a table and writes JSON.

  python benchmarks/distributed_training.py --models=smoe_bst,two_tower --output=/tmp/dist.json
"""

import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
import numpy as np

import machine
from tfrs_smoe import distribute

# setup -> (strategy, the (task type, index) of each process; "" = no cluster). The first
# process reports; the others are workers that finish with it or servers that are stopped.
SETUPS = {
    "1 process": ("default", [("", 0)]),
    "mirrored 2 CPUs": ("mirrored", [("", 0)]),
    "2 workers": ("multi_worker", [("worker", 0), ("worker", 1)]),
    "2 workers + 1 ps": ("parameter_server",
                         [("chief", 0), ("worker", 0), ("worker", 1), ("ps", 0)]),
}

flags.DEFINE_list("models", ["smoe_bst", "two_tower"], "Models to time.")
flags.DEFINE_list("setups", list(SETUPS), "Setups to time.")
flags.DEFINE_integer("num_users", 1500, "Synthetic users.")
flags.DEFINE_integer("num_titles", 2000, "Synthetic titles.")
flags.DEFINE_integer("max_len", 50, "History length.")
flags.DEFINE_integer("batch_size", 256, "Global batch (sequences for smoe_bst, (history, next "
                     "item) pairs for two_tower).")
flags.DEFINE_integer("epochs", 3, "Timed epochs after one warm-up epoch; the median is kept.")
flags.DEFINE_string("output", "", "JSON output path (optional).")
flags.DEFINE_string("run_task", "", "Internal: 'model:setup' of one process (TF_CONFIG set).")
FLAGS = flags.FLAGS


def _train(model_name: str, setup: str) -> None:
  """One process of a setup; the chief (coordinator) prints its timing as JSON."""
  from tfrs_smoe import config as config_lib  # pylint: disable=import-outside-toplevel
  from tfrs_smoe import experiment as experiment_lib  # pylint: disable=import-outside-toplevel
  from tfrs_smoe.data import synthetic  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  strategy_name = SETUPS[setup][0]
  config = config_lib.apply_overrides(config_lib.ExperimentConfig(), {
      "data": {"max_len": FLAGS.max_len},
      "model": {"name": model_name},
      "train": {"batch_size": FLAGS.batch_size, "epochs": FLAGS.epochs + 1,
                "early_stopping_patience": 0, "validate_every": FLAGS.epochs + 2},
      "eval": {"phns_test": False},
      "distribute": {"strategy": strategy_name,
                     "num_cpu_devices": 2 if strategy_name == "mirrored" else 0}})
  if distribute.is_server_task(config.distribute):
    distribute.serve()
  strategy = distribute.make_strategy(config.distribute)
  log, _ = synthetic.generate_watch_log(synthetic.SyntheticConfig(
      num_users=FLAGS.num_users, num_titles=FLAGS.num_titles))
  model_dir = tempfile.mkdtemp(prefix="distributed_training_")
  experiment = experiment_lib.Experiment(config, model_dir, strategy)
  split = experiment.prepare_data(log)

  class EpochTimer(tf.keras.callbacks.Callback):

    def __init__(self):
      super().__init__()
      self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
      self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
      self.seconds.append(time.perf_counter() - self._start)

  timer = EpochTimer()
  experiment.fit(split, callbacks=[timer])
  if distribute.is_chief():
    steps = timer.params["steps"]
    epoch_seconds = float(np.median(timer.seconds[1:]))
    print(json.dumps({"model": model_name, "setup": setup, "steps_per_epoch": steps,
                      "epoch_seconds": epoch_seconds,
                      "examples_per_second": steps * FLAGS.batch_size / epoch_seconds}))


def _run_setup(model_name: str, setup: str) -> dict:
  """Starts the processes of `setup`; returns the chief's timing."""
  command = [sys.executable, os.path.abspath(__file__), f"--run_task={model_name}:{setup}",
             *[a for a in sys.argv[1:] if not a.startswith(("--output", "--models",
                                                             "--setups"))]]
  env = {name: value for name, value in os.environ.items() if name != "TF_CONFIG"}
  strategy_name, tasks = SETUPS[setup]
  addresses = distribute.free_local_addresses(len(tasks))
  cluster = {}
  for (task_type, _), address in zip(tasks, addresses):
    cluster.setdefault(task_type, []).append(address)
  processes = []
  for task_type, index in tasks:
    task_env = dict(env) if not task_type else dict(env, TF_CONFIG=json.dumps(
        {"cluster": cluster, "task": {"type": task_type, "index": index}}))
    processes.append(subprocess.Popen(command, env=task_env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
  # The chief (or the only process, or worker 0) answers; parameter-server tasks serve on.
  reporter = processes[0]
  output, errors = reporter.communicate()
  for process in processes[1:]:
    if strategy_name == "parameter_server":
      process.kill()
    process.communicate()
  if reporter.returncode != 0:
    raise RuntimeError(f"{model_name} / {setup} failed:\n{errors[-3000:]}")
  return json.loads(output.strip().splitlines()[-1])


def main(argv):
  del argv
  if FLAGS.run_task:
    model_name, setup = FLAGS.run_task.split(":")
    _train(model_name, setup)
    return
  for setup in FLAGS.setups:
    if setup not in SETUPS:
      raise ValueError(f"Unknown setup {setup!r}; use {', '.join(SETUPS)}.")
  rows = [_run_setup(model_name, setup) for model_name in FLAGS.models
          for setup in FLAGS.setups]
  machine.report(
      f"Training throughput by tf.distribute setup, synthetic log ({FLAGS.num_users} users, "
      f"{FLAGS.num_titles} titles), max_len {FLAGS.max_len}, global batch {FLAGS.batch_size}; "
      "all processes on this machine",
      [("model", "model", "s"), ("setup", "setup", "s"), ("steps/epoch", "steps_per_epoch", "d"),
       ("s/epoch", "epoch_seconds", ".2f"), ("examples/s", "examples_per_second", ".0f")],
      rows, FLAGS.output)


if __name__ == "__main__":
  app.run(main)
