"""One sweep runner for every comparison: data sets x variants x seeds, then tables and plots.

`Sweep` trains (or, with `resume`, reuses) every variant of a `variants.VariantSet` once per seed
on each data set and protocol, through `reporting.run_experiment`, and writes the set's outputs
into `output_dir`:
- one table over every data set, <stem>.md and <stem>.json (and <stem>.png, NDCG@1 per variant
  under full ranking beside the PHNS test, for sets with `plot`); or, for `per_dataset` sets
  (the quality report), per data set <stem>_<data set>.md and .json with plots of the metrics
  (_metrics.png), of the gate weights of the first S-MoE-BST variant (_gates.png) and of the
  validation curves (_curves.png);
- each run's artifacts under `run_dir` of the set.
Each table gives mean ± std over seeds of the set's columns per evaluation protocol, the test
users, the epochs, the training seconds per run and per epoch (and a machine column when the runs
trained on more than one machine: seconds compare only within one). The line above it names the
date, the seeds, the machine(s) and the command that reproduces it. With `readme`, each report
and its plots (copied into the readme's docs/ folder) replace the readme's generated section.

A deterministic variant (popularity) runs once, with seed 0. A run's records (params.yaml,
outcome.json, history.json, test_gate_weights.npz) are all that `resume` reads, so a report is
rebuilt from them without training.

`define_flags` and `run_from_flags` give the binaries (experiments/sweep.py and the older
comparison scripts) the same flags and the same loop.

Example (the popularity baseline on a tiny watch log written here, in place of streaming_logs):
  >>> os.makedirs("my_log", exist_ok=True)
  >>> rows = [f"u{u},m{(3 * u + i) % 7},{1704067200 + 3600 * i},0.9"
  ...         for u in range(10) for i in range(5)]  # 10 users, 5 positives each.
  >>> with open("my_log/interactions.csv", "w", encoding="utf-8") as f:
  ...   _ = f.write("user_id,item_id,timestamp,engagement\\n" + "\\n".join(rows) + "\\n")
  >>> from tfrs_smoe import sweep, variants
  >>> runs = sweep.Sweep(variants.get("models").select(["popularity"]),
  ...                    datasets=["streaming_logs"], seeds=[0, 1], output_dir="runs/models",
  ...                    tfds_data_dir="tfds", dataset_params_override=(
  ...                        '{"streaming_logs": {"data": {"dataset": "watch_log", '
  ...                        '"data_dir": "my_log"}}}')).run()  # Deterministic: seed 0 only.
  | watch_log | engagement | popularity | full ranking | 0.3667 ± 0.0000 | 0.7248 ± 0.0000 | ...
  ...
  Written to runs/models/model_comparison.md
  >>> sorted(runs)
  ['watch_log/engagement/popularity']
  >>> sorted(os.listdir("runs/models/watch_log"))
  ['popularity_engagement_seed0']
"""

import dataclasses
import hashlib
import json
import os
import shutil
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from absl import flags
import numpy as np

from tfrs_smoe import config as config_lib
from tfrs_smoe import experiment as experiment_lib
from tfrs_smoe import reporting
from tfrs_smoe import variants as variants_lib
from tfrs_smoe.evaluation import metrics as metrics_lib

# (variant, its run directories over seeds, baseline, its run directories) -> markdown lines
# put under the table: the hook for paired per-user comparisons of the set's `pairs`.
PairComparison = Callable[[str, Sequence[str], str, Sequence[str]], Sequence[str]]


