r"""The quality report: every model and S-MoE-BST component, over seeds, on both data sets.

Trains and tests each variant below once per seed on the embedded default (engagement protocol)
and on MovieLens latest-small (implicit protocol; skipped with a message when --movielens_dir
does not exist), with early stopping on validation, and writes into --output_dir, per data set
(streaming_logs, movielens):
- report_<data set>.md: the command, date and machine, then a table of mean +- std of
  NDCG@{1,5,10}, Recall@{5,10} and MRR@5 under full ranking and under the PHNS test, with the
  epochs and the training seconds per epoch of each variant (the cost beside the gain);
- report_<data set>_metrics.png: NDCG@10 (full ranking) and NDCG@1 (PHNS test) per variant;
- report_<data set>_gates.png: histograms over test users of the gate weight per expert of the
  first S-MoE-BST variant run (seed 0);
- report_<data set>_curves.png: validation NDCG@10 per epoch (seed 0) of every trained variant;
- report_<data set>.json and each run's artifacts (model_dir per data set / variant / seed).
With --readme=README.md, each data set's report and plots (copied into docs/) also replace the
section between the readme's `<!-- begin experiments/report.py <data set> -->` and `<!-- end
experiments/report.py <data set> -->` lines as soon as that data set is done, so the README's
results are the report's own text, and a report of one data set leaves the other's section be.
--dataset_params_override sets one data set's training (e.g. MovieLens' dropout and schedule)
under the variants, which still switch their own components on or off.
Plots need matplotlib (`pip install -e ".[plots]"`). Runs whose params.yaml matches are reused
with --resume, so an interrupted report goes on where it stopped. Cost: 22 trainings per data
set; on 2-core CPUs the embedded default's took 1.4 hours and MovieLens' 2.8 hours (a
S-MoE-BST training 6 to 20 minutes, by machine and early stopping).
A run's records, params.yaml, outcome.json, history.json and (S-MoE-BST) test_gate_weights.npz,
are all that --resume reads: with only those in --output_dir, the report and its plots are
rebuilt without training. The repository keeps the records of the README's runs in
docs/report_runs (its .gitignore keeps nothing else), so the README's command with
`--output_dir=docs/report_runs --resume --readme=README.md` rebuilds its sections.

  python experiments/report.py --output_dir=runs/report \
      --movielens_dir=../shared/data/ml-latest-small --seeds=0,1,2 --resume --readme=README.md
"""
import hashlib
import json
import os
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
from absl import logging
import numpy as np

from tfrs_smoe import config as config_lib
from tfrs_smoe import experiment as experiment_lib
from tfrs_smoe import reporting
from tfrs_smoe.evaluation import metrics as metrics_lib

# variant -> config overrides (on top of the data set's and --params_override).
VARIANTS = {
    "popularity": {"model": {"name": "popularity"}},
    "two_tower_none": {"model": {"name": "two_tower", "two_tower": {"correction": "none"}}},
    "two_tower_streaming": {"model": {"name": "two_tower",
                                      "two_tower": {"correction": "streaming"}}},
    "bst": {"model": {"name": "bst"}},
    "smoe_bst": {"model": {"name": "smoe_bst"}},
    "smoe_bst_phns": {"model": {"name": "smoe_bst"}, "train": {"phns": {"preset": "medium"}}},
    "smoe_bst_no_mtl": {"model": {"name": "smoe_bst", "task": {
        "ctr_weight": 0.0, "hinge_weight": 0.0, "completion_weight": 0.0}}},
    "smoe_bst_no_next_k": {"model": {"name": "smoe_bst"},
                           "data": {"next_k": 1, "soft_labels": [1.0]}},
}
# Two-tower trains on (history, next item) pairs: larger batches for its in-batch softmax.
_TWO_TOWER_TRAIN = {"batch_size": 512, "epochs": 20}

flags.DEFINE_string("output_dir", "runs/report", "Where the runs, reports and plots go.")
flags.DEFINE_string("movielens_dir", "../shared/data/ml-latest-small", "Raw MovieLens "
                    "latest-small files; skipped when absent.")
flags.DEFINE_string("tfds_data_dir", "", "Where TFDS prepares the data sets ('' = TFDS default).")
flags.DEFINE_list("datasets", ["streaming_logs", "movielens"], "Data sets to run.")
flags.DEFINE_list("variants", list(VARIANTS), "Variants to run.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds; popularity is deterministic and runs once.")
flags.DEFINE_string("dataset_params_override", "", "YAML/JSON mapping (inline or a file) from "
                    "data set (streaming_logs, movielens) to overrides of that data set's runs, "
                    "applied before each variant's own settings.")
