r"""Prepares a watch log out of core on Apache Beam: sharded per-user records and statistics.

Reads --dataset (the synthetic streaming_logs presets, MovieLens files or a watch_log folder in
--data_dir), validates it as training does, and writes into --output_dir: train-, validation-
and test-NNNNN-of-NNNNN.tfrecord (one tf.train.Example per user per split),
vocabularies/item_ids.txt and user_ids.txt, popularity.npz (training counts, trending and
tailing pools) and statistics.json (users, items, events, bad rows, duplicates, per split),
written last. docs/preparation.md describes the files and the record schema.

The protocol is training's: --params_override takes the same `data:` keys (split, implicit,
abandonment_threshold, min_positives, validation_fraction, test_fraction, columns,
skip_bad_lines, ...), and `preparation:` keys of PreparationConfig (min_item_count, max_items,
trending_pool_size, trending_window_fraction, tail_fraction, batch_size).

--beam_pipeline_options are passed to apache_beam's PipelineOptions (comma- or space-separated);
without them the pipeline runs on the local DirectRunner. On a cluster, --output_dir must be a
path every worker writes (gs://... on Dataflow), and the workers need this package installed
(--setup_file or a container image with it).

Example:
  tfrs-smoe-prepare --dataset=streaming_logs/tiny --output_dir=/tmp/prepared/tiny
  python experiments/prepare.py --dataset=watch_log --data_dir=/tmp/my_log/dirty \
      --output_dir=/tmp/prepared/mine --num_shards=16 \
      --params_override='data: {skip_bad_lines: true, split: time}'
  # Dataflow (the package shipped to the workers by setup.py):
  tfrs-smoe-prepare --dataset=streaming_logs/large --output_dir=gs://my-bucket/prepared/large \
      --num_shards=256 --beam_pipeline_options=--runner=DataflowRunner,--project=my-project,\
--region=europe-west1,--temp_location=gs://my-bucket/tmp,--setup_file=./setup.py,\
--num_workers=20,--max_num_workers=50
  # Flink (a running cluster; workers run the SDK harness in a container with the package):
  tfrs-smoe-prepare --dataset=streaming_logs/medium --output_dir=/shared/prepared/medium \
      --num_shards=64 --beam_pipeline_options='--runner=FlinkRunner
      --flink_master=flink-host:8081 --environment_type=DOCKER
      --environment_config=my-registry/tfrs-smoe-beam:latest --parallelism=16'
"""

import logging
import re
import sys

from absl import flags

from tfrs_smoe import cli
from tfrs_smoe import config as config_lib
from tfrs_smoe import experiment as experiment_lib
from tfrs_smoe.data import schema
from tfrs_smoe.data.preparation import config as preparation_lib

cli.define_data_flags(raw_only=True)
flags.DEFINE_string("output_dir", None, "Where the shards, vocabularies/, popularity.npz and "
                    "statistics.json go (a local path, or gs://... on Dataflow).")
flags.DEFINE_integer("num_shards", 8, "TFRecord files per split; user u goes to shard "
                     "(u - 2) % num_shards (u = its vocabulary index).", lower_bound=1)
flags.DEFINE_string("beam_pipeline_options", "", "Apache Beam pipeline options, comma- or "
                    "space-separated, e.g. '--runner=DataflowRunner,--project=my-project'. "
                    "Empty: the local DirectRunner.")
flags.DEFINE_bool("overwrite", False, "Replace what --output_dir holds instead of refusing.")
flags.DEFINE_string("params_override", "", "YAML/JSON mapping, inline or a file path, with "
                    "`data:` keys (as train.py takes them) and `preparation:` keys, e.g. "
                    "'{data: {split: time}, preparation: {min_item_count: 5}}'.")
flags.mark_flag_as_required("output_dir")
FLAGS = flags.FLAGS


def pipeline_options(text: str):
  """The PipelineOptions of --beam_pipeline_options (comma- or space-separated arguments)."""
  options_lib = _pipeline_module().options_lib
  return options_lib.PipelineOptions([arg for arg in re.split(r"[,\s]+", text.strip()) if arg])


def resolve():
  """The PreparationConfig of the flags, checked whole before any work.

  Raises:
    ValueError: an unknown data set or key, a value out of range, an unreadable
      --params_override, or a data directory that is not there.
  """
  override = cli.read_params_override(FLAGS.params_override)
  preparation = override.pop("preparation", None) or {}
  if not isinstance(preparation, dict):
    raise ValueError(f"--params_override: preparation must be a mapping, got {preparation!r}.")
  unknown = sorted(set(override) - {"data"})
  if unknown:
    raise ValueError(f"--params_override: {', '.join(unknown)}: unknown; prepare takes data "
                     "and preparation keys.")
  experiment = config_lib.apply_overrides(config_lib.ExperimentConfig(), {
      "data": cli.data_overrides(FLAGS)})
  experiment = config_lib.apply_overrides(experiment, override)
  fields = set(preparation_lib.PreparationConfig.__dataclass_fields__) - {
      "data", "output_dir", "num_shards", "synthetic"}
  for key in preparation:
    if key not in fields:
      raise ValueError(f"preparation.{key}: unknown key; the keys are {', '.join(sorted(fields))}.")
  config = preparation_lib.PreparationConfig(experiment.data, FLAGS.output_dir,
                                             num_shards=FLAGS.num_shards, **preparation)
  experiment_lib.check_data_source(config.data)
  return config


def _pipeline_module():
  """`preparation.pipeline`, imported without apache_beam's warning about its GCP clients
  ("apitools not found": the BigQuery clients, which this pipeline does not use)."""
  root = logging.getLogger()
  level = root.level
  root.setLevel(logging.ERROR)
  try:
    from tfrs_smoe.data.preparation import pipeline  # pylint: disable=g-import-not-at-top
  finally:
    root.setLevel(level)
  return pipeline


def main(argv):
  """Checks the flags and config, then runs the preparation and prints its statistics."""
  del argv
  cli.set_up_logging()
  try:
    config = resolve()
    options = pipeline_options(FLAGS.beam_pipeline_options)
    if not FLAGS["verbosity"].present:
      # A failing step logs its traceback; the error itself is reported below in one line.
      logging.getLogger("apache_beam").setLevel(logging.CRITICAL)
    statistics = _pipeline_module().PreparationPipeline(config).run(
        options, overwrite=FLAGS.overwrite)
  except (ValueError, FileExistsError, schema.DataError) as error:
    cli.exit_with(error)
  splits = statistics["splits"]
  print(f"Prepared {statistics['dataset']} into {config.output_dir}: {statistics['num_users']} "
        f"users, {statistics['num_items']} items, {statistics['events']} events "
        f"({statistics['bad_rows_total']} bad rows skipped, {statistics['duplicate_rows']} "
        "duplicates dropped); "
        + ", ".join(f"{name} {split['users']} users" for name, split in splits.items())
        + f"; {config.num_shards} shards per split. Statistics in "
        f"{config.output_dir}/statistics.json.")


def run() -> None:
  """The console script `tfrs-smoe-prepare`."""
  cli.run(main, __doc__, [sys.modules[__name__], cli])


if __name__ == "__main__":
  run()
