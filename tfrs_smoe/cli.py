"""Flags shared by the experiment binaries and their resolution into an `ExperimentConfig`.

Precedence, lowest first: the config defaults (train.py) or the run's params.yaml (evaluate.py),
then the explicit flags (--dataset, --data_dir, --tfds_data_dir, --model, --seed), then
--params_override.
"""

from absl import flags

from tfrs_smoe import config as config_lib
from tfrs_smoe.models import registry


def define_flags() -> None:
  """Defines the common flags on absl's global FLAGS."""
  flags.DEFINE_string("model_dir", None, "Directory for params.yaml, checkpoints, metrics JSON "
                      "and TensorBoard logs.")
  flags.DEFINE_string("dataset", None, "streaming_logs[/tiny|small|medium|large], "
                      "movielens/<100k|1m|latest-small> or watch_log (your own CSV / TSV / "
                      "Parquet files in --data_dir). Overrides data.dataset.")
  flags.DEFINE_string("data_dir", None, "Directory of the raw MovieLens files, or of a "
                      "watch_log's interactions (and optional items and users) files. "
                      "Overrides data.data_dir.")
  flags.DEFINE_string("tfds_data_dir", None, "Where TFDS prepares data sets. Overrides "
                      "data.tfds_data_dir.")
  flags.DEFINE_string("model", None, f"One of {', '.join(registry.names())} "
                      "(tfrs_smoe/models/registry.py). Overrides model.name.")
  flags.DEFINE_integer("seed", None, "Global seed. Overrides seed.")
  flags.DEFINE_string("params_override", "", "YAML/JSON mapping, inline or a file path, applied "
                      "last, e.g. 'data: {max_len: 20}'.")
  flags.mark_flag_as_required("model_dir")


def resolve_config(base: config_lib.ExperimentConfig,
                   values: flags.FlagValues) -> config_lib.ExperimentConfig:
  """`base` with the explicit flags and then --params_override applied."""
  data_overrides = {name: getattr(values, flag) for name, flag in (
      ("dataset", "dataset"), ("data_dir", "data_dir"), ("tfds_data_dir", "tfds_data_dir"))
                    if getattr(values, flag) is not None}
  overrides = {"data": data_overrides}
  if values.model is not None:
    overrides["model"] = {"name": values.model}
  if values.seed is not None:
    overrides["seed"] = values.seed
  resolved = config_lib.apply_overrides(base, overrides)
  return config_lib.override(resolved, values.params_override)