flags.DEFINE_string("params_override", "", "YAML/JSON mapping applied to every run, last.")
flags.DEFINE_bool("resume", False, "Reuse finished runs whose params.yaml matches.")
flags.DEFINE_string("readme", "", "Also write each data set's report into this markdown file "
                    "(e.g. README.md) between its '<!-- begin experiments/report.py DATA SET -->' "
                    "and '<!-- end experiments/report.py DATA SET -->' lines, with the plots "
                    "copied into docs/ beside it.")
FLAGS = flags.FLAGS

_README_SECTION = "experiments/report.py"
_COLUMNS = ("ndcg@1", "ndcg@5", "ndcg@10", "recall@5", "recall@10", "mrr@5")


def _dataset_overrides():
  """{data set: overrides} of --dataset_params_override, checked before any training."""
  overrides = config_lib.read_yaml(FLAGS.dataset_params_override) or {}
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


def _config(data, dataset_overrides, variant, seed):
  """Defaults <- the data set's settings <- the variant's <- --params_override: a variant's
  switch wins over a data set's setting of the same field (e.g. next_k of smoe_bst_no_next_k).
  PHNS draws follow the run's seed, as in phns_ablation.py, so that its runs with the same
  settings are the report's runs (copied into --output_dir, --resume reuses them)."""
  overrides = VARIANTS[variant]
  if overrides["model"]["name"] == "two_tower":
    overrides = {**overrides, "train": _TWO_TOWER_TRAIN}
  config = config_lib.apply_overrides(config_lib.ExperimentConfig(), {"data": data})
  config = config_lib.apply_overrides(config, dataset_overrides)
  config = config_lib.apply_overrides(config, {**overrides, "seed": seed})
  config = config_lib.apply_overrides(config, {"train": {"phns": {"seed": seed}}})
  return config_lib.override(config, FLAGS.params_override)


def _data_configs():
  """(data set, `DataConfig` overrides) of each of --datasets that is present."""
  for dataset in FLAGS.datasets:
    for _, data in reporting.data_configs([dataset], ["default"], FLAGS.movielens_dir,
                                          FLAGS.tfds_data_dir):
      yield dataset, data


def _pyplot():
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
  variants = list(runs)
  figure, axis = pyplot.subplots(figsize=(9, 3.2))
  positions = np.arange(len(variants))
  for offset, (protocol, metric) in ((-0.2, ("full_ranking", "ndcg@10")),
                                     (0.2, ("phns_test", "ndcg@1"))):
    values = [[o.results[protocol][metric] for o in runs[v] if protocol in o.results] or [0.0]
              for v in variants]
    axis.bar(positions + offset, [np.mean(v) for v in values], 0.4,
             yerr=[np.std(v) for v in values], label=f"{metric} ({protocol.replace('_', ' ')})")
  axis.set_xticks(positions, variants, rotation=20, fontsize=8)
  axis.set_title(title)
  axis.legend(fontsize=8)
  figure.tight_layout()
  figure.savefig(path, dpi=110)