def parse_dataset_overrides(text: str) -> Dict[str, Dict[str, Any]]:
  """{data set: overrides} of a `--dataset_params_override` text (inline or a file), checked.

  Raises:
    ValueError: when it is not a mapping of mappings, names a data set outside
      `reporting.DATASETS`, or a config key that does not exist (before any training).
  """
  overrides = config_lib.read_yaml(text) if text else {}
  overrides = overrides or {}
  if not isinstance(overrides, dict) or not all(isinstance(v, dict) for v in overrides.values()):
    raise ValueError("--dataset_params_override must map data sets to mappings, got "
                     f"{overrides!r}.")
  unknown = set(overrides) - set(reporting.DATASETS)
  if unknown:
    raise ValueError(f"--dataset_params_override names unknown data sets {sorted(unknown)}; "
                     f"use {', '.join(reporting.DATASETS)}.")
  for dataset, dataset_overrides in overrides.items():  # Unknown config keys fail here too.
    config_lib.apply_overrides(config_lib.ExperimentConfig(), dataset_overrides, f"{dataset}: ")
  return overrides


@dataclasses.dataclass
class _Run:
  """One planned run: its config and directory."""

  variant: str
  config: config_lib.ExperimentConfig
  model_dir: str


@dataclasses.dataclass
class _Group:
  """The runs of one data set and protocol, variant by variant."""

  data: str
  protocol: str
  runs: Dict[str, List[_Run]]

  @property
  def dataset(self) -> str:
    return next(iter(self.runs.values()))[0].config.data.dataset


