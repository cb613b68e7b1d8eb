"""Tests of SASRec: scoring paths, causality, padding, reserved indices, the loss by hand, a
planted pattern, the contract, config, Experiment fit/restore and a served export."""

import logging

import numpy as np
import pytest
import tensorflow as tf

from tfrs_smoe import config as config_lib
from tfrs_smoe import experiment as experiment_lib
from tfrs_smoe.data import schema
from tfrs_smoe.data import sequences
from tfrs_smoe.data import splits
from tfrs_smoe.models import contract
from tfrs_smoe.models import registry
from tfrs_smoe.models import sasrec
from tfrs_smoe.serving import export

NUM_ITEMS = 2 + 30  # Indices 0 and 1 are reserved.
MAX_LEN = 8


def _model(dropout=0.0, max_len=MAX_LEN, **settings):
  tf.keras.utils.set_random_seed(0)
  config = sasrec.SASRecConfig(**{"dim": 16, "feed_forward_dim": 16, "num_heads": 2,
                                  "dropout": dropout, **settings})
  model = sasrec.SASRec(NUM_ITEMS, config, max_len=max_len)
  model.initialize()
  return model


def _successor_rows(num_users, length, seed=0):
  """Each item is followed by the next item index, round the catalogue."""
  starts = np.random.RandomState(seed).randint(NUM_ITEMS - 2, size=num_users)
  return (2 + (starts[:, None] + np.arange(length)[None]) % (NUM_ITEMS - 2)).astype(np.int32)


def _indexed_log(rows):
  num_users, length = rows.shape
  return splits.IndexedLog(
      user=np.repeat(np.arange(2, num_users + 2), length).astype(np.int32),
      item=rows.reshape(-1), timestamp=np.tile(np.arange(length), num_users).astype(np.int64),
      engagement=np.ones(rows.size, np.float32), positive=np.ones(rows.size, bool))


def _history(rows, max_len=MAX_LEN):
  """Left-padded histories of `rows` [n, h <= max_len]."""
  history = np.zeros([len(rows), max_len], np.int32)
  history[:, max_len - rows.shape[1]:] = rows
  return {"history": history}


def test_scoring_paths_agree_and_have_their_shapes():
  model = _model()
  features = _history(_successor_rows(3, 5))
  assert model.encode(features).shape == (3, MAX_LEN, 16)
  scores = model(features).numpy()
  assert scores.shape == (3, NUM_ITEMS)
  assert model.item_table().shape == (NUM_ITEMS, 16)
  np.testing.assert_allclose(model.score_catalogue(features, model.item_table()).numpy(),
                             scores, rtol=1e-5, atol=1e-6)
  users = model.user_vector(features).numpy()
  np.testing.assert_allclose(scores[:, 2:], users @ model.item_table().numpy()[2:].T,
                             rtol=1e-4, atol=1e-5)  # Tied output embeddings, no bias.
  candidates = np.array([[5, 9], [2, 3], [31, 7]], np.int32)
  np.testing.assert_allclose(model.score_candidates(features, candidates).numpy(),
                             np.take_along_axis(scores, candidates, axis=1), rtol=1e-4,
                             atol=1e-5)


def test_reserved_indices_score_below_every_item():
  model = _model()
  features = _history(_successor_rows(4, 6))
  scores = model(features).numpy()
  np.testing.assert_array_equal(scores[:, :2], sasrec.RESERVED_SCORE)
  assert np.all(np.isfinite(scores)) and np.all(scores[:, 2:] > sasrec.RESERVED_SCORE)
  assert set(np.argsort(scores, axis=1)[:, :2].reshape(-1)) == {0, 1}
  candidates = np.array([[0, 1, 4]] * 4, np.int32)
  np.testing.assert_array_equal(model.score_candidates(features, candidates).numpy()[:, :2],
                                sasrec.RESERVED_SCORE)


def test_later_items_do_not_change_earlier_steps():
  model = _model()
  rows = _successor_rows(2, MAX_LEN)
  changed = rows.copy()
  changed[:, 5:] = [[9, 10, 11], [20, 3, 4]]
  first, second = model.encode({"history": rows}).numpy(), model.encode(
      {"history": changed}).numpy()
  np.testing.assert_allclose(first[:, :5], second[:, :5], rtol=1e-4, atol=1e-5)
  assert not np.allclose(first[:, 5:], second[:, 5:], atol=1e-3)


