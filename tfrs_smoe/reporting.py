"""Runs of whole experiments for comparison scripts, and their markdown tables.

`run_experiment` trains a config once and tests it; `mean_std`, `table_header` and `table_rows`
turn several seeds' results into the tables of docs/results.md. Used by the sweep runner
(`tfrs_smoe/sweep.py`, behind experiments/sweep.py and the comparison scripts);
`replace_generated_section` writes a report into docs/results.md.

Example (the popularity baseline on a tiny watch log written here):
  >>> os.makedirs("my_log", exist_ok=True)
  >>> rows = [f"u{u},m{(3 * u + i) % 7},{1704067200 + 3600 * i},0.9"
  ...         for u in range(10) for i in range(5)]  # 10 users, 5 positives each.
  >>> with open("my_log/interactions.csv", "w", encoding="utf-8") as f:
  ...   _ = f.write("user_id,item_id,timestamp,engagement\\n" + "\\n".join(rows) + "\\n")
  >>> config = config_lib.apply_overrides(config_lib.ExperimentConfig(), {
  ...     "model": {"name": "popularity"},
  ...     "data": {"dataset": "watch_log", "data_dir": "my_log", "tfds_data_dir": "tfds"}})
  >>> outcome = run_experiment(config, "runs/popularity_seed0")
  >>> round(outcome.results["full_ranking"]["ndcg@10"], 3), outcome.epochs  # Counted, no epochs.
  (0.725, 0)
  >>> mean_std([0.70, 0.72, 0.74])  # Over seeds, for the tables.
  '0.7200 ± 0.0163'
"""

import dataclasses
import datetime
import json
import os
import platform
import time
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tfrs_smoe import config as config_lib
from tfrs_smoe import experiment as experiment_lib
from tfrs_smoe import run_directory


@dataclasses.dataclass
class RunOutcome:
  """One trained and tested run.

  Attributes:
    seed: the run's seed.
    results: protocol -> metric -> value on the test targets.
    epochs: epochs trained, counting those before a resume (0 for models without epochs).
    train_seconds: wall time of `Experiment.fit` (of its last start, for a run resumed from a
      backup).
    epochs_run: epochs of that last start, the ones `train_seconds` covers; None in outcomes
      written before this field existed, which count as `epochs`.
    machine: `machine_description()` of the machine that ran it, so that a report rebuilt
      from stored outcomes names where its times were taken; None in older outcomes.
  """

  seed: int
  results: Dict[str, Dict[str, float]]
  epochs: int
  train_seconds: float
  epochs_run: Optional[int] = None
  machine: Optional[str] = None

  @property
  def seconds_per_epoch(self) -> float:
    """Training seconds per epoch, from the epochs `train_seconds` covers (0 without any)."""
    epochs = self.epochs if self.epochs_run is None else self.epochs_run
    return self.train_seconds / epochs if epochs else 0.0


def run_experiment(config: config_lib.ExperimentConfig, model_dir: str,
                   resume: bool = False) -> RunOutcome:
  """Writes params.yaml, trains (early stopping on validation), tests; returns the outcome.

  The outcome is also written to `model_dir`/outcome.json. With `resume`, a `model_dir` whose
  outcome.json exists and whose params.yaml equals `config`, data locations aside
  (`data.data_dir`, `data.tfds_data_dir`: where the same data lies, as when a run directory
  resumes), is not run again: its stored outcome is returned (so an interrupted comparison
  continues where it stopped, and stored records rebuild a report on another machine).
  """
  outcome_path = os.path.join(model_dir, "outcome.json")
  if resume and os.path.exists(outcome_path) and os.path.exists(
      os.path.join(model_dir, "params.yaml")):
    if not run_directory.config_differences(config_lib.load_params(model_dir), config):
      with open(outcome_path, encoding="utf-8") as f:
        return RunOutcome(**json.load(f))
  if os.path.exists(outcome_path):
    os.remove(outcome_path)  # Stale: a run interrupted from here on must not look finished.
  run = run_directory.RunDirectory(model_dir)
  try:
    run.begin(config)  # Resumes the backup of a killed run of this config.
  except run_directory.RunDirectoryError:
    run.begin(config, overwrite=True)  # Another run's, or a finished run without an outcome.
  config_lib.save_params(config, model_dir)
  experiment = experiment_lib.Experiment(config, model_dir)
  split = experiment.prepare_data()
  start = time.time()
  model = experiment.fit(split)
  seconds = time.time() - start
  history = getattr(model, "history", None)
  # The epochs this fit ran; their numbers count from the first epoch even when it resumed
  # from a backup.
  epoch_numbers = history.epoch if history is not None else []
  epochs = epoch_numbers[-1] + 1 if epoch_numbers else 0
  results = experiment.evaluate(model, split, "test")
  experiment.write_results(results, "test")
  outcome = RunOutcome(config.seed, results, epochs, seconds, len(epoch_numbers),
                       machine_description())
  with open(outcome_path, "w", encoding="utf-8") as f:
    json.dump(dataclasses.asdict(outcome), f, indent=2)
  return outcome


# Data config of each comparison data set and the protocol "default" stands for: engagement
# for the embedded default, implicit for MovieLens (as the SASRec literature does).
DATASETS = {
    "streaming_logs": ({"dataset": "streaming_logs"}, "engagement"),
    "movielens": ({"dataset": "movielens/latest-small"}, "implicit"),
}