@dataclasses.dataclass
class Sweep:
  """Trains and tests every variant of a set over data sets and seeds; writes its reports.

  Attributes:
    variant_set: the variants to run (`variants.get(name).select(names)`).
    datasets: keys of `reporting.DATASETS` ("streaming_logs", "movielens"); MovieLens is
      skipped with a message when `movielens_dir` does not exist.
    seeds: seeds of every non-deterministic variant.
    output_dir: where the runs, reports and plots go.
    protocols: "default", "implicit" and/or "engagement"; empty: the set's.
    movielens_dir: raw MovieLens latest-small files.
    tfds_data_dir: where TFDS prepares the data sets ("" = TFDS default).
    dataset_params_override: YAML/JSON text or file mapping a data set to overrides of its
      runs, applied under the variants' own settings (`variants.resolve`).
    params_override: YAML/JSON text or file applied to every run, last.
    resume: reuse finished runs whose params.yaml matches (their outcome.json).
    readme: also write each report into this markdown file (e.g. docs/results.md) between its
      `<!-- begin SECTION -->` / `<!-- end SECTION -->` lines (the set's `readme_section`, plus
      " <data set>" per data set for `per_dataset` sets), with the plots copied into its docs/.
    script: the binary named in each report's first line and command.
    variants_flag: the flag that names the variants in that command ("variants", "models").
    command_flags: (flag, value) pairs put first in that command (e.g. ("variant_set",
      "report")).
    pair_comparison: optional hook called with the run directories of each of the set's
      `pairs` that ran, per data set and protocol; the lines it returns go under the table.
  """

  variant_set: variants_lib.VariantSet
  datasets: Sequence[str] = ("streaming_logs", "movielens")
  seeds: Sequence[int] = (0, 1, 2)
  output_dir: str = "runs/sweep"
  protocols: Sequence[str] = ()
  movielens_dir: str = "../shared/data/ml-latest-small"
  tfds_data_dir: str = ""
  dataset_params_override: str = ""
  params_override: str = ""
  resume: bool = False
  readme: str = ""
  script: str = "experiments/sweep.py"
  variants_flag: str = "variants"
  command_flags: Sequence[Tuple[str, str]] = ()
  pair_comparison: Optional[PairComparison] = None

  def __post_init__(self):
    self.seeds = [int(seed) for seed in self.seeds]
    if not self.seeds:
      raise ValueError("A sweep needs at least one seed.")
    self.protocols = list(self.protocols or self.variant_set.protocols)
    if not self.variant_set.show_protocol and len(self.protocols) != 1:
      raise ValueError(f"Variant set {self.variant_set.name!r} runs one protocol, got "
                       f"{self.protocols}.")
    if self.variant_set.per_dataset and len(self.protocols) != 1:
      raise ValueError(f"Variant set {self.variant_set.name!r} writes one report per data set "
                       f"and runs one protocol, got {self.protocols}.")

  def run(self) -> Dict[str, List[reporting.RunOutcome]]:
    """Plans every run (checking every config and the readme first), trains and tests them,
    writes the reports; returns the outcomes by the set's `run_key`."""
    dataset_overrides = parse_dataset_overrides(self.dataset_params_override)
    groups = self._plan(dataset_overrides)
    if self.readme:  # Fails before hours of training when the readme has no place for them.
      for section in self._readme_sections(groups):
        reporting.generated_section(self.readme, section)
    pyplot = _pyplot()
    outcomes: Dict[str, List[reporting.RunOutcome]] = {}
    done: List[Tuple[_Group, Dict[str, List[reporting.RunOutcome]]]] = []
    for data in dict.fromkeys(group.data for group in groups):
      data_groups = []
      for group in (g for g in groups if g.data == data):
        group_outcomes = {}
        for variant, runs in group.runs.items():
          group_outcomes[variant] = [reporting.run_experiment(run.config, run.model_dir,
                                                              resume=self.resume)
                                     for run in runs]
          print("\n".join(self._rows(group, variant, group_outcomes[variant])), flush=True)
          outcomes[self._key(group, variant)] = group_outcomes[variant]
        data_groups.append((group, group_outcomes))
      done.extend(data_groups)
      if self.variant_set.per_dataset:
        self._write(f"{self.variant_set.stem}_{data}", [data], data_groups, pyplot,
                    f"{self.variant_set.readme_section} {data}")
    if not self.variant_set.per_dataset:
      self._write(self.variant_set.stem, list(dict.fromkeys(g.data for g, _ in done)), done,
                  pyplot, self.variant_set.readme_section)
    return outcomes

  def _plan(self, dataset_overrides) -> List[_Group]:
    """Every run's config and directory, built before any training so a bad override fails
    first."""
    groups = []
    for dataset in self.datasets:
      for protocol, data in reporting.data_configs([dataset], self.protocols,
                                                   self.movielens_dir, self.tfds_data_dir):
        runs = {}
        for variant in self.variant_set.variants:
          runs[variant.name] = []
          for seed in [0] if variant.deterministic else self.seeds:
            config = variants_lib.resolve(self.variant_set, variant.name, data, seed,
                                          dataset_overrides.get(dataset, {}),
                                          self.params_override)
            run_dir = self.variant_set.run_dir.format(
                data=dataset, dataset=config.data.dataset,
                dataset_dir=config.data.dataset.replace("/", "_"), protocol=protocol,
                variant=variant.name, seed=seed)
            runs[variant.name].append(_Run(variant.name, config,
                                           os.path.join(self.output_dir, run_dir)))
        groups.append(_Group(dataset, protocol, runs))
    return groups

  def _readme_sections(self, groups: List[_Group]) -> List[str]:
    if not self.variant_set.per_dataset:
      return [self.variant_set.readme_section]
    return [f"{self.variant_set.readme_section} {data}"
            for data in dict.fromkeys(group.data for group in groups)]

  def _key(self, group: _Group, variant: str) -> str:
    return self.variant_set.run_key.format(
        data=group.data, dataset=group.dataset, dataset_dir=group.dataset.replace("/", "_"),
        protocol=group.protocol, variant=variant)

  def _labels(self, group: _Group, variant: str) -> List[str]:
    return [group.dataset, *([group.protocol] if self.variant_set.show_protocol else []),
            variant]

  def _rows(self, group: _Group, variant: str,
            outcomes: List[reporting.RunOutcome]) -> List[str]:
    """The table rows of one variant, with its mean training seconds per epoch."""
    per_epoch = np.mean([o.seconds_per_epoch for o in outcomes])
    return [f"{row} {per_epoch:.1f} |" for row in reporting.table_rows(
        self._labels(group, variant), outcomes, self.variant_set.columns)]

  def _command(self, datasets: Sequence[str]) -> str:
    """The command line that reproduces a report of `datasets`."""
    names = [variant.name for variant in self.variant_set.variants]
    command = (f"python {self.script}"
               + "".join(f" --{name}={value}" for name, value in self.command_flags)
               + f" --seeds={','.join(map(str, self.seeds))} --datasets={','.join(datasets)} "
               f"--{self.variants_flag}={','.join(names)}")
    if list(self.protocols) != list(self.variant_set.protocols):
      command += f" --protocols={','.join(self.protocols)}"
    for name in ("dataset_params_override", "params_override"):
      if getattr(self, name):
        command += f" --{name}='{getattr(self, name)}'"
    return command

  def _write(self, name: str, datasets: Sequence[str],
             done: List[Tuple[_Group, Dict[str, List[reporting.RunOutcome]]]], pyplot,
             readme_section: str) -> None:
    """Writes the report `name` (.md, .json, plots) of `done`, and its readme section."""
    if not done:
      print("No data set ran: no report.")
      return
    keyed = {self._key(group, variant): outcomes
             for group, group_outcomes in done for variant, outcomes in group_outcomes.items()}
    machines, machine_of = _machines(keyed)
    labels = ["data", *(["protocol"] if self.variant_set.show_protocol else []),
              self.variant_set.label]
    lines = reporting.table_header(labels, self.variant_set.columns)
    lines[0] += " s/epoch |" + (" machine |" if machine_of else "")
    lines[1] += "---|" * (2 if machine_of else 1)
    for group, group_outcomes in done:
      for variant, outcomes in group_outcomes.items():
        rows = self._rows(group, variant, outcomes)
        key = self._key(group, variant)
        lines.extend(f"{row} {machine_of[key]} |" if machine_of else row for row in rows)
    lines.extend(self._pair_lines(done))
    note = (f"seeds {', '.join(map(str, self.seeds))}; {machines}; command: "
            f"{self._command(datasets)}")
    path = reporting.write_report(self.output_dir, name, self.script, note, lines, keyed)
    if not self.variant_set.per_dataset:
      print("\n".join(lines))
    print(f"Written to {path}")
    plots = self._plots(name, done, pyplot) if pyplot is not None else []
    if self.readme:
      self._write_into_readme(readme_section, path, plots)

  def _pair_lines(self, done) -> List[str]:
    """The `pair_comparison` hook's lines for each of the set's pairs that ran."""
    if self.pair_comparison is None:
      return []
    lines = []
    for group, _ in done:
      for first, second in self.variant_set.pairs:
        if first in group.runs and second in group.runs:
          lines.extend(self.pair_comparison(
              first, [run.model_dir for run in group.runs[first]],
              second, [run.model_dir for run in group.runs[second]]))
    return ["", *lines] if lines else []

  def _plots(self, name: str, done, pyplot) -> List[Tuple[str, str]]:
    """Draws the report's plots; returns their (title, file name)."""
    plots = []
    if not self.variant_set.per_dataset:
      if self.variant_set.plot and done:
        plots.append(("NDCG@1 per variant, standard and PHNS test", f"{name}.png"))
        _plot_ndcg_at_1(pyplot, [(self._panel_title(g), outcomes) for g, outcomes in done],
                        os.path.join(self.output_dir, plots[-1][1]))
        print(f"Plot written to {os.path.join(self.output_dir, plots[-1][1])}")
      return plots
    for group, group_outcomes in done:
      title = self._panel_title(group)
      gate_run, curve_runs = None, {}
      for variant, runs in group.runs.items():
        if self.variant_set.variant(variant).deterministic:
          continue
        curve_runs[variant] = runs[0].model_dir
        if runs[0].config.model.name == "smoe_bst" and gate_run is None:
          gate_run = runs[0].model_dir
      plots.append(("Full-ranking NDCG@10 and PHNS-test NDCG@1 per variant",
                    f"{name}_metrics.png"))
      _plot_metrics(pyplot, group_outcomes, title, os.path.join(self.output_dir, plots[-1][1]))
      if gate_run:
        plots.append(("Gate weight per expert over test users", f"{name}_gates.png"))
        _plot_gates(pyplot, gate_run, title, os.path.join(self.output_dir, plots[-1][1]))
      if curve_runs:
        plots.append(("Validation NDCG@10 per epoch", f"{name}_curves.png"))
        _plot_curves(pyplot, curve_runs, title, os.path.join(self.output_dir, plots[-1][1]))
    print(f"Plots written to {self.output_dir}")
    return plots

  def _panel_title(self, group: _Group) -> str:
    return (f"{group.dataset} ({group.protocol})" if self.variant_set.show_protocol
            else group.dataset)

  def _write_into_readme(self, section: str, report_path: str,
                         plots: List[Tuple[str, str]]) -> None:
    """Puts a report and its plots (copied into the readme's docs/ folder) into the readme."""
    # The readme's docs/ folder: the one it is in (docs/results.md), or the one beside it.
    folder = os.path.dirname(os.path.abspath(self.readme))
    docs = folder if os.path.basename(folder) == "docs" else os.path.join(folder, "docs")
    os.makedirs(docs, exist_ok=True)
    with open(report_path, encoding="utf-8") as f:
      sections = [f.read().strip()]
    for title, name in plots:
      shutil.copyfile(os.path.join(self.output_dir, name), os.path.join(docs, name))
      sections.append(f"![{title}]({os.path.relpath(os.path.join(docs, name), folder)})")
    reporting.replace_generated_section(self.readme, section, "\n\n".join(sections))
    print(f"Report written into {self.readme}")


