"""Tests of the variant registry (tfrs_smoe/variants.py) and the sweep runner (tfrs_smoe/sweep.py).
"""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tfrs_smoe import config as config_lib
from tfrs_smoe import reporting
from tfrs_smoe import sweep
from tfrs_smoe import variants
from tfrs_smoe.models import registry as model_registry

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TINY = ("data: {dataset: streaming_logs/tiny, max_len: 10}\ntrain: {epochs: 1}\n"
         "model: {encoder: {item_dim: 8, genre_dim: 4, year_dim: 4, expert_windows: [3, 0], "
         "num_blocks: 1, feed_forward_dim: 16}}\neval: {phns: {num_candidates: 30}}")


def test_unknown_names_are_errors_that_list_the_known_ones():
  with pytest.raises(ValueError, match="Unknown variant set 'modles'; available: models, phns"):
    variants.get("modles")
  with pytest.raises(ValueError, match="Unknown variant 'smoe' in variant set 'models'; use "
                     "popularity, bst, smoe_bst, sasrec"):
    variants.get("models").select(["bst", "smoe"])
  with pytest.raises(ValueError, match="registered already"):
    variants.register(variants.get("models"))


@pytest.mark.parametrize("kwargs, message", [
    ({"variants": (variants.Variant("a", "bst"), variants.Variant("a", "smoe_bst"))},
     "distinct names"),
    ({"variants": (variants.Variant("a", "bts"),)}, "Unknown model 'bts'"),
    ({"variants": (variants.Variant("a", "bst", {"model": {"name": "sasrec"}}),)},
     "set the model with `model`"),
    ({"pairs": (("a", "b"),)}, r"pair \(a, b\) names a variant outside the set"),
    ({"run_dir": "{variant}_{epoch}"}, "run_dir may use only"),
    ({"show_protocol": False, "protocols": ("implicit", "engagement")}, "runs one"),
])
def test_a_variant_set_checks_its_variants_and_formats(kwargs, message):
  arguments = {"variants": (variants.Variant("a", "bst"),), **kwargs}
  with pytest.raises(ValueError, match=message):
    variants.VariantSet("custom", "a test set", **arguments)


def test_the_sets_name_sasrec_among_their_variants():
  assert "sasrec" in [v.name for v in variants.get("models").variants]
  report = [v.name for v in variants.get("report").variants]
  # The models, S-MoE-BST's ablations against its defaults, then SASRec at both lengths.
  assert report == ["popularity", "two_tower_none", "two_tower_streaming", "bst", "smoe_bst",
                    "smoe_bst_phns", "smoe_bst_paper_task", "smoe_bst_next_k_3",
                    "smoe_bst_max_len_200", "sasrec", "sasrec_max_len_200"]


@pytest.mark.parametrize("set_name", variants.names())
@pytest.mark.parametrize("dataset", sorted(reporting.DATASETS))
def test_every_registered_variant_resolves_to_a_valid_config(set_name, dataset):
  variant_set = variants.get(set_name)
  data, protocol = reporting.DATASETS[dataset]
  data = {**data, "implicit": protocol == "implicit"}
  for variant in variant_set.variants:
    config = variants.resolve(variant_set, variant.name, data, seed=2)
    assert config.model.name == variant.model and config.seed == 2
    assert config.train.phns.seed == 2
    model_registry.get(config.model.name)
    # The config survives params.yaml: what --resume compares.
    assert config_lib.to_dict(config_lib.apply_overrides(
        config_lib.ExperimentConfig(), config_lib.to_dict(config))) == config_lib.to_dict(config)
    run_dir = variant_set.run_dir.format(data=dataset, dataset=config.data.dataset,
                                         dataset_dir=config.data.dataset.replace("/", "_"),
                                         protocol=protocol, variant=variant.name, seed=2)
    assert variant.name in run_dir and ".." not in run_dir


