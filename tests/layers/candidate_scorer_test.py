"""Tests of CandidateScorer: dot and MLP scores against NumPy, whole-catalogue scoring, saving."""

import numpy as np
import pytest
import tensorflow as tf

from tfrs_smoe.layers import candidate_scorer


def _data(seed=0):
  rng = np.random.RandomState(seed)
  return (rng.normal(size=[3, 4]).astype(np.float32),
          rng.normal(size=[3, 5, 4]).astype(np.float32),
          rng.normal(size=[7, 4]).astype(np.float32))


def test_dot_scores_are_inner_products():
  users, items, table = _data()
  scorer = candidate_scorer.CandidateScorer("dot")
  np.testing.assert_allclose(scorer((users, items)).numpy(),
                             np.einsum("bd,bcd->bc", users, items), rtol=1e-5)
  np.testing.assert_allclose(scorer.score_all(users, table).numpy(), users @ table.T, rtol=1e-5)


def test_mlp_scores_match_numpy():
  users, items, _ = _data()
  scorer = candidate_scorer.CandidateScorer("mlp", hidden_units=(6,))
  scores = scorer((users, items)).numpy()
  hidden_kernel, hidden_bias, out_kernel, out_bias = scorer.get_weights()
  pairs = np.concatenate([np.broadcast_to(users[:, None], items.shape), items,
                          users[:, None] * items], axis=-1)
  expected = (np.maximum(pairs @ hidden_kernel + hidden_bias, 0) @ out_kernel + out_bias)[..., 0]
  np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-5)


def test_chunked_catalogue_scoring_equals_scoring_every_item():
  users, _, table = _data()
  scorer = candidate_scorer.CandidateScorer("mlp", hidden_units=(6,), items_per_chunk=3)
  direct = scorer((users, np.broadcast_to(table[None], [3, 7, 4]))).numpy()
  np.testing.assert_allclose(scorer.score_all(users, table).numpy(), direct, rtol=1e-5,
                             atol=1e-6)


def test_bad_settings_are_errors():
  with pytest.raises(ValueError):
    candidate_scorer.CandidateScorer("cosine")
  with pytest.raises(ValueError):
    candidate_scorer.CandidateScorer("mlp", items_per_chunk=0)


def test_serialization_round_trip():
  scorer = candidate_scorer.CandidateScorer("mlp", hidden_units=(8, 4), items_per_chunk=64)
  restored = tf.keras.utils.deserialize_keras_object(
      tf.keras.utils.serialize_keras_object(scorer))
  assert isinstance(restored, candidate_scorer.CandidateScorer)
  assert restored.get_config() == scorer.get_config()


def test_saved_model_round_trip(tmp_path):
  users_input = tf.keras.Input([4])
  items_input = tf.keras.Input([5, 4])
  scorer = candidate_scorer.CandidateScorer("mlp", hidden_units=(6,))
  model = tf.keras.Model([users_input, items_input], scorer((users_input, items_input)))
  users, items, _ = _data(1)
  expected = model([users, items]).numpy()
  model.save(str(tmp_path / "model"))
  loaded = tf.keras.models.load_model(str(tmp_path / "model"))
  np.testing.assert_allclose(loaded([users, items]).numpy(), expected, rtol=1e-5)
