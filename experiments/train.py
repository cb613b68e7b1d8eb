r"""Trains a model, evaluates it on the validation split and saves it.

Writes into --model_dir: params.yaml (the resolved config), checkpoints/, metrics_validation.json
and TensorBoard logs (logs/validation); with --export_dir, also a TF Serving SavedModel version.

Example:
  python experiments/train.py --model_dir=runs/popularity
  python experiments/train.py --model_dir=runs/smoe_bst --model=smoe_bst
  python experiments/train.py --model_dir=runs/ml --dataset=movielens/latest-small \
      --data_dir=../shared/data/ml-latest-small --params_override='data: {implicit: true}'
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
from absl import logging

from tfrs_smoe import cli
from tfrs_smoe import config as config_lib
from tfrs_smoe import distribute
from tfrs_smoe import experiment as experiment_lib
from tfrs_smoe.serving import export

cli.define_flags()
flags.DEFINE_string("export_dir", None, "If set, also export the trained model there as the next "
                    "TF Serving version (see experiments/export.py).")
flags.DEFINE_integer("export_k", 10, "Items per recommendation of the export.")
flags.DEFINE_enum("strategy", None, list(distribute.STRATEGIES), "tf.distribute strategy; "
                  "multi_worker and parameter_server read the cluster from TF_CONFIG (with "
                  "parameter_server, the chief coordinates and worker / ps tasks serve). "
                  "Overrides distribute.strategy.")
flags.DEFINE_integer("num_cpu_devices", None, "With --strategy=mirrored, split the CPU into this "
                     "many logical devices. Overrides distribute.num_cpu_devices.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  config = cli.resolve_config(config_lib.ExperimentConfig(), FLAGS)
  config = config_lib.apply_overrides(config, {"distribute": {
      name: getattr(FLAGS, name) for name in ("strategy", "num_cpu_devices")
      if getattr(FLAGS, name) is not None}})
  if distribute.is_server_task(config.distribute):
    print("Serving as a parameter-server training task until stopped.", flush=True)
    distribute.serve()
  # Before anything else runs on TensorFlow's devices, as MultiWorkerMirroredStrategy requires.
  strategy = distribute.make_strategy(config.distribute)
  chief = distribute.is_chief()
  if chief:
    params_path = config_lib.save_params(config, FLAGS.model_dir)
    print(f"Resolved config written to {params_path}")
  experiment = experiment_lib.Experiment(config, FLAGS.model_dir, strategy)
  split = experiment.prepare_data()
  print(f"Data {config.data.dataset} ({config.data.split}, "
        f"{'implicit' if config.data.implicit else 'engagement'} protocol): "
        f"{experiment_lib.describe_split(split)}")
  model = experiment.fit(split, progress=True)
  if not chief:
    return
  results = experiment.evaluate(model, split, "validation", progress=True)
  metrics_path = experiment.write_results(results, "validation")
  print(f"\nValidation metrics of {config.model.name}:")
  print(experiment_lib.format_table(results))
  print(f"Metrics written to {metrics_path}")
  if FLAGS.export_dir:
    with strategy.scope():
      module = export.build_module(split, model, config.data.max_len, FLAGS.export_k)
      path = export.save_version(module, FLAGS.export_dir)
    print(export.serving_instructions(path, module.most_popular_ids))


if __name__ == "__main__":
  app.run(main)