def _machines(runs: Mapping[str, List[reporting.RunOutcome]]
              ) -> Tuple[str, Optional[Dict[str, str]]]:
  """(note naming the machines the runs trained on, key -> their letters or None).

  Training seconds compare only between runs of one machine: when a report's runs trained on
  more than one, the machines get letters (A, B, ...) that the note keys and the table's machine
  column gives per variant; with one machine the note is its name and there is no column.
  """
  names = {key: [o.machine or "machine not recorded" for o in outcomes]
           for key, outcomes in runs.items()}
  machines = sorted({name for per in names.values() for name in per})
  if len(machines) == 1:
    return machines[0], None
  letters = {name: chr(ord("A") + i) for i, name in enumerate(machines)}
  note = ("; ".join(f"{letters[name]} = {name}" for name in machines)
          + "; s/epoch compares runs of one machine only")
  return note, {key: ", ".join(sorted({letters[name] for name in per}))
                for key, per in names.items()}


def _pyplot():
  """matplotlib's pyplot on the Agg backend, or None (with a message) when not installed."""
  try:
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    from matplotlib import pyplot  # pylint: disable=import-outside-toplevel
    return pyplot
  except ImportError:
    print("matplotlib is not installed: no plots (pip install -e '.[plots]').")
    return None


def _plot_metrics(pyplot, runs, title, path):
  """Bars of NDCG@10 (full ranking) and NDCG@1 (PHNS test) per variant of one data set."""
  names = list(runs)
  figure, axis = pyplot.subplots(figsize=(9, 3.2))
  positions = np.arange(len(names))
  for offset, (protocol, metric) in ((-0.2, ("full_ranking", "ndcg@10")),
                                     (0.2, ("phns_test", "ndcg@1"))):
    values = [[o.results[protocol][metric] for o in runs[v] if protocol in o.results] or [0.0]
              for v in names]
    axis.bar(positions + offset, [np.mean(v) for v in values], 0.4,
             yerr=[np.std(v) for v in values], label=f"{metric} ({protocol.replace('_', ' ')})")
  axis.set_xticks(positions, names, rotation=20, fontsize=8)
  axis.set_title(title)
  axis.legend(fontsize=8)
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  pyplot.close(figure)


