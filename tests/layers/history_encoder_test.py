"""Tests of HistoryEncoder: experts and gate, gate context, last_only, saving."""

import numpy as np
import pytest
import tensorflow as tf

from tfrs_smoe.layers import history_encoder

MAX_LEN = 10


def _encoder(windows=(3, 0), **kwargs):
  tf.keras.utils.set_random_seed(0)
  settings = dict(num_users=5, windows=windows, num_blocks=1, num_heads=2, feed_forward_dim=8,
                  dropout=0.0, max_len=MAX_LEN, shared_blocks=1, user_dim=3,
                  gate_noise_stddev=0.0)
  settings.update(kwargs)
  return history_encoder.HistoryEncoder(**settings)


def _inputs(seed=0):
  rng = np.random.RandomState(seed)
  content = rng.normal(size=[3, MAX_LEN, 4]).astype(np.float32)
  mask = np.ones([3, MAX_LEN], bool)
  mask[1, :6] = False
  content[~mask] = 0.0
  return content, np.array([0, 2, 4], np.int32), mask


def test_vectors_are_the_gate_weighted_experts_at_every_position():
  encoder = _encoder()
  content, users, mask = _inputs()
  vectors, alpha = encoder((content, users), mask=mask)
  experts = encoder.experts(content, mask=mask).numpy()
  assert vectors.shape == (3, MAX_LEN, 4) and alpha.shape == (3, MAX_LEN, 2)
  np.testing.assert_allclose(vectors.numpy(), np.einsum("bte,bted->btd", alpha.numpy(), experts),
                             rtol=1e-5, atol=1e-6)
  last, last_alpha = encoder((content, users), mask=mask, last_only=True)
  np.testing.assert_allclose(last.numpy()[:, 0], vectors.numpy()[:, -1], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(last_alpha.numpy()[:, 0], alpha.numpy()[:, -1], rtol=1e-5)


def test_one_expert_is_bst_without_gate_or_user_embedding():
  encoder = _encoder(windows=(0,))
  content, users, mask = _inputs()
  vectors, alpha = encoder((content, users), mask=mask)
  assert alpha is None and encoder.gate is None and encoder.user_embedding is None
  np.testing.assert_allclose(vectors.numpy(), encoder.experts(content, mask=mask).numpy()[:, :, 0],
                             rtol=1e-6)


def test_the_gate_reads_the_user_and_the_history_length():
  content, users, mask = _inputs()
  plain = _encoder(user_dim=0)
  _, alpha = plain((content, users), mask=mask)
  _, other_users = plain((content, users[::-1]), mask=mask)
  np.testing.assert_allclose(alpha.numpy(), other_users.numpy(), rtol=1e-6)
  with_user = _encoder()
  _, alpha = with_user((content, users), mask=mask)
  _, other_users = with_user((content, users[::-1]), mask=mask)
  assert not np.allclose(alpha.numpy(), other_users.numpy())
  with_length = _encoder(user_dim=0, gate_context=("history_length",))
  inputs = with_length._gate_inputs(tf.constant(users), tf.constant(mask), last_only=False)
  counts = np.cumsum(mask, axis=1)
  np.testing.assert_allclose(inputs.numpy()[..., 0], np.log1p(counts) / np.log1p(MAX_LEN),
                             rtol=1e-6)


@pytest.mark.parametrize("kwargs", [{"gate_context": ("time_of_day",)}, {"num_users": 0},
                                    {"user_dim": -1}])
def test_bad_settings_are_errors(kwargs):
  with pytest.raises(ValueError):
    _encoder(**kwargs)


def test_serialization_round_trip():
  encoder = _encoder(windows=(2, 5, 0), block="pre_ln", pooling="last", expert_dropout=0.1,
                     gate_context=("history_length",), balance_weight=0.5)
  restored = tf.keras.utils.deserialize_keras_object(
      tf.keras.utils.serialize_keras_object(encoder))
  assert isinstance(restored, history_encoder.HistoryEncoder)
  assert restored.get_config() == encoder.get_config()


def test_saved_model_round_trip(tmp_path):
  content_input = tf.keras.Input([MAX_LEN, 4])
  user_input = tf.keras.Input([], dtype=tf.int32)
  mask_input = tf.keras.Input([MAX_LEN], dtype=tf.bool)
  vectors, alpha = _encoder(gate_context=("history_length",))(
      (content_input, user_input), mask=mask_input)
  model = tf.keras.Model([content_input, user_input, mask_input],
                         {"vectors": vectors, "alpha": alpha})
  inputs = list(_inputs())
  expected = model(inputs)
  model.save(str(tmp_path / "model"))
  loaded = tf.keras.models.load_model(str(tmp_path / "model"))
  outputs = loaded(inputs)
  for name in ("vectors", "alpha"):
    np.testing.assert_allclose(outputs[name].numpy(), expected[name].numpy(), rtol=1e-5,
                               atol=1e-6)


# Users 0 and 1 are reserved (unknown value 0); users 2-4 have plans 1, 2, 1.
PLANS = {"plan": np.array([0, 0, 1, 2, 1], np.int32)}


def test_the_gate_reads_the_users_features_and_bst_ignores_them():
  content, users, mask = _inputs()
  encoder = _encoder(user_dim=0, user_features=PLANS, feature_dim=3)
  assert encoder.get_config()["user_feature_sizes"] == {"plan": 3}
  _, alpha = encoder((content, users), mask=mask)
  inputs = encoder._gate_inputs(tf.constant(users), tf.constant(mask), last_only=True).numpy()
  embedding = encoder.user_features.embeddings[0].get_weights()[0]
  np.testing.assert_allclose(inputs[:, 0], [np.zeros(3), embedding[1], embedding[1]],
                             rtol=1e-6)
  # Users 2 and 4 share a plan: with the same history they get the same gate weights; user 3
  # (another plan) does not.
  same = (np.stack([content[0]] * 3), np.array([2, 4, 3], np.int32), np.ones([3, MAX_LEN], bool))
  _, alpha = encoder(same[:2], mask=same[2])
  np.testing.assert_allclose(alpha[0].numpy(), alpha[1].numpy(), rtol=1e-6)
  assert not np.allclose(alpha[0].numpy(), alpha[2].numpy())
  bst = _encoder(windows=(0,), user_features=PLANS)
  assert bst.user_features is None and bst.gate is None


def test_without_user_features_the_weights_are_todays():
  content, users, mask = _inputs()
  plain = _encoder()  # Each built right after its seed is set.
  expected, alpha = plain((content, users), mask=mask)
  empty = _encoder(user_features={})
  vectors, empty_alpha = empty((content, users), mask=mask)
  np.testing.assert_array_equal(vectors.numpy(), expected.numpy())
  np.testing.assert_array_equal(empty_alpha.numpy(), alpha.numpy())
  assert [w.name.split("/", 1)[-1] for w in empty.weights] == [
      w.name.split("/", 1)[-1] for w in plain.weights]


def test_user_features_serialization_and_saved_model_round_trip(tmp_path):
  encoder = _encoder(user_features=PLANS, feature_dim=2)
  restored = tf.keras.utils.deserialize_keras_object(
      tf.keras.utils.serialize_keras_object(encoder))
  assert restored.get_config() == encoder.get_config()
  content_input = tf.keras.Input([MAX_LEN, 4])
  user_input = tf.keras.Input([], dtype=tf.int32)
  mask_input = tf.keras.Input([MAX_LEN], dtype=tf.bool)
  vectors, alpha = encoder((content_input, user_input), mask=mask_input)
  model = tf.keras.Model([content_input, user_input, mask_input],
                         {"vectors": vectors, "alpha": alpha})
  inputs = list(_inputs())
  expected = model(inputs)
  model.save(str(tmp_path / "model"))
  loaded = tf.keras.models.load_model(str(tmp_path / "model"))
  np.testing.assert_allclose(loaded(inputs)["alpha"].numpy(), expected["alpha"].numpy(),
                             rtol=1e-5, atol=1e-6)
