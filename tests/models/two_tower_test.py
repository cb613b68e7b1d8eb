"""Tests of the TwoTower model: logQ loss against NumPy, estimator wiring, index, learning."""

import numpy as np
import pytest
import tensorflow as tf

from tfrs_smoe.data import sequences
from tfrs_smoe.data import splits
from tfrs_smoe.models import smoe_bst
from tfrs_smoe.models import two_tower

NUM_GENRES = 4
ITEMS_PER_GENRE = 12
NUM_ITEMS = 2 + NUM_GENRES * ITEMS_PER_GENRE
MAX_LEN = 8
TINY_ENCODER = smoe_bst.SMoEBSTConfig(item_dim=16, genre_dim=4, year_dim=0, user_dim=0,
                                      expert_windows=(2, 0), num_blocks=1, num_heads=1,
                                      feed_forward_dim=16, dropout=0.0)


def _item_features():
  genre = np.zeros([NUM_ITEMS, 1], np.int32)
  genre[2:, 0] = 1 + (np.arange(NUM_ITEMS - 2) // ITEMS_PER_GENRE)
  return {"genres": genre, "year_bucket": np.zeros([NUM_ITEMS], np.int32)}


def _model(correction="none", history_encoder="mean", counts=None, **config):
  tf.keras.utils.set_random_seed(0)
  return two_tower.TwoTower(
      NUM_ITEMS, 100, _item_features(), TINY_ENCODER,
      two_tower.TwoTowerConfig(history_encoder=history_encoder, query_hidden_units=(16,),
                               candidate_hidden_units=(32, 16), correction=correction,
                               temperature=0.2, **config),
      max_len=MAX_LEN, candidate_counts=counts)


def _batch(targets, engagement=None):
  rng = np.random.RandomState(0)
  size = len(targets)
  history = rng.randint(2, NUM_ITEMS, size=[size, MAX_LEN]).astype(np.int32)
  history[0, :3] = 0  # Left padding.
  return {"history": history, "user_index": np.arange(size, dtype=np.int32),
          "targets": np.array(targets, np.int32)[:, None],
          "target_weights": np.ones([size, 1], np.float32),
          "target_engagement": (np.ones([size, 1], np.float32) if engagement is None
                                else np.array(engagement, np.float32)[:, None])}


def _numpy_loss(query, candidates, targets, temperature, probability=None, weights=None):
  logits = query @ candidates.T / temperature
  if probability is not None:
    logits -= np.log(probability)[None, :]  # The logQ correction.
  loss = 0.0
  for row in range(len(targets)):
    row_logits = logits[row].copy()
    hits = (np.array(targets) == targets[row])
    hits[row] = False
    row_logits[hits] = -np.inf  # Accidental hits: the same item in another row.
    log_softmax = row_logits[row] - np.log(np.sum(np.exp(row_logits - row_logits.max()))) \
        - row_logits.max()
    loss -= (1.0 if weights is None else weights[row]) * log_softmax
  return loss


@pytest.mark.parametrize("correction", ["none", "counts"])
def test_loss_matches_numpy_with_logq_and_accidental_hits(correction):
  counts = np.arange(NUM_ITEMS, dtype=np.float64)
  model = _model(correction, counts=counts)
  targets = [5, 9, 5, 30]  # Item 5 twice: an accidental hit for both rows.
  batch = _batch(targets)
  query = model.query_vector(batch).numpy()
  candidates = model.candidate_vector(np.array(targets)).numpy()
  probability = counts[targets] / counts.sum() if correction == "counts" else None
  expected = _numpy_loss(query, candidates, targets, 0.2, probability)
  np.testing.assert_allclose(model.compute_loss(batch).numpy(), expected, rtol=1e-5)


def test_logq_subtracts_exactly_log_p_from_each_candidate_logit():
  counts = np.ones(NUM_ITEMS)
  counts[7] = 50.0
  corrected = _model("counts", counts=counts)
  plain = _model("none")
  batch = _batch([7, 12])
  p = counts[[7, 12]] / counts.sum()
  for model, correction in ((corrected, -np.log(p)), (plain, np.zeros(2))):
    query = model.query_vector(batch).numpy()
    candidates = model.candidate_vector(np.array([7, 12])).numpy()
    # Two candidates: row i's loss is log(1 + exp(l_i,other - l_i,i)), so subtracting log p_j
    # from candidate j's logit moves it by exactly log p_i - log p_other.
    logits = query @ candidates.T / 0.2 + correction[None, :]
    expected = sum(np.log1p(np.exp(row[1 - i] - row[i])) for i, row in enumerate(logits))
    assert model.compute_loss(batch).numpy() == pytest.approx(expected, rel=1e-5)


def test_reward_weighting_weights_each_row_by_its_engagement():
  model = _model(reward_weighting=True)
  targets, engagement = [3, 11, 20], [0.5, 1.0, 0.2]
  batch = _batch(targets, engagement)
  expected = _numpy_loss(model.query_vector(batch).numpy(),
                         model.candidate_vector(np.array(targets)).numpy(), targets, 0.2,
                         weights=engagement)
  np.testing.assert_allclose(model.compute_loss(batch).numpy(), expected, rtol=1e-5)


def test_streaming_correction_feeds_the_estimators_per_example_probability():
  model = _model("streaming", num_buckets=1000, num_hashes=2, estimator_learning_rate=0.5)
  model.compile(tf.keras.optimizers.SGD(0.0))
  targets = np.array([4, 4, 9, 17])
  model.fit(tf.data.Dataset.from_tensors(_batch(list(targets))).repeat(3), verbose=0)
  assert int(model.optimizer.iterations.numpy()) == 3
  per_step = model.estimator(targets, 0).numpy()
  assert per_step[0] > per_step[2]  # Item 4 comes twice per step.
  np.testing.assert_allclose(model.sampling_probability(tf.constant(targets)).numpy(),
                             per_step / 4, rtol=1e-6)
  expected = _numpy_loss(model.query_vector(_batch(list(targets))).numpy(),
                         model.candidate_vector(targets).numpy(), list(targets), 0.2,
                         per_step / 4)
  np.testing.assert_allclose(model.compute_loss(_batch(list(targets))).numpy(), expected,
                             rtol=1e-5)


@pytest.mark.parametrize("history_encoder", ["mean", "bst", "smoe_bst"])
def test_scores_are_cosines_and_the_index_returns_the_top_k(history_encoder):
  model = _model(history_encoder=history_encoder)
  batch = _batch([2, 3, 4])
  scores = model(batch).numpy()
  assert scores.shape == (3, NUM_ITEMS)
  # Cosines: dot products of unit-length query and candidate embeddings.
  query = model.query_vector(batch).numpy()
  table = model.candidate_table().numpy()
  np.testing.assert_allclose(np.linalg.norm(query, axis=1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(table[2:], axis=1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(scores, query @ table.T, rtol=1e-5, atol=1e-6)
  assert (model.gate is not None) == (history_encoder == "smoe_bst")
  candidates = np.array([[2, 7, 9], [30, 2, 2], [5, 6, 7]])
  np.testing.assert_allclose(model.score_candidates(batch, candidates).numpy(),
                             np.take_along_axis(scores, candidates, axis=1), rtol=1e-5,
                             atol=1e-6)
  top_scores, top_items = model.index(k=5)(model.query_vector(batch))
  np.testing.assert_array_equal(top_items.numpy(), np.argsort(-scores, axis=1)[:, :5])
  np.testing.assert_allclose(top_scores.numpy(), -np.sort(-scores, axis=1)[:, :5], rtol=1e-5)


def test_learns_a_users_genre_from_the_mean_of_the_history():
  rng = np.random.RandomState(0)
  users, items = [], []
  for user in range(160):
    genre = user % NUM_GENRES
    items.append(2 + genre * ITEMS_PER_GENRE + rng.choice(ITEMS_PER_GENRE, 10, replace=False))
    users.append(np.full(10, user + 2))
  log = splits.IndexedLog(
      user=np.concatenate(users).astype(np.int32), item=np.concatenate(items).astype(np.int32),
      timestamp=np.tile(np.arange(10), 160).astype(np.int64),
      engagement=np.ones(1600, np.float32), positive=np.ones(1600, bool))
  pipeline = sequences.SequencePipeline(MAX_LEN, next_k=1, soft_labels=(1.0,))
  model = _model("counts", counts=np.bincount(log.item, minlength=NUM_ITEMS))
  model.compile(tf.keras.optimizers.Adam(1e-2))
  model.fit(pipeline.windows(log).cache().shuffle(2000, seed=0).batch(64), epochs=8, verbose=0)
  genre_of = _item_features()["genres"][:, 0]
  history = np.stack(items)[:, :MAX_LEN]
  top = np.argsort(-model({"history": history, "user_index": np.zeros(160)}).numpy(),
                   axis=1)[:, :10]
  same_genre = np.mean(genre_of[top] == genre_of[history[:, :1]])
  assert same_genre > 0.9  # Chance: 1 / NUM_GENRES.


def test_bad_configs_are_rejected():
  with pytest.raises(ValueError, match="correction"):
    two_tower.TwoTowerConfig(correction="sampled")
  with pytest.raises(ValueError, match="history_encoder"):
    two_tower.TwoTowerConfig(history_encoder="gru")
  with pytest.raises(ValueError, match="same size"):
    two_tower.TwoTowerConfig(query_hidden_units=(32,), candidate_hidden_units=(64,))
  with pytest.raises(ValueError, match="temperature"):
    two_tower.TwoTowerConfig(temperature=0.0)
  with pytest.raises(ValueError, match="candidate_counts"):
    _model("counts")
  short_tables = {name: table[:-1] for name, table in _item_features().items()}
  with pytest.raises(ValueError, match="item feature tables"):
    two_tower.TwoTower(NUM_ITEMS, 100, short_tables, TINY_ENCODER, two_tower.TwoTowerConfig())


def test_scann_index_works_or_says_why_not():
  model = _model()
  reason = two_tower.scann_unavailable_reason()
  if reason:
    with pytest.raises(RuntimeError, match="ScaNN is not available"):
      model.index(k=5, scann=True)
    return
  batch = _batch([2, 3])
  _, approximate = model.index(k=5, scann=True)(model.query_vector(batch))
  _, exact = model.index(k=5)(model.query_vector(batch))
  overlap = np.mean([len(set(a) & set(e)) / 5 for a, e in zip(approximate.numpy(),
                                                              exact.numpy())])
  assert overlap >= 0.6


def test_a_user_feature_reveals_a_pattern_the_history_cannot():
  """A user's plan (a categorical user feature) says which genre they watch next; histories
  are random and the model has no user id embedding, so only the plan tells."""
  num_users = 2 + 200
  plan = np.zeros(num_users, np.int32)
  plan[2:] = 1 + np.arange(num_users - 2) % NUM_GENRES
  rng = np.random.RandomState(0)

  def batches(size, seed):
    rng = np.random.RandomState(seed)
    users = rng.randint(2, num_users, size).astype(np.int32)
    targets = 2 + (plan[users] - 1) * ITEMS_PER_GENRE + rng.randint(ITEMS_PER_GENRE, size=size)
    return {"history": rng.randint(2, NUM_ITEMS, [size, MAX_LEN]).astype(np.int32),
            "user_index": users, "targets": targets.astype(np.int32)[:, None],
            "target_weights": np.ones([size, 1], np.float32),
            "target_engagement": np.ones([size, 1], np.float32)}

  del rng
  train, held_out = batches(3000, 1), batches(200, 2)
  shares = []
  for user_features in (None, {"plan": plan}):
    tf.keras.utils.set_random_seed(0)
    model = two_tower.TwoTower(
        NUM_ITEMS, num_users, _item_features(), TINY_ENCODER,
        two_tower.TwoTowerConfig(query_hidden_units=(16,), candidate_hidden_units=(32, 16),
                                 correction="none", temperature=0.2),
        max_len=MAX_LEN, user_features=user_features)
    model.compile(tf.keras.optimizers.Adam(1e-2))
    model.fit(tf.data.Dataset.from_tensor_slices(train).batch(64), epochs=3, verbose=0)
    top = np.argsort(-model(held_out).numpy(), axis=1)[:, :10]
    genre_of = _item_features()["genres"][:, 0]
    shares.append(float(np.mean(genre_of[top] == plan[held_out["user_index"]][:, None])))
  without, with_feature = shares
  assert with_feature > 0.8 and with_feature > without + 0.3, shares  # Chance: 1/NUM_GENRES.