def test_left_padding_changes_no_score():
  model = _model()
  rows = _successor_rows(3, 4)
  padded = model(_history(rows)).numpy()  # 4 steps of padding.
  for length in (4, 6):  # Less padding, as batches cut to their longest sequence have.
    np.testing.assert_allclose(model(_history(rows, max_len=length)).numpy(), padded,
                               rtol=1e-4, atol=1e-4)


def test_loss_is_the_full_softmax_cross_entropy_at_the_steps_with_a_next_item():
  model = _model()
  history = _successor_rows(2, MAX_LEN)
  history[0, :3] = 0  # Left padding.
  targets = np.stack([np.roll(history, -1, axis=1), np.full_like(history, 7)], axis=-1)
  weights = np.ones([2, MAX_LEN, 2], np.float32) * [1.0, 0.5]  # A second target, ignored.
  weights[0, :3] = 0.0  # Padding steps have no target.
  weights[:, -1] = 0.0  # Nor has the last step.
  targets[1, 2, 0] = 1  # An out-of-vocabulary target is not trained either.
  features = {"history": history, "targets": targets, "target_weights": weights}
  vectors = model.encode(features).numpy()
  logits = vectors @ model.item_table().numpy()[2:].T  # Reserved indices left out.
  log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  trained = (weights[..., 0] > 0) & (targets[..., 0] >= 2)
  expected = -np.mean(np.take_along_axis(log_softmax, targets[..., :1] - 2, axis=-1)[..., 0]
                      [trained])
  assert trained.sum() == 4 + 6
  np.testing.assert_allclose(model.compute_loss(features).numpy(), expected, rtol=1e-5)
  cut = sequences.SequencePipeline.without_leading_padding(
      {name: tf.constant(value) for name, value in features.items()})
  np.testing.assert_allclose(model.compute_loss(cut).numpy(), expected, rtol=1e-5)


def test_learns_the_successor_pattern():
  rows = _successor_rows(160, MAX_LEN + 1)
  pipeline = sequences.SequencePipeline(max_len=MAX_LEN, next_k=1, soft_labels=(1.0,))
  model = _model(dropout=0.1)
  model.compile(tf.keras.optimizers.Adam(1e-2))
  history = model.fit(pipeline.sequences(_indexed_log(rows)).cache().shuffle(1000, seed=0)
                      .batch(32), epochs=8, verbose=0).history
  assert history["loss"][-1] < 0.3 * history["loss"][0]
  held_out = _successor_rows(200, 6, seed=1)  # Shorter histories than in training.
  top = np.argsort(-model(_history(held_out[:, :-1])).numpy(), axis=1)
  successors = held_out[:, -1]
  assert np.mean((top[:, :10] == successors[:, None]).any(1)) > 0.95  # Chance: 1/3.
  assert np.mean(top[:, 0] == successors) > 0.9


def test_meets_the_servable_contract_and_is_registered():
  model = _model()
  assert isinstance(model, contract.ServableRanker)
  contract.require_servable(model, "sasrec")
  spec = registry.get("sasrec")
  assert (spec.training, spec.servable, spec.retriever, spec.config_fields) == (
      "sequences", True, False, ("sasrec",))


def test_config_overrides_and_errors_name_the_key():
  config = config_lib.override(config_lib.ExperimentConfig(), """
model: {name: sasrec, sasrec: {dropout: 0.2, residual: input, num_blocks: 3}}""")
  assert (config.model.sasrec.dropout, config.model.sasrec.residual,
          config.model.sasrec.num_blocks, config.model.sasrec.dim) == (0.2, "input", 3, 64)
  with pytest.raises(ValueError, match="sasrec.num_heads"):
    config_lib.override(config_lib.ExperimentConfig(), "model: {sasrec: {num_heads: 3}}")
  with pytest.raises(ValueError, match="sasrec.residual"):
    config_lib.override(config_lib.ExperimentConfig(), "model: {sasrec: {residual: post}}")
  with pytest.raises(ValueError, match="Unknown config key 'model.sasrec.hidden'"):
    config_lib.override(config_lib.ExperimentConfig(), "model: {sasrec: {hidden: 3}}")


def _watch_log(num_users=40, events=10, num_items=20, seed=0):
  """Each user watches consecutive items i{k}, i{k+1}, ... round the catalogue."""
  starts = np.random.RandomState(seed).randint(num_items, size=num_users)
  rows = [(f"u{user}", f"i{(start + step) % num_items}", 100 * user + step, 1.0)
          for user, start in enumerate(starts) for step in range(events)]
  users, items, times, engagement = zip(*rows)
  ids = [f"i{k}" for k in range(num_items)]
  return schema.WatchLog(
      name="hand", abandonment_threshold=0.05, users=None,
      interactions=schema.Interactions(user_id=users, item_id=items, timestamp=times,
                                       engagement=engagement),
      items=schema.ItemCatalog(item_id=ids, title=ids, genres=[""] * num_items,
                               year=[0] * num_items, runtime_seconds=[0] * num_items))


