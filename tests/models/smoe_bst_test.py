"""Tests of the SMoEBST model: shapes, scoring paths, a planted pattern, the gate, SavedModel."""

import numpy as np
import pytest
import tensorflow as tf

from tfrs_smoe.data import sequences
from tfrs_smoe.data import splits
from tfrs_smoe.models import smoe_bst
from tfrs_smoe.tasks import engagement_multitask as multitask

NUM_GENRES = 6
ITEMS_PER_GENRE = 10
NUM_ITEMS = 2 + NUM_GENRES * ITEMS_PER_GENRE  # Indices 0 and 1 are reserved.
MAX_LEN = 16


def _item_features():
  genre = np.zeros([NUM_ITEMS, 1], np.int32)
  genre[2:, 0] = 1 + (np.arange(NUM_ITEMS - 2) // ITEMS_PER_GENRE)
  return {"genres": genre, "year_bucket": np.zeros([NUM_ITEMS], np.int32)}


def _planted_sequences(num_users=240, length=MAX_LEN + 1, seed=0):
  """Even users are short-term: each item is followed by the next item index, round the
  catalogue. Odd users are long-term: items drawn at random from two favourite genres, so only
  the whole history tells what comes next."""
  rng = np.random.RandomState(seed)
  rows = []
  for user in range(num_users):
    if user % 2 == 0:
      start = rng.randint(NUM_ITEMS - 2)
      items = 2 + (start + np.arange(length)) % (NUM_ITEMS - 2)
    else:
      genres = rng.choice(NUM_GENRES, 2, replace=False)
      pool = np.concatenate([2 + g * ITEMS_PER_GENRE + np.arange(ITEMS_PER_GENRE)
                             for g in genres])
      items = rng.choice(pool, length, replace=False)
    rows.append(items)
  return np.array(rows, np.int32)


def _log(sequence_rows):
  num_users, length = sequence_rows.shape
  return splits.IndexedLog(
      user=np.repeat(np.arange(2, num_users + 2), length).astype(np.int32),
      item=sequence_rows.reshape(-1),
      timestamp=np.tile(np.arange(length), num_users).astype(np.int64),
      engagement=np.ones(num_users * length, np.float32),
      positive=np.ones(num_users * length, bool))


def _model(windows=(2, 0), entropy_weight=0.0, scorer="dot", softmax="full", balance_weight=0.0,
           encoder=None, **task):
  """The paper's S-MoE-BST (each expert a post-LN BST with attention pooling, the multitask
  loss), which these tests were written for; `encoder` and `task` override it."""
  tf.keras.utils.set_random_seed(0)
  paper = {"shared_blocks": 0, "block": "post_ln", "pooling": "attention"}
  config = smoe_bst.SMoEBSTConfig(item_dim=24, genre_dim=8, year_dim=0, user_dim=0,
                                  expert_windows=windows, num_blocks=1, num_heads=2,
                                  feed_forward_dim=32, dropout=0.0, gate_hidden_units=(16,),
                                  gate_noise_stddev=0.5, entropy_weight=entropy_weight,
                                  balance_weight=balance_weight, scorer=scorer,
                                  **{**paper, **(encoder or {})})
  task = {**multitask.PAPER_MULTITASK, **task}
  return smoe_bst.SMoEBST(NUM_ITEMS, 300, _item_features(), config,
                          multitask.MultitaskConfig(softmax=softmax, **task), max_len=MAX_LEN)


def _train(model, sequence_rows, epochs):
  pipeline = sequences.SequencePipeline(max_len=MAX_LEN, next_k=2, soft_labels=(1.0, 0.5))
  dataset = pipeline.sequences(_log(sequence_rows[:, :-1])).cache()
  model.compile(tf.keras.optimizers.Adam(1e-2))
  return model.fit(dataset.shuffle(1000, seed=0).batch(32), epochs=epochs, verbose=0)


def _features(sequence_rows):
  history = np.zeros([len(sequence_rows), MAX_LEN], np.int32)
  history[:, 1:] = sequence_rows[:, :MAX_LEN - 1]  # Left-padded, the held-out item removed.
  return {"history": history, "user_index": np.arange(2, len(sequence_rows) + 2, dtype=np.int32)}


def _hit_rate_at_10(scores, targets, history):
  scores = np.array(scores)
  np.put_along_axis(scores, history, -np.inf, axis=1)
  scores[:, :2] = -np.inf
  top = np.argsort(-scores, axis=1)[:, :10]
  return float(np.mean((top == targets[:, None]).any(1)))


@pytest.fixture(scope="module")
def trained():
  rows = _planted_sequences()
  model = _model(entropy_weight=0.0)
  _train(model, rows, epochs=25)
  held_out = _planted_sequences(num_users=200, seed=1)
  return model, held_out


def test_shapes_of_every_path():
  model = _model(windows=(2, 4, 0))
  features = _features(_planted_sequences(num_users=3)[:, :MAX_LEN])
  vectors, alpha = model.encode(features)
  assert vectors.shape == (3, MAX_LEN, model.dim) and alpha.shape == (3, MAX_LEN, 3)
  users, last_alpha = model.user_vector(features)
  np.testing.assert_allclose(users.numpy(), vectors.numpy()[:, -1], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(last_alpha.numpy(), alpha.numpy()[:, -1], rtol=1e-5)
  scores = model(features).numpy()
  assert scores.shape == (3, NUM_ITEMS)
  candidates = np.array([[5, 9], [2, 3], [40, 7]], np.int32)
  np.testing.assert_allclose(model.score_candidates(features, candidates).numpy(),
                             np.take_along_axis(scores, candidates, axis=1), rtol=1e-4,
                             atol=1e-5)


def test_leading_padding_cut_from_a_batch_changes_no_loss():
  pipeline = sequences.SequencePipeline(max_len=MAX_LEN, next_k=2, soft_labels=(1.0, 0.5))
  batch = next(iter(pipeline.sequences(_log(_planted_sequences(num_users=6, length=9))).batch(6)))
  batch["negatives"] = tf.random.stateless_uniform([6, MAX_LEN, 4], [1, 2], 2, NUM_ITEMS,
                                                   tf.int32)
  cut = sequences.SequencePipeline.without_leading_padding(batch)
  assert cut["history"].shape[1] == 8
  model = _model(windows=(2, 4, 0), entropy_weight=1.0, balance_weight=1.0)
  full_loss = model.compute_loss(batch).numpy()
  full_gate_terms = [loss.numpy() for loss in model.losses]
  assert len(full_gate_terms) == 2  # The entropy and balance terms.
  np.testing.assert_allclose(model.compute_loss(cut), full_loss, rtol=1e-5)
  np.testing.assert_allclose([loss.numpy() for loss in model.losses], full_gate_terms, rtol=1e-5)


def test_one_window_is_bst_without_a_gate():
  model = _model(windows=(0,))
  _, alpha = model.encode(_features(_planted_sequences(num_users=2)[:, :MAX_LEN]))
  assert model.gate is None and alpha is None


def test_mlp_scorer_trains_with_the_sampled_softmax():
  model = _model(scorer="mlp", softmax="sampled")
  history = _train(model, _planted_sequences(num_users=64), epochs=3).history
  assert history["loss_softmax"][-1] < history["loss_softmax"][0]
  assert model(_features(_planted_sequences(num_users=2))).shape == (2, NUM_ITEMS)


@pytest.mark.parametrize("correction", ["counts", "streaming"])
def test_logq_corrected_popularity_sampled_softmax_trains_and_learns(correction):
  rows = _planted_sequences(num_users=64)
  counts = np.bincount(rows.reshape(-1), minlength=NUM_ITEMS).astype(np.float64)
  tf.keras.utils.set_random_seed(0)
  config = smoe_bst.SMoEBSTConfig(item_dim=24, genre_dim=8, year_dim=0, user_dim=0,
                                  expert_windows=(2, 0), num_blocks=1, num_heads=2,
                                  feed_forward_dim=32, dropout=0.0, gate_hidden_units=(16,),
                                  shared_blocks=0, block="post_ln", pooling="attention")
  model = smoe_bst.SMoEBST(
      NUM_ITEMS, 300, _item_features(), config,
      multitask.MultitaskConfig(softmax="sampled", negative_sampler="popularity",
                                num_sampled=16, sampling_correction=correction,
                                **multitask.PAPER_MULTITASK),
      max_len=MAX_LEN, candidate_counts=counts)
  history = _train(model, rows, epochs=8).history
  assert history["loss_softmax"][-1] < 0.9 * history["loss_softmax"][0]
  held_out = _planted_sequences(num_users=100, seed=1)
  features = _features(held_out)
  scores = model(features).numpy()
  popularity_hits = _hit_rate_at_10(np.tile(counts, [len(held_out), 1]), held_out[:, -1],
                                    features["history"])
  assert _hit_rate_at_10(scores, held_out[:, -1], features["history"]) > popularity_hits + 0.2


def test_mismatched_feature_tables_are_an_error():
  features = _item_features()
  features["genres"] = features["genres"][:-1]
  with pytest.raises(ValueError, match="item feature tables"):
    smoe_bst.SMoEBST(NUM_ITEMS, 10, features, smoe_bst.SMoEBSTConfig(),
                     multitask.MultitaskConfig())


def test_learns_the_planted_patterns_better_than_popularity(trained):
  model, held_out = trained
  features = _features(held_out)
  targets = held_out[:, MAX_LEN - 1]
  model_hits = _hit_rate_at_10(model(features).numpy(), targets, features["history"])
  counts = np.bincount(_planted_sequences().reshape(-1), minlength=NUM_ITEMS).astype(float)
  popularity_hits = _hit_rate_at_10(np.tile(counts, [len(held_out), 1]), targets,
                                    features["history"])
  short_term_hits = _hit_rate_at_10(model(features).numpy()[::2], targets[::2],
                                    features["history"][::2])
  assert short_term_hits > 0.9  # The successor rule is learnt.
  assert model_hits > popularity_hits + 0.3


def test_gate_routes_short_term_users_to_the_short_term_expert(trained):
  model, held_out = trained
  _, alpha = model.user_vector(_features(held_out))
  short_weight = alpha.numpy()[:, 0]
  assert short_weight[::2].mean() > short_weight[1::2].mean() + 0.1


def test_shared_pre_ln_experts_with_expert_dropout_learn_and_route_the_planted_patterns():
  model = _model(encoder={"shared_blocks": 1, "block": "pre_ln", "expert_dropout": 0.2,
                          "gate_context": ("history_length",)})
  _train(model, _planted_sequences(), epochs=25)
  held_out = _planted_sequences(num_users=200, seed=1)
  features = _features(held_out)
  targets = held_out[:, MAX_LEN - 1]
  scores = model(features).numpy()
  assert _hit_rate_at_10(scores[::2], targets[::2], features["history"][::2]) > 0.9
  _, alpha = model.user_vector(features)
  short_weight = alpha.numpy()[:, 0]
  assert short_weight[::2].mean() > short_weight[1::2].mean() + 0.1
  assert alpha.numpy().mean(axis=0).min() > 0.1  # Both experts in use.


@pytest.mark.parametrize("encoder", [{"block": "mid_ln"}, {"pooling": "max"},
                                     {"shared_blocks": 0, "num_blocks": 0},
                                     {"expert_dropout": 1.0}, {"gate_context": ("weekday",)}])
def test_bad_encoder_settings_name_the_key(encoder):
  with pytest.raises(ValueError, match="encoder."):
    smoe_bst.SMoEBSTConfig(**encoder)


def test_entropy_term_keeps_the_gate_from_collapsing(trained):
  collapsed, held_out = trained
  regularised = _model(entropy_weight=1.0)
  _train(regularised, _planted_sequences(), epochs=25)

  def mean_entropy(model):
    _, alpha = model.user_vector(_features(held_out))
    alpha = alpha.numpy()
    return float(np.mean(-np.sum(alpha * np.log(alpha + 1e-12), axis=-1)))

  assert abs(mean_entropy(regularised) - 0.52) < 0.2
  assert mean_entropy(regularised) > mean_entropy(collapsed) + 0.1


def test_saved_model_answers_like_the_keras_model(tmp_path):
  model = _model(windows=(2, 0))
  _train(model, _planted_sequences(num_users=16), epochs=1)
  features = _features(_planted_sequences(num_users=4, seed=2))
  signature = tf.function(lambda history, user_index: model(
      {"history": history, "user_index": user_index}), input_signature=[
          tf.TensorSpec([None, MAX_LEN], tf.int32, name="history"),
          tf.TensorSpec([None], tf.int32, name="user_index")])
  module = tf.Module()
  module.model = model
  module.scores = signature
  tf.saved_model.save(module, str(tmp_path / "model"))
  loaded = tf.saved_model.load(str(tmp_path / "model"))
  np.testing.assert_allclose(loaded.scores(**features).numpy(), model(features).numpy(),
                             rtol=1e-5, atol=1e-5)


def test_an_item_feature_reveals_a_pattern_the_ids_cannot():
  """Each user watches titles of one studio (a categorical item feature, unrelated to the
  genres); half of each studio's titles never appear in training. Only the studio tells which
  of those cold titles a user will like."""
  rng = np.random.RandomState(0)
  studio = np.zeros(NUM_ITEMS, np.int32)
  studio[2:] = 1 + rng.permutation(np.arange(NUM_ITEMS - 2) % 3)
  cold = np.zeros(NUM_ITEMS, bool)
  for s in (1, 2, 3):
    cold[rng.permutation(np.flatnonzero(studio == s))[:10]] = True

  def rows(num_users, seed):
    rng = np.random.RandomState(seed)
    studios = 1 + np.arange(num_users) % 3
    return studios, np.array([rng.choice(np.flatnonzero((studio == s) & ~cold), MAX_LEN + 1)
                              for s in studios], np.int32)

  _, train_rows = rows(180, 1)
  studios, held_out = rows(90, 2)
  shares = []
  for categorical in (None, {"studio": studio}):
    tf.keras.utils.set_random_seed(0)
    config = smoe_bst.SMoEBSTConfig(item_dim=24, genre_dim=8, year_dim=0, user_dim=0,
                                    expert_windows=(0,), num_blocks=1, num_heads=2,
                                    feed_forward_dim=32, dropout=0.0)
    model = smoe_bst.SMoEBST(NUM_ITEMS, 300, _item_features(), config,
                             multitask.MultitaskConfig(softmax="full"), max_len=MAX_LEN,
                             item_categorical=categorical)
    _train(model, train_rows, epochs=6)
    scores = model(_features(held_out)).numpy()
    scores[:, ~cold] = -np.inf  # Rank the cold titles only.
    top = np.argsort(-scores, axis=1)[:, :5]
    shares.append(float(np.mean(studio[top] == studios[:, None])))
  without, with_feature = shares
  assert with_feature > 0.6 and with_feature > without + 0.2, shares  # Chance: 1/3.


def test_auxiliary_next_k_head_learns_the_item_after_next_and_the_served_vector_the_next():
  model = _model(windows=(0,), next_k_mode="auxiliary", next_k_weight=0.5)
  _train(model, _planted_sequences(), epochs=25)
  held_out = _planted_sequences(num_users=200, seed=1)[::2]  # Short-term users.
  features = _features(held_out)
  history = features["history"]
  served = model(features).numpy()
  assert _hit_rate_at_10(served, held_out[:, MAX_LEN - 1], history) > 0.9
  users, _ = model.user_vector(features)
  future = model.scorer.score_all(model.future_head(users), model.item_table()).numpy()
  after_next = 2 + (held_out[:, MAX_LEN - 1] - 2 + 1) % (NUM_ITEMS - 2)
  np.put_along_axis(future, history, -np.inf, axis=1)
  future[:, :2] = -np.inf
  assert np.mean(np.argmax(future, axis=1) == after_next) > 0.8
  # The served vector ranks the next item above the one after it.
  rows = np.arange(len(held_out))
  assert np.mean(served[rows, held_out[:, MAX_LEN - 1]] > served[rows, after_next]) > 0.9
