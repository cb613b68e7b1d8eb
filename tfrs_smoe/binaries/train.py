r"""Trains a model, evaluates it on the validation split and saves it.

Writes into --model_dir: checkpoints/, vocabularies/ (the run's id vocabularies and data set),
params.yaml (the resolved config, written with the final checkpoint), history.json,
metrics_validation.json and TensorBoard logs (logs/train: the epoch metrics, and the learning
rate and losses every train.log_every_steps steps); with --export_dir, also a TF Serving
SavedModel version. Prints one line per epoch (loss terms, validation NDCG@10, gate weights,
seconds), with Keras' progress bar when stdout is a terminal.

Before any data is loaded it checks the flags and the whole resolved config (an error names the
key and the choices), takes an exclusive lock on --model_dir (a second run on it fails at once,
naming the holder), and checks what the directory holds: a finished run is refused unless
--overwrite; the backup of a killed run is resumed when the config is the same and refused,
naming the differences, when it is not.

TensorFlow's C++ logs (its import's included) are off unless TF_CPP_MIN_LOG_LEVEL is set: 0
shows them all, 2 its errors. --verbosity=0 shows absl's INFO logs.

Example:
  tfrs-smoe-train --model_dir=runs/popularity
  python -m tfrs_smoe.binaries.train --model_dir=runs/smoe_bst --model=smoe_bst
  python experiments/train.py --model_dir=runs/ml --dataset=movielens/latest-small \
      --data_dir=../shared/data/ml-latest-small --params_override='data: {implicit: true}'
  tfrs-smoe-train --model_dir=runs/mine --dataset=watch_log --data_dir=my_log \
      --model=smoe_bst --params_override='data: {columns: {user_id: account}}'
  # From the shards of tfrs-smoe-prepare (its data set and protocol; docs/preparation.md):
  tfrs-smoe-train --model_dir=runs/prepared --dataset=prepared --data_dir=/tmp/prepared/small \
      --model=smoe_bst
"""

import contextlib
import sys

from absl import app
from absl import flags

from tfrs_smoe import cli
from tfrs_smoe import config as config_lib
from tfrs_smoe import distribute
from tfrs_smoe import experiment as experiment_lib
from tfrs_smoe import model_dir_lock
from tfrs_smoe import run_directory
from tfrs_smoe.data import schema
from tfrs_smoe.models import registry
from tfrs_smoe.serving import export

cli.define_flags()
flags.DEFINE_string("export_dir", None, "If set, also export the trained model there as the next "
                    "TF Serving version (see tfrs-smoe-export).")
flags.DEFINE_integer("export_k", 10, "Items per recommendation of the export.")
flags.DEFINE_enum("strategy", None, list(distribute.STRATEGIES), "tf.distribute strategy; "
                  "multi_worker and parameter_server read the cluster from TF_CONFIG (with "
                  "parameter_server, the chief coordinates and worker / ps tasks serve). "
                  "Overrides distribute.strategy.")
flags.DEFINE_bool("overwrite", False, "Replace the run --model_dir holds (a finished run, or "
                  "the backup of a killed run) instead of refusing to start.")
flags.DEFINE_integer("num_cpu_devices", None, "With --strategy=mirrored, split the CPU into this "
                     "many logical devices. Overrides distribute.num_cpu_devices.")
FLAGS = flags.FLAGS


def resolve() -> config_lib.ExperimentConfig:
  """The run's config from the flags, checked whole before any work.

  Raises:
    ValueError: an unknown model, data set or key, a value out of range, an unreadable
      --params_override, or a data directory that is not there.
    app.UsageError: --export_dir with a model that cannot be served.
  """
  config = cli.resolve_config(config_lib.ExperimentConfig(), FLAGS)
  config = config_lib.apply_overrides(config, {"distribute": {
      name: getattr(FLAGS, name) for name in ("strategy", "num_cpu_devices")
      if getattr(FLAGS, name) is not None}})
  experiment_lib.check_data_source(config.data)
  spec = registry.get(config.model.name)
  if FLAGS.export_dir and not spec.servable:
    raise app.UsageError(f"--export_dir: {spec.name} cannot be served (it does not meet the "
                         "ServableRanker contract of tfrs_smoe/models/contract.py); export a "
                         f"{' or '.join(n for n in registry.names() if registry.get(n).servable)}"
                         " model. The popularity fallback is part of every export.")
  return config


def main(argv):
  """Checks the flags and config, then trains, validates and (with --export_dir) exports."""
  del argv
  cli.set_up_logging()
  try:
    config = resolve()
  except ValueError as error:
    cli.exit_with(error)
  if distribute.is_server_task(config.distribute):
    print("Serving as a parameter-server training task until stopped.", flush=True)
    distribute.serve()
  # Before anything else runs on TensorFlow's devices, as MultiWorkerMirroredStrategy requires.
  strategy = distribute.make_strategy(config.distribute)
  chief = distribute.is_chief()
  # Other workers of a multi-worker job share the chief's model_dir and write none of its
  # artifacts, so only the chief locks it.
  lock = model_dir_lock.ModelDirLock(FLAGS.model_dir) if chief else contextlib.nullcontext()
  try:
    with lock:
      _train(config, strategy, chief)
  except (model_dir_lock.ModelDirLockedError, run_directory.RunDirectoryError,
          run_directory.DataMismatchError, schema.DataError) as error:
    cli.exit_with(error)


def _train(config: config_lib.ExperimentConfig, strategy, chief: bool) -> None:
  """Claims --model_dir (chief), loads the data, fits, validates and exports."""
  if chief:
    start = run_directory.RunDirectory(FLAGS.model_dir).begin(config, overwrite=FLAGS.overwrite)
    if start == "resumed":
      print(f"Resuming the interrupted run in {FLAGS.model_dir} from its backup.")
  experiment = experiment_lib.Experiment(config, FLAGS.model_dir, strategy)
  split = experiment.prepare_data()
  print(f"Data {config.data.dataset} ({config.data.split}, "
        f"{'implicit' if config.data.implicit else 'engagement'} protocol): "
        f"{experiment_lib.describe_split(split)}", flush=True)
  model = experiment.fit(split, progress=True)
  if not chief:
    return
  print(f"Resolved config written to {run_directory.RunDirectory(FLAGS.model_dir).params_path}")
  results = experiment.evaluate(model, split, "validation", progress=sys.stdout.isatty())
  metrics_path = experiment.write_results(results, "validation")
  print(f"\nValidation metrics of {config.model.name}:")
  print(experiment_lib.format_table(results))
  print(f"Metrics written to {metrics_path}")
  if FLAGS.export_dir:
    with strategy.scope():
      module = export.build_module(split, model, config.data.max_len, FLAGS.export_k)
      path = export.save_version(module, FLAGS.export_dir)
    print(export.serving_instructions(path, module.most_popular_ids))


def run() -> None:
  """The console script `tfrs-smoe-train`."""
  cli.run(main, __doc__, [sys.modules[__name__], cli])


if __name__ == "__main__":
  run()
