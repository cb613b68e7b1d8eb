"""Flags shared by the experiment binaries, their resolution into an `ExperimentConfig`, and
what every binary does around its main: help, logging, errors.

Precedence, lowest first: the config defaults (train) or the run's params.yaml (evaluate,
export), then the explicit flags (--dataset, --data_dir, --tfds_data_dir, --model, --seed), then
--params_override. `--dataset=prepared` stands for the data set and protocol (split, implicit,
threshold, ...) of the preparation in --data_dir, which the run records.

The binaries are `tfrs_smoe/binaries/` (console scripts `tfrs-smoe-train` etc., `python -m
tfrs_smoe.binaries.train`, and the wrappers `experiments/*.py`); `run` starts each of them.
"""

import os
import sys
from types import ModuleType
from typing import Any, Callable, Dict, NoReturn, Sequence

from absl import app
from absl import flags
from absl import logging
import yaml

from tfrs_smoe import config as config_lib
from tfrs_smoe.data import prepared_split
from tfrs_smoe.models import registry

# The --dataset that reads the data set and protocol of the preparation in --data_dir.
PREPARED = "prepared"
# absl's flags that every binary's --help lists beside its own.
_ABSL_KEY_FLAGS = ("verbosity",)


def define_data_flags(raw_only: bool = False) -> None:
  """Defines the data flags on absl's global FLAGS: --dataset, --data_dir, --tfds_data_dir.

  Args:
    raw_only: only what names a raw log, for a binary that reads one (tfrs-smoe-prepare):
      --dataset and --data_dir, without "prepared" and without --tfds_data_dir.
  """
  prepared = ("" if raw_only else
              ", or prepared (the output of tfrs-smoe-prepare in --data_dir: its data set and "
              "protocol, read from its shards)")
  flags.DEFINE_string("dataset", None, "streaming_logs[/tiny|small|medium|large], "
                      "movielens/<100k|1m|latest-small> or watch_log (your own CSV / TSV / "
                      f"Parquet files in --data_dir){prepared}. Overrides data.dataset.")
  flags.DEFINE_string("data_dir", None, "Directory of the raw MovieLens files, or of a "
                      "watch_log's interactions (and optional items and users) files"
                      + ("" if raw_only else ", or the output_dir of tfrs-smoe-prepare (read "
                         "from its shards)") + ". Overrides data.data_dir.")
  if not raw_only:
    flags.DEFINE_string("tfds_data_dir", None, "Where TFDS prepares data sets. Overrides "
                        "data.tfds_data_dir.")


def define_flags() -> None:
  """Defines the common flags on absl's global FLAGS (`define_data_flags`' among them)."""
  flags.DEFINE_string("model_dir", None, "Directory for params.yaml, checkpoints, metrics JSON "
                      "and TensorBoard logs.")
  define_data_flags()
  flags.DEFINE_string("model", None, f"One of {', '.join(registry.names())} "
                      "(tfrs_smoe/models/registry.py). Overrides model.name.")
  flags.DEFINE_integer("seed", None, "Global seed. Overrides seed.")
  flags.DEFINE_string("params_override", "", "YAML/JSON mapping, inline or a file path, applied "
                      "last, e.g. 'data: {max_len: 20}'.")
  flags.mark_flag_as_required("model_dir")


def _describe(error: yaml.MarkedYAMLError) -> str:
  """" at line L, column C: <problem> (<context> at line L', column C')" and the line there."""
  mark, context_mark = error.problem_mark, error.context_mark
  text = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
  text += f": {error.problem}"
  if error.context:
    text += f" ({error.context}"
    if context_mark is not None:
      text += f" at line {context_mark.line + 1}, column {context_mark.column + 1}"
    text += ")"
  snippet = mark.get_snippet() if mark is not None else None
  if snippet and snippet.splitlines()[0].strip():
    text += f"\n{snippet}"
  return text