def data_configs(datasets: Sequence[str], protocols: Sequence[str], movielens_dir: str,
                 tfds_data_dir: str = "") -> Iterator[Tuple[str, Dict[str, object]]]:
  """(protocol, `DataConfig` overrides) of every data set and protocol of a comparison.

  Args:
    datasets: keys of `DATASETS`.
    protocols: "default", "implicit" and/or "engagement".
    movielens_dir: raw MovieLens latest-small files; MovieLens is skipped with a printed
      message when the directory does not exist.
    tfds_data_dir: where TFDS prepares the data sets ("" = TFDS default).
  """
  for dataset in datasets:
    if dataset not in DATASETS:
      raise ValueError(f"Unknown data set {dataset!r}; use {', '.join(DATASETS)}.")
    data, default_protocol = DATASETS[dataset]
    data = {**data, "tfds_data_dir": tfds_data_dir}
    if dataset == "movielens":
      if not os.path.isdir(movielens_dir):
        print(f"Skipping MovieLens: {movielens_dir} does not exist.")
        continue
      data["data_dir"] = movielens_dir
    for protocol in protocols:
      protocol = default_protocol if protocol == "default" else protocol
      if protocol not in ("implicit", "engagement"):
        raise ValueError(f"Unknown protocol {protocol!r}; use default, implicit, engagement.")
      yield protocol, {**data, "implicit": protocol == "implicit"}


def mean_std(values: Sequence[float]) -> str:
  """"mean ± std" with 4 decimals (population std; 0 for one value)."""
  return f"{np.mean(values):.4f} ± {np.std(values):.4f}"


def table_rows(labels: Sequence[str], outcomes: List[RunOutcome],
               columns: Sequence[str]) -> List[str]:
  """One markdown row per evaluation protocol: labels, mean ± std per column, test users,
  mean epochs and mean training seconds."""
  rows = []
  for protocol in outcomes[0].results:
    cells = [mean_std([o.results[protocol][c] for o in outcomes]) for c in columns]
    rows.append("| " + " | ".join([*labels, protocol.replace("_", " "), *cells,
                                   str(int(outcomes[0].results[protocol]["num_examples"])),
                                   f"{np.mean([o.epochs for o in outcomes]):.0f}",
                                   f"{np.mean([o.train_seconds for o in outcomes]):.0f}"]) + " |")
  return rows


def table_header(labels: Sequence[str], columns: Sequence[str]) -> List[str]:
  """The header and rule of the table `table_rows` fills."""
  names = [*labels, "evaluation", *columns, "test users", "epochs", "train s/run"]
  return ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]


def write_report(output_dir: str, name: str, script: str, note: str, lines: List[str],
                 runs: Dict[str, List[RunOutcome]]) -> str:
  """Writes <name>.md (the table under a line naming the script and date) and <name>.json."""
  os.makedirs(output_dir, exist_ok=True)
  with open(os.path.join(output_dir, f"{name}.json"), "w", encoding="utf-8") as f:
    json.dump({key: [dataclasses.asdict(o) for o in outcomes] for key, outcomes in runs.items()},
              f, indent=2)
  path = os.path.join(output_dir, f"{name}.md")
  with open(path, "w", encoding="utf-8") as f:
    f.write(f"Generated by {script} on {datetime.date.today().isoformat()} ({note}).\n\n"
            + "\n".join(lines) + "\n")
  return path


def _generated_parts(document_path: str, name: str) -> Tuple[str, str, str, str, str]:
  """(text before, begin marker, section, end marker, text after) of a document's section."""
  begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
  with open(document_path, encoding="utf-8") as f:
    document = f.read()
  if document.count(begin) != 1 or document.count(end) != 1 or (
      document.index(begin) > document.index(end)):
    raise ValueError(f"{document_path} needs the lines {begin!r} and {end!r} once each, in "
                     "that order, around the section to generate.")
  head, rest = document.split(begin)
  section, tail = rest.split(end)
  return head, begin, section, end, tail


def generated_section(document_path: str, name: str) -> str:
  """The text between `<!-- begin NAME -->` and `<!-- end NAME -->` in a document.

  Raises:
    ValueError: when the document does not hold each marker exactly once, begin first.
  """
  return _generated_parts(document_path, name)[2].strip()


def replace_generated_section(document_path: str, name: str, text: str) -> None:
  """Replaces the text between `<!-- begin NAME -->` and `<!-- end NAME -->` in a document.

  Lets a script regenerate its section of docs/results.md in place while the hand-written text
  around it stays; the markers are kept.

  Args:
    document_path: the markdown file to edit.
    name: the section's name in its markers, e.g. "experiments/report.py".
    text: the section's new content.

  Raises:
    ValueError: when the document does not hold each marker exactly once, begin first.
  """
  head, begin, _, end, tail = _generated_parts(document_path, name)
  with open(document_path, "w", encoding="utf-8") as f:
    f.write(f"{head}{begin}\n{text.strip()}\n{end}{tail}")


def machine_info() -> Dict[str, object]:
  """CPU model, cores, Python and TensorFlow versions of this machine."""
  cpu = platform.processor() or "unknown"
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("model name"):
          cpu = line.split(":", 1)[1].strip()
          break
  except OSError:
    pass
  return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
          "tensorflow": tf.__version__}


def machine_description() -> str:
  """One line naming this machine, e.g. "AMD EPYC, 2 cores, TensorFlow 2.21.0"."""
  info = machine_info()
  return f"{info['cpu']}, {info['cores']} cores, TensorFlow {info['tensorflow']}"
