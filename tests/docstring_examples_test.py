"""The docstring examples (`>>>`) of tfrs_smoe's modules, run with doctest as documentation.

Every module with an example is either in COVERED, whose examples run here on the tiny inputs
they build themselves (each module's in a fresh working directory, so that the files they
write, e.g. "runs/bst", land there), or in EXCLUDED with the reason it is not.
"""

import doctest
import importlib
import pathlib
from typing import Dict, List

import pytest

_PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "tfrs_smoe"
_OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

COVERED = (
    "tfrs_smoe.binaries.quiet",
    "tfrs_smoe.cli",
    "tfrs_smoe.config",
    "tfrs_smoe.data.epoch_stream",
    "tfrs_smoe.data.examples",
    "tfrs_smoe.data.hard_negatives",
    "tfrs_smoe.data.item_features",
    "tfrs_smoe.data.line_parsing",
    "tfrs_smoe.data.movielens",
    "tfrs_smoe.data.movielens_files",
    "tfrs_smoe.data.prepared_split",
    "tfrs_smoe.data.prepared_watch_log",
    "tfrs_smoe.data.preparation.catalog_files",
    "tfrs_smoe.data.preparation.combiners",
    "tfrs_smoe.data.preparation.config",
    "tfrs_smoe.data.preparation.event_batch",
    "tfrs_smoe.data.preparation.pipeline",
    "tfrs_smoe.data.preparation.popularity",
    "tfrs_smoe.data.preparation.sequence_records",
    "tfrs_smoe.data.preparation.shard_files",
    "tfrs_smoe.data.preparation.shards",
    "tfrs_smoe.data.preparation.sources",
    "tfrs_smoe.data.preparation.synthetic_source",
    "tfrs_smoe.data.preparation.time_cuts",
    "tfrs_smoe.data.preparation.user_blocks",
    "tfrs_smoe.data.preparation.watch_log_source",
    "tfrs_smoe.data.sequences",
    "tfrs_smoe.data.shard_stream",
    "tfrs_smoe.data.splits",
    "tfrs_smoe.data.streaming_logs",
    "tfrs_smoe.data.synthetic",
    "tfrs_smoe.data.synthetic_catalog",
    "tfrs_smoe.data.table_file",
    "tfrs_smoe.data.user_features",
    "tfrs_smoe.data.vocabulary",
    "tfrs_smoe.data.watch_log_files",
    "tfrs_smoe.distribute",
    "tfrs_smoe.evaluation.full_ranking",
    "tfrs_smoe.evaluation.metrics",
    "tfrs_smoe.evaluation.next_k",
    "tfrs_smoe.evaluation.paired_comparison",
    "tfrs_smoe.evaluation.per_user",
    "tfrs_smoe.evaluation.phns_protocol",
    "tfrs_smoe.evaluation.ranking_callback",
    "tfrs_smoe.experiment",
    "tfrs_smoe.layers.adaptive_gate",
    "tfrs_smoe.layers.attention_pooling",
    "tfrs_smoe.layers.behavior_sequence_transformer",
    "tfrs_smoe.layers.candidate_scorer",
    "tfrs_smoe.layers.catalogue_sampler",
    "tfrs_smoe.layers.causal_transformer",
    "tfrs_smoe.layers.content_embedding",
    "tfrs_smoe.layers.frequency_estimator",
    "tfrs_smoe.layers.history_encoder",
    "tfrs_smoe.layers.item_content",
    "tfrs_smoe.layers.timescale_experts",
    "tfrs_smoe.layers.user_content",
    "tfrs_smoe.model_dir_lock",
    "tfrs_smoe.models.contract",
    "tfrs_smoe.models.popularity",
    "tfrs_smoe.models.registry",
    "tfrs_smoe.models.sasrec",
    "tfrs_smoe.models.smoe_bst",
    "tfrs_smoe.models.two_tower",
    "tfrs_smoe.reporting",
    "tfrs_smoe.resumable_early_stopping",
    "tfrs_smoe.run_directory",
    "tfrs_smoe.serving.client",
    "tfrs_smoe.serving.export",
    "tfrs_smoe.serving.recommender_module",
    "tfrs_smoe.sweep",
    "tfrs_smoe.tasks.engagement_multitask",
    "tfrs_smoe.variants",
)

# Modules with a `>>>` example that does not run here, and why. Move a module to COVERED once its
# examples run on tiny inputs of their own.
EXCLUDED: Dict[str, str] = {}


def _modules_with_examples() -> List[str]:
  """The dotted names of the modules under tfrs_smoe/ whose source holds a `>>>` example."""
  names = []
  for path in sorted(_PACKAGE.rglob("*.py")):
    if "__autograph_generated" in path.name:
      continue
    if ">>>" in path.read_text(encoding="utf-8"):
      parts = path.relative_to(_PACKAGE.parent).with_suffix("").parts
      names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
  return names


@pytest.mark.parametrize("name", COVERED)
def test_examples_run(name, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  module = importlib.import_module(name)
  tests = doctest.DocTestFinder().find(module)
  assert sum(len(test.examples) for test in tests), f"{name} has no docstring example to run."
  runner = doctest.DocTestRunner(optionflags=_OPTIONS)
  report = []
  for test in tests:
    runner.run(test, out=report.append)
  assert not runner.failures, f"{runner.failures} example(s) of {name} failed:\n{''.join(report)}"


def test_every_module_with_examples_is_covered_or_excluded():
  found = set(_modules_with_examples())
  covered, excluded = set(COVERED), set(EXCLUDED)
  assert len(covered) == len(COVERED), "COVERED lists a module twice."
  assert not covered & excluded, f"Both covered and excluded: {sorted(covered & excluded)}"
  unlisted = found - covered - excluded
  assert not unlisted, (f"Modules with docstring examples in neither COVERED nor EXCLUDED "
                        f"(tests/docstring_examples_test.py): {sorted(unlisted)}")
  stale = (covered | excluded) - found
  assert not stale, f"Listed, but without a `>>>` example (or gone): {sorted(stale)}"
