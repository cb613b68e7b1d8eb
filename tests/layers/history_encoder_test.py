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