def test_resolve_applies_data_set_then_set_then_variant_then_params_override():
  retrieval = variants.get("retrieval")
  config = variants.resolve(
      retrieval, "streaming", {"dataset": "streaming_logs"}, seed=1,
      dataset_overrides={"train": {"batch_size": 64, "learning_rate": 0.003}},
      params_override="train: {epochs: 2}")
  # The set's batch wins over the data set's; the data set's learning rate stays; the
  # params_override goes last.
  assert (config.train.batch_size, config.train.learning_rate, config.train.epochs) == (
      512, 0.003, 2)
  assert config.train.monitor == "recall@10" and config.model.two_tower.correction == "streaming"
  report = variants.get("report")
  config = variants.resolve(report, "smoe_bst_next_k_3", {"dataset": "streaming_logs"},
                            dataset_overrides={"data": {"next_k": 2, "soft_labels": [1., .5]},
                                               "model": {"encoder": {"dropout": 0.3}}})
  assert config.data.next_k == 3 and config.data.soft_labels == (1.0, 0.6, 0.3)  # The variant's.
  assert config.model.encoder.dropout == 0.3
  bst_presets = variants.get("phns").with_model("bst")
  assert variants.resolve(bst_presets, "hard", {"dataset": "streaming_logs"}).model.name == "bst"
  with pytest.raises(ValueError, match="Unknown config key 'report/bst: train.epoch'"):
    variants.resolve(_with_overrides(report, "bst", {"train": {"epoch": 3}}), "bst",
                     {"dataset": "streaming_logs"})


def _with_overrides(variant_set, name, overrides):
  """`variant_set` with the overrides of variant `name` replaced."""
  return dataclasses.replace(variant_set, variants=tuple(
      dataclasses.replace(v, overrides=overrides) if v.name == name else v
      for v in variant_set.variants))


def test_bad_dataset_overrides_fail_before_any_training(tmp_path):
  for text, message in (("{streaming: {train: {epochs: 3}}}", "unknown data sets"),
                        ("{movielens: {train: {epoch: 3}}}", "movielens: train.epoch"),
                        ("[1, 2]", "must map data sets to mappings")):
    with pytest.raises(ValueError, match=message):
      sweep.Sweep(variants.get("models"), output_dir=str(tmp_path / "out"),
                  dataset_params_override=text).run()
  assert not (tmp_path / "out").exists()


def test_a_sweep_writes_a_table_over_two_seeds_and_resume_retrains_nothing(tmp_path,
                                                                         tiny_tfds_dir,
                                                                         monkeypatch):
  pairs = []

  def pair_comparison(first, first_dirs, second, second_dirs):
    pairs.append((first, first_dirs, second, second_dirs))
    return [f"{first} vs {second}: {len(first_dirs)} and {len(second_dirs)} runs"]

  variant_set = variants.VariantSet(
      "tiny", "popularity and BST", (variants.Variant("popularity", "popularity"),
                                     variants.Variant("bst", "bst")),
      columns=("ndcg@1", "ndcg@10"), label="model", pairs=(("bst", "popularity"),))
  output_dir = tmp_path / "sweep"
  arguments = dict(datasets=["streaming_logs", "movielens"], seeds=[0, 1],
                   output_dir=str(output_dir), movielens_dir=str(tmp_path / "absent"),
                   tfds_data_dir=tiny_tfds_dir, params_override=_TINY,
                   pair_comparison=pair_comparison)
  runs = sweep.Sweep(variant_set, **arguments).run()
  assert sorted(runs) == ["streaming_logs/tiny/engagement/bst",
                          "streaming_logs/tiny/engagement/popularity"]
  assert [run.seed for run in runs["streaming_logs/tiny/engagement/bst"]] == [0, 1]
  assert len(runs["streaming_logs/tiny/engagement/popularity"]) == 1  # Deterministic.
  bst_dirs = [str(output_dir / "streaming_logs_tiny" / f"bst_engagement_seed{seed}")
              for seed in (0, 1)]
  assert pairs == [("bst", bst_dirs, "popularity",
                    [str(output_dir / "streaming_logs_tiny" / "popularity_engagement_seed0")])]

  table = (output_dir / "tiny.md").read_text(encoding="utf-8")
  assert table.startswith("Generated by experiments/sweep.py on ")
  assert (f"(seeds 0, 1; {reporting.machine_description()}; command: python "
          "experiments/sweep.py --seeds=0,1 --datasets=streaming_logs "
          "--variants=popularity,bst --params_override='") in table
  assert ("| data | protocol | model | evaluation | ndcg@1 | ndcg@10 | test users | epochs | "
          "train s/run | s/epoch |") in table
  ndcg = [run.results["full_ranking"]["ndcg@10"]
          for run in runs["streaming_logs/tiny/engagement/bst"]]
  row = [line for line in table.splitlines() if "| bst | full ranking |" in line]
  assert len(row) == 1 and f"| {np.mean(ndcg):.4f} ± {np.std(ndcg):.4f} |" in row[0]
  assert row[0].startswith("| streaming_logs/tiny | engagement | bst |")
  assert "\nbst vs popularity: 2 and 1 runs\n" in table
  with open(output_dir / "tiny.json", encoding="utf-8") as f:
    stored = json.load(f)
  assert stored["streaming_logs/tiny/engagement/bst"][1]["seed"] == 1

  def no_training(*args, **kwargs):
    raise AssertionError("--resume trained a finished run again")
  monkeypatch.setattr(reporting.experiment_lib.Experiment, "fit", no_training)
  monkeypatch.setattr(reporting.experiment_lib.Experiment, "prepare_data", no_training)
  resumed = sweep.Sweep(variant_set, **{**arguments, "resume": True,
                                        "tfds_data_dir": str(tmp_path / "elsewhere")}).run()
  assert resumed == runs  # Stored outcomes, wherever TFDS keeps the data now.
  assert (output_dir / "tiny.md").read_text(encoding="utf-8") == table


