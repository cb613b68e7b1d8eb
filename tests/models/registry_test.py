"""Tests of the model registry: lookups, errors, and a new model plugged in at one place."""

import numpy as np
import pytest

from tfrs_smoe import config as config_lib
from tfrs_smoe import experiment as experiment_lib
from tfrs_smoe.data import schema
from tfrs_smoe.models import contract
from tfrs_smoe.models import popularity
from tfrs_smoe.models import registry


def _log():
  """Item i{k} is watched by k + 1 of 12 users: popularity order i11 > i10 > ... > i0."""
  rows = [(f"u{u}", f"i{k}", 10 * u + k, 1.0) for u in range(12) for k in range(12) if u <= k]
  users, items, times, engagement = zip(*rows)
  ids = [f"i{k}" for k in range(12)]
  return schema.WatchLog(
      name="hand", abandonment_threshold=0.05, users=None,
      interactions=schema.Interactions(user_id=users, item_id=items, timestamp=times,
                                       engagement=engagement),
      items=schema.ItemCatalog(item_id=ids, title=ids, genres=[""] * 12, year=[0] * 12,
                               runtime_seconds=[0] * 12))


def test_the_bundled_models_are_registered_with_their_training_and_serving():
  assert registry.names() == ("popularity", "bst", "smoe_bst", "two_tower", "sasrec")
  assert [registry.get(n).training for n in registry.names()] == [
      "counted", "sequences", "sequences", "windows", "sequences"]
  assert [n for n in registry.names() if registry.get(n).servable] == [
      "bst", "smoe_bst", "two_tower", "sasrec"]
  assert [n for n in registry.names() if registry.get(n).retriever] == ["two_tower"]


def test_unknown_and_duplicate_names_are_errors():
  with pytest.raises(ValueError, match="Unknown model 'nope'; available: popularity, bst"):
    registry.get("nope")
  with pytest.raises(ValueError, match="registered already"):
    registry.register(registry.get("bst"))
  with pytest.raises(ValueError, match="training must be one of"):
    registry.ModelSpec("x", "", lambda c, s: None, training="online")


def test_a_registered_model_plugs_into_config_experiment_and_contract(tmp_path, monkeypatch):
  """Registering a spec is all it takes: the config accepts the name and Experiment builds,
  fits, evaluates and restores it."""

  def build(config, split):
    del config
    return popularity.PopularityModel(num_items=split.item_vocabulary.size, name="reverse")

  monkeypatch.setitem(registry._REGISTRY, "reverse_popularity", registry.ModelSpec(  # pylint: disable=protected-access
      "reverse_popularity", "test model", build, training="counted", servable=False))
  config = config_lib.apply_overrides(config_lib.ExperimentConfig(), {
      "model": {"name": "reverse_popularity"}, "eval": {"phns_test": False}})
  experiment = experiment_lib.Experiment(config, str(tmp_path))
  split = experiment.prepare_data(_log())
  model = experiment.fit(split)
  assert isinstance(model, contract.Ranker) and not isinstance(model, contract.ServableRanker)
  counts = model.counts.numpy()
  # Each user's last item is the test target, the one before validation: training counts of
  # i11 (12 users, 2 held out) beat those of i0 (user 0's whole log is its 12 items).
  assert counts[split.item_vocabulary.lookup(["i11"])[0]] > counts[
      split.item_vocabulary.lookup(["i0"])[0]]
  restored = experiment.restore(split)
  np.testing.assert_array_equal(restored.counts.numpy(), counts)