def _plot_ndcg_at_1(pyplot, panels, path):
  """Bars of mean NDCG@1 per variant, full ranking beside the PHNS test, one panel per
  (title, {variant: outcomes})."""
  figure, axes = pyplot.subplots(1, len(panels), figsize=(5 * len(panels), 3.5), squeeze=False)
  for axis, (title, runs) in zip(axes[0], panels):
    names = list(runs)
    positions = np.arange(len(names))
    for offset, protocol in ((-0.2, "full_ranking"), (0.2, "phns_test")):
      values = [[o.results[protocol]["ndcg@1"] for o in runs[v] if protocol in o.results]
                or [0.0] for v in names]
      axis.bar(positions + offset, [np.mean(v) for v in values], 0.4,
               yerr=[np.std(v) for v in values], label=protocol.replace("_", " "))
    axis.set_xticks(positions, names)
    axis.set_title(title)
    axis.set_ylabel("NDCG@1")
    axis.legend()
  figure.tight_layout()
  figure.savefig(path, dpi=120)
  pyplot.close(figure)


def gate_weights(model_dir: str) -> np.ndarray:
  """[test users, experts] gate weights of the S-MoE-BST run in `model_dir`.

  Kept in the run's test_gate_weights.npz with the SHA-256 of its outcome.json, so that the
  runs' records rebuild a report without their checkpoints, and a run trained anew in the same
  directory is not plotted with its old weights.
  """
  path = os.path.join(model_dir, "test_gate_weights.npz")
  with open(os.path.join(model_dir, "outcome.json"), "rb") as f:
    outcome_sha256 = hashlib.sha256(f.read()).hexdigest()
  if os.path.exists(path):
    with np.load(path) as stored:
      if str(stored["outcome_sha256"]) == outcome_sha256:
        return stored["weights"]
  experiment = experiment_lib.Experiment(config_lib.load_params(model_dir), model_dir)
  split = experiment.prepare_data()
  model = experiment.restore(split)
  weights = np.concatenate([
      model.user_vector(features)[1].numpy() for _, _, features in
      metrics_lib.batched_model_inputs(split.test, experiment.config.data.max_len, 512)])
  np.savez(path, weights=weights, outcome_sha256=outcome_sha256)
  return weights