def test_the_sweep_binary_runs_a_registered_set_and_names_an_unknown_one(tmp_path, tiny_tfds_dir):
  command = [sys.executable, os.path.join(_ROOT, "experiments", "sweep.py"),
             f"--output_dir={tmp_path / 'out'}", f"--tfds_data_dir={tiny_tfds_dir}",
             "--datasets=streaming_logs", "--seeds=0", f"--params_override={_TINY}"]
  result = subprocess.run([*command, "--variant_set=phns", "--variants=none"],
                          capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stdout + result.stderr
  table = (tmp_path / "out" / "phns_ablation.md").read_text(encoding="utf-8")
  assert "command: python experiments/sweep.py --variant_set=phns --seeds=0 " in table
  assert "| streaming_logs/tiny | none | full ranking |" in table
  assert "| streaming_logs/tiny | none | phns test |" in table
  assert (tmp_path / "out" / "streaming_logs" / "none_seed0" / "outcome.json").exists()
  assert (tmp_path / "out" / "phns_ablation.png").stat().st_size > 0
  result = subprocess.run([*command, "--variant_set=ablation"], capture_output=True, text=True,
                          timeout=600, check=False)
  assert result.returncode != 0
  assert "Unknown variant set 'ablation'; available: models, phns" in result.stderr


@pytest.mark.parametrize("page, link", [("docs/results.md", "report_metrics.png"),
                                        ("README.md", "docs/report_metrics.png")])
def test_a_report_goes_into_its_pages_section_with_its_plots_in_docs(tmp_path, page, link):
  """--readme: docs/results.md (the published results) keeps the plots beside it, a page in
  the repository root keeps them in docs/ beside it; the link resolves from the page either way."""
  output_dir = tmp_path / "out"
  output_dir.mkdir()
  (output_dir / "report.md").write_text("Generated by experiments/report.py.\n", encoding="utf-8")
  (output_dir / "report_metrics.png").write_bytes(b"png")
  path = tmp_path / page
  path.parent.mkdir(exist_ok=True)
  path.write_text("# Results\n\n<!-- begin experiments/report.py streaming_logs -->\nold\n"
                  "<!-- end experiments/report.py streaming_logs -->\n\nHand-written.\n",
                  encoding="utf-8")
  runner = sweep.Sweep(variants.get("report"), output_dir=str(output_dir), readme=str(path))
  runner._write_into_readme("experiments/report.py streaming_logs",
                            str(output_dir / "report.md"), [("Metrics", "report_metrics.png")])
  section = reporting.generated_section(str(path), "experiments/report.py streaming_logs")
  assert section == f"Generated by experiments/report.py.\n\n![Metrics]({link})"
  assert (path.parent / link).read_bytes() == b"png"
  assert not (tmp_path / "docs" / "docs").exists()
  assert path.read_text(encoding="utf-8").endswith("-->\n\nHand-written.\n")