def _experiment_config(**data):
  return config_lib.apply_overrides(config_lib.ExperimentConfig(), {
      "data": {"implicit": True, "max_len": MAX_LEN, "next_k": 1, "soft_labels": [1.0], **data},
      "model": {"name": "sasrec", "sasrec": {"dim": 16, "feed_forward_dim": 16,
                                             "dropout": 0.1}},
      "train": {"epochs": 15, "batch_size": 16, "learning_rate": 0.01,
                "early_stopping_patience": 0},
      "eval": {"ks": [1, 5, 10], "phns": {"num_candidates": 10}}})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """An Experiment on the hand log, its split, its fitted model and its test results."""
  experiment = experiment_lib.Experiment(_experiment_config(),
                                         str(tmp_path_factory.mktemp("sasrec_run")))
  split = experiment.prepare_data(_watch_log())
  model = experiment.fit(split)
  return experiment, split, model, experiment.evaluate(model, split, "test")


def test_experiment_fits_evaluates_and_restores(trained):
  experiment, split, model, results = trained
  assert isinstance(model, sasrec.SASRec)
  assert set(results) == {"full_ranking", "phns_test"}
  assert results["full_ranking"]["num_examples"] == len(split.test) == 40
  # The successor is learnt: chance full-ranking Recall@10 is about 10 / 12 of the unseen items
  # at best, NDCG@1 about 1 / 12.
  assert results["full_ranking"]["ndcg@1"] > 0.8
  restored = experiment_lib.Experiment(experiment.config, experiment.model_dir).restore(split)
  assert experiment.evaluate(restored, split, "test") == results


def test_export_answers_like_the_keras_model(trained, tmp_path):
  _, split, model, _ = trained
  module = export.build_module(split, model, MAX_LEN, k=3)
  loaded = tf.saved_model.load(export.save_version(module, str(tmp_path / "exports")))
  raw = [["i3", "i4", "i5"], ["i17", "i18", "i19", "i0", "i1", "i2", "i3", "i4", "i5"]]
  history = tf.constant([row + [""] * (9 - len(row)) for row in raw])  # Right-padded.
  outputs = loaded.recommend(history=history)
  for row, ids in enumerate(raw):
    indices = split.item_vocabulary.lookup(ids)[-MAX_LEN:]
    scores = model(_history(indices[None])).numpy()[0]
    scores[split.item_vocabulary.lookup(ids)] = -np.inf
    scores[:2] = -np.inf
    expected = np.argsort(-scores, kind="stable")[:3]
    assert outputs["item_ids"].numpy()[row].astype(str).tolist() == list(
        split.item_vocabulary.to_ids(expected))
    np.testing.assert_allclose(outputs["scores"].numpy()[row], scores[expected], rtol=1e-5,
                               atol=1e-5)
  assert outputs["item_ids"].numpy()[0, 0].decode() == "i6"  # The successor.
  candidates = tf.constant([["i6", "i9"], ["i6", "i0"]])
  ranked = loaded.rank(history=history, candidates=candidates)["scores"].numpy()
  features = {"history": np.concatenate([
      _history(split.item_vocabulary.lookup(ids)[None, -MAX_LEN:])["history"] for ids in raw])}
  np.testing.assert_allclose(ranked, model.score_candidates(
      features, split.item_vocabulary.lookup(candidates.numpy().astype(str).reshape(-1))
      .reshape(2, 2)).numpy(), rtol=1e-5, atol=1e-5)


def test_next_k_and_phns_settings_are_logged_not_broken(trained, caplog):
  _, split, _, _ = trained
  config = config_lib.apply_overrides(_experiment_config(next_k=3, soft_labels=[1.0, 0.6, 0.3]),
                                      {"train": {"phns": {"preset": "easy"}}})
  with caplog.at_level(logging.WARNING):
    model = registry.get("sasrec").build(config, split)
  assert "data.next_k=3" in caplog.text and "ignores PHNS negatives" in caplog.text
  batch = next(iter(experiment_lib.Experiment(config, "/unused").training_stream(split)
                    .dataset(epochs=1)))
  assert batch["targets"].shape[-1] == 3 and "negatives" in batch
  assert np.isfinite(model.compute_loss(batch).numpy())