def _plot_gates(pyplot, model_dir, title, path):
  """Histograms over test users of each expert's gate weight."""
  weights = gate_weights(model_dir)
  figure, axis = pyplot.subplots(figsize=(5, 3.2))
  for expert in range(weights.shape[1]):
    axis.hist(weights[:, expert], bins=30, range=(0, 1), alpha=0.6, label=f"expert {expert}")
  axis.set_title(f"{title}: gate weights of test users")
  axis.set_xlabel("gate weight")
  axis.legend(fontsize=8)
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  pyplot.close(figure)


def _plot_curves(pyplot, curve_runs, title, path):
  """Validation NDCG@10 per epoch of each variant's first seed."""
  figure, axis = pyplot.subplots(figsize=(6, 3.5))
  for variant, model_dir in curve_runs.items():
    with open(os.path.join(model_dir, "history.json"), encoding="utf-8") as f:
      values = json.load(f).get("val_ndcg@10", [])
    axis.plot(np.arange(1, len(values) + 1), values, label=variant)
  axis.set_title(title)
  axis.set_xlabel("epoch")
  axis.set_ylabel("validation NDCG@10")
  axis.legend(fontsize=7)
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  pyplot.close(figure)


def define_flags(variant_set: str, output_dir: str, variants_flag: str = "variants",
                 choose_set: bool = False,
                 default_variants: Optional[Sequence[str]] = None) -> None:
  """Defines the flags every sweep binary shares (absl), with the defaults of `variant_set`.

  Args:
    variant_set: the registered set the binary runs (the default of --variant_set).
    output_dir: default of --output_dir.
    variants_flag: name of the flag listing the variants ("variants", "models", "presets",
      "corrections"); its default is every variant of the set.
    choose_set: also define --variant_set (experiments/sweep.py); its --variants then defaults
      to every variant of the chosen set.
    default_variants: default of the variants flag when not every variant of the set (a
      binary whose documented commands predate a variant keeps its old default).
  """
  chosen = variants_lib.get(variant_set)
  if default_variants is None:
    default_variants = [] if choose_set else [v.name for v in chosen.variants]
  chosen.select(default_variants)  # Unknown names fail at import, not after training.
  if choose_set:
    flags.DEFINE_string("variant_set", variant_set, "Registered variant set to run: "
                        f"{', '.join(variants_lib.names())}.")
  flags.DEFINE_string("output_dir", output_dir, "Where the runs, reports and plots go.")
  flags.DEFINE_string("movielens_dir", "../shared/data/ml-latest-small", "Raw MovieLens "
                      "latest-small files; skipped when absent.")
  flags.DEFINE_string("tfds_data_dir", "", "Where TFDS prepares the data sets ('' = TFDS "
                      "default).")
  flags.DEFINE_list(variants_flag, list(default_variants),
                    "Variants of the set to run, in table order (empty: all).")
  flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds; deterministic variants (popularity) "
                    "run once.")
  flags.DEFINE_list("datasets", ["streaming_logs", "movielens"], "Data sets to run: "
                    f"{', '.join(reporting.DATASETS)}.")
  flags.DEFINE_list("protocols", [], "default, implicit and/or engagement (empty: the set's, "
                    "'default': engagement for streaming_logs, implicit for MovieLens).")
  flags.DEFINE_string("dataset_params_override", "", "YAML/JSON mapping (inline or a file) "
                      "from data set (streaming_logs, movielens) to overrides of that data "
                      "set's runs, applied before each variant's own settings.")
  flags.DEFINE_string("params_override", "", "YAML/JSON mapping applied to every run, last.")
  flags.DEFINE_bool("resume", False, "Reuse finished runs whose params.yaml matches (their "
                    "outcome.json) instead of training them again.")
  flags.DEFINE_string("readme", "", "Also write the report(s) into this markdown file (e.g. "
                      "docs/results.md) between its '<!-- begin SECTION -->' and '<!-- end "
                      "SECTION -->' lines, with the plots copied into its docs/ folder (the "
                      "one it is in, or the one beside it).")


def run_from_flags(script: str, variants_flag: str = "variants",
                   variant_set: Optional[variants_lib.VariantSet] = None,
                   command_flags: Sequence[Tuple[str, str]] = (),
                   ) -> Dict[str, List[reporting.RunOutcome]]:
  """Runs the sweep of the flags `define_flags` defined; returns its outcomes.

  Args:
    script: the binary, named in each report's first line and command.
    variants_flag: the flag that lists the variants.
    variant_set: the set to run (default: --variant_set's), before --<variants_flag> selects.
    command_flags: (flag, value) pairs the report's command names first.
  """
  values = flags.FLAGS
  if variant_set is None:
    variant_set = variants_lib.get(values.variant_set)
    command_flags = [("variant_set", variant_set.name), *command_flags]
  return Sweep(variant_set.select(values[variants_flag].value), datasets=values.datasets,
               seeds=values.seeds, output_dir=values.output_dir, protocols=values.protocols,
               movielens_dir=values.movielens_dir, tfds_data_dir=values.tfds_data_dir,
               dataset_params_override=values.dataset_params_override,
               params_override=values.params_override, resume=values.resume,
               readme=values.readme, script=script, variants_flag=variants_flag,
               command_flags=tuple(command_flags)).run()