def read_params_override(text: str, flag: str = "params_override") -> Dict[str, Any]:
  """The mapping of an override flag's value: inline YAML/JSON, or the file at that path.

  Args:
    text: the flag's value; "" is no override.
    flag: the flag's name, for the errors.

  Returns:
    The mapping ({} for "" or an empty document).

  Raises:
    ValueError: naming --`flag`: the YAML is malformed (with the line and column, and the
      file when it is one), the value is neither a file nor a mapping ("no such file: PATH"),
      or it is some other value.

  Example:
    >>> read_params_override("data: {max_len: 20}")
    {'data': {'max_len': 20}}
  """
  if not text:
    return {}
  is_file = os.path.isfile(text)
  source = f"--{flag} file {text}" if is_file else f"--{flag}"
  try:
    value = config_lib.read_yaml(text)
  except yaml.MarkedYAMLError as error:
    raise ValueError(f"{source} is not valid YAML{_describe(error)}") from None
  except yaml.YAMLError as error:
    raise ValueError(f"{source} is not valid YAML: {error}") from None
  if value is None:
    return {}
  if isinstance(value, dict):
    return value
  if isinstance(value, str) and not is_file and "\n" not in text.strip():
    raise ValueError(f"--{flag}: no such file: {text} (and it is not a YAML mapping such as "
                     "'data: {max_len: 20}').")
  raise ValueError(f"{source}: expected a mapping such as 'data: {{max_len: 20}}', got "
                   f"{value!r}.")


def data_overrides(values: flags.FlagValues) -> Dict[str, Any]:
  """The `data:` keys of the data flags that were given (`define_data_flags`).

  Example:
    >>> import types
    >>> data_overrides(types.SimpleNamespace(dataset="watch_log", data_dir="my_log"))
    {'dataset': 'watch_log', 'data_dir': 'my_log'}
  """
  return {name: getattr(values, name) for name in ("dataset", "data_dir", "tfds_data_dir")
          if getattr(values, name, None) is not None}


def resolve_config(base: config_lib.ExperimentConfig,
                   values: flags.FlagValues) -> config_lib.ExperimentConfig:
  """`base` with the explicit flags and then --params_override applied.

  Raises:
    ValueError: a flag or the override names an unknown key, a value of the wrong type or out
      of range, or the override cannot be read (`read_params_override`).
  """
  overrides = {"data": data_overrides(values)}
  if overrides["data"].get("dataset") == PREPARED:
    # The data set and protocol of the preparation in data_dir (`prepared_split`).
    directory = overrides["data"].get("data_dir") or base.data.data_dir
    if not directory:
      raise ValueError("--dataset=prepared needs --data_dir: the output_dir of "
                       "tfrs-smoe-prepare.")
    overrides["data"].update(prepared_split.data_overrides(directory))
  if getattr(values, "model", None) is not None:
    overrides["model"] = {"name": values.model}
  if getattr(values, "seed", None) is not None:
    overrides["seed"] = values.seed
  resolved = config_lib.apply_overrides(base, overrides)
  return config_lib.apply_overrides(resolved,
                                    read_params_override(getattr(values, "params_override", "")))


def program_name() -> str:
  """The binary's name as the user called it: train.py, tfrs-smoe-train, ..."""
  return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "tfrs_smoe"


def exit_with(error: BaseException) -> NoReturn:
  """Ends the binary with status 1 and "<program>: <error>" on stderr, without a traceback."""
  sys.exit(f"{program_name()}: {error}")


def set_up_logging() -> None:
  """absl (and TensorFlow's Python) logging at WARNING, unless --verbosity was given.

  `--verbosity=0` (or `-v 0`) shows INFO logs, `--verbosity=1` and up absl's debug logs.
  """
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)


def run(main: Callable[[Sequence[str]], Any], doc: str,
        key_flag_modules: Sequence[ModuleType]) -> None:
  """Runs a binary's `main` under absl, with the flags of `key_flag_modules` in its --help.

  absl's --help lists the key flags of the main module (sys.argv[0]); the flags a binary gets
  from other modules (this one's `define_flags`, `tfrs_smoe.sweep`'s) are key flags of those
  modules only, and a console script or a wrapper is another main module than the binary. So
  every one of those flags, and --verbosity, is made a key flag of the main module, and the
  main module's docstring (absl's usage text) becomes `doc`.

  Args:
    main: absl's main, called with the arguments left after flag parsing.
    doc: the usage text of --help: the binary's docstring.
    key_flag_modules: the modules whose flags --help lists (the binary's own included).

  Example:
    >>> def run():  # tfrs_smoe/binaries/train.py: the console script tfrs-smoe-train.
    ...   cli.run(main, __doc__, [sys.modules[__name__], cli])
  """
  values = flags.FLAGS
  main_module = sys.argv[0]
  # (A binary run as `python -m` is "__main__", whose flags are the main module's already.)
  for module in key_flag_modules:
    for flag in values.get_key_flags_for_module(module.__name__):
      values.register_key_flag_for_module(main_module, flag)
  for name in _ABSL_KEY_FLAGS:
    if name in values:
      values.register_key_flag_for_module(main_module, values[name])
  if sys.modules.get("__main__") is not None:
    sys.modules["__main__"].__doc__ = doc
  app.run(main)