def _gate_weights(model_dir):
  """[test users, experts] gate weights of the S-MoE-BST run in `model_dir`.

  Kept in the run's test_gate_weights.npz with the SHA-256 of its outcome.json, so that the runs'
  records rebuild the report without their checkpoints (see the module docstring), and a run
  trained anew in the same directory is not plotted with its old weights.
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
  weights = _gate_weights(model_dir)
  figure, axis = pyplot.subplots(figsize=(5, 3.2))
  for expert in range(weights.shape[1]):
    axis.hist(weights[:, expert], bins=30, range=(0, 1), alpha=0.6, label=f"expert {expert}")
  axis.set_title(f"{title}: gate weights of test users")
  axis.set_xlabel("gate weight")
  axis.legend(fontsize=8)
  figure.tight_layout()
  figure.savefig(path, dpi=110)


def _plot_curves(pyplot, curve_runs, title, path):
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


def _machines(runs):
  """(note naming the machines the runs trained on, variant -> their letters or None).

  Training seconds compare only between runs of one machine: when a data set's runs trained on
  more than one, the machines get letters (A, B, ...) that the note keys and the table's
  machine column gives per variant; with one machine the note is its name and there is no
  column.
  """
  names = {variant: [o.machine or "machine not recorded" for o in outcomes]
           for variant, outcomes in runs.items()}
  machines = sorted({name for per in names.values() for name in per})
  if len(machines) == 1:
    return machines[0], None
  letters = {name: chr(ord("A") + i) for i, name in enumerate(machines)}
  note = ("; ".join(f"{letters[name]} = {name}" for name in machines)
          + "; s/epoch compares runs of one machine only")
  return note, {variant: ", ".join(sorted({letters[name] for name in per}))
                for variant, per in names.items()}


def _report_dataset(dataset, data, dataset_overrides, pyplot):
  """Trains (or reuses) every variant and seed on one data set; writes report_<dataset>.md,
  .json and plots; returns (report path, [(plot title, plot file name)])."""
  runs, rows, gate_run, curve_runs = {}, {}, None, {}
  for variant in FLAGS.variants:
    seeds = [0] if variant == "popularity" else [int(s) for s in FLAGS.seeds]
    outcomes = []
    for seed in seeds:
      config = _config(data, dataset_overrides, variant, seed)
      model_dir = os.path.join(FLAGS.output_dir, config.data.dataset.replace("/", "_"),
                               f"{variant}_seed{seed}")
      outcomes.append(reporting.run_experiment(config, model_dir, resume=FLAGS.resume))
      if seed == seeds[0] and variant != "popularity":
        curve_runs[variant] = model_dir
        if config.model.name == "smoe_bst" and gate_run is None:
          gate_run = model_dir
    runs[variant] = outcomes
    per_epoch = np.mean([o.seconds_per_epoch for o in outcomes])
    rows[variant] = [f"{row} {per_epoch:.1f} |" for row in
                     reporting.table_rows([config.data.dataset, variant], outcomes, _COLUMNS)]
    print("\n".join(rows[variant]), flush=True)
  machines, machine_of = _machines(runs)
  lines = reporting.table_header(["data", "variant"], _COLUMNS)
  lines[0] += " s/epoch |" + (" machine |" if machine_of else "")
  lines[1] += "---|" * (2 if machine_of else 1)
  for variant, variant_rows in rows.items():
    lines.extend(f"{row} {machine_of[variant]} |" if machine_of else row for row in variant_rows)
  note = (f"seeds {', '.join(FLAGS.seeds)}; {machines}; command: python "
          f"experiments/report.py --seeds={','.join(FLAGS.seeds)} --datasets={dataset} "
          f"--variants={','.join(FLAGS.variants)}"
          + "".join(f" --{name}='{FLAGS[name].value}'" for name in
                    ("dataset_params_override", "params_override") if FLAGS[name].value))
  path = reporting.write_report(FLAGS.output_dir, f"report_{dataset}", "experiments/report.py",
                                note, lines, {f"{config.data.dataset}/{v}": o
                                              for v, o in runs.items()})
  print(f"Written to {path}")
  plots = []
  if pyplot is not None:
    title = config.data.dataset
    plots.append(("Full-ranking NDCG@10 and PHNS-test NDCG@1 per variant",
                  f"report_{dataset}_metrics.png"))
    _plot_metrics(pyplot, runs, title, os.path.join(FLAGS.output_dir, plots[-1][1]))
    if gate_run:
      plots.append(("Gate weight per expert over test users", f"report_{dataset}_gates.png"))
      _plot_gates(pyplot, gate_run, title, os.path.join(FLAGS.output_dir, plots[-1][1]))
    if curve_runs:
      plots.append(("Validation NDCG@10 per epoch", f"report_{dataset}_curves.png"))
      _plot_curves(pyplot, curve_runs, title, os.path.join(FLAGS.output_dir, plots[-1][1]))
    print(f"Plots written to {FLAGS.output_dir}")
  return path, plots


def _write_into_readme(section, report_path, plots):
  """Puts a report and its plots (copied into docs/ beside the readme) into --readme."""
  docs = os.path.join(os.path.dirname(os.path.abspath(FLAGS.readme)), "docs")
  os.makedirs(docs, exist_ok=True)
  with open(report_path, encoding="utf-8") as f:
    sections = [f.read().strip()]
  for title, name in plots:
    shutil.copyfile(os.path.join(FLAGS.output_dir, name), os.path.join(docs, name))
    sections.append(f"![{title}](docs/{name})")
  reporting.replace_generated_section(FLAGS.readme, section, "\n\n".join(sections))
  print(f"Report written into {FLAGS.readme}")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  for variant in FLAGS.variants:
    if variant not in VARIANTS:
      raise ValueError(f"Unknown variant {variant!r}; use {', '.join(VARIANTS)}.")
  dataset_overrides = _dataset_overrides()
  datasets = list(_data_configs())
  if FLAGS.readme:  # Fails before hours of training when the readme has no place for them.
    for dataset, _ in datasets:
      reporting.generated_section(FLAGS.readme, f"{_README_SECTION} {dataset}")
  pyplot = _pyplot()
  for dataset, data in datasets:
    path, plots = _report_dataset(dataset, data, dataset_overrides.get(dataset, {}), pyplot)
    if FLAGS.readme:
      _write_into_readme(f"{_README_SECTION} {dataset}", path, plots)


if __name__ == "__main__":
  app.run(main)
