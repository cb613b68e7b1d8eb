"""Tests of AttentionPooling against a NumPy computation, masks, serialization and SavedModel."""

import numpy as np
import tensorflow as tf

from tfrs_smoe.layers import attention_pooling


def _softmax(x):
  e = np.exp(x - x.max())
  return e / e.sum()


def _layer_with_kernel(kernel):
  layer = attention_pooling.AttentionPooling()
  layer(tf.zeros([1, 1, len(kernel)]))
  layer.set_weights([np.asarray(kernel, np.float32)[:, None]])
  return layer


def test_pooling_matches_numpy_with_padding_masked():
  rng = np.random.RandomState(0)
  hidden = rng.normal(size=[2, 4, 3]).astype(np.float32)
  kernel = np.array([0.5, -1.0, 2.0], np.float32)
  mask = np.array([[True, True, True, True], [False, True, True, False]])
  pooled = _layer_with_kernel(kernel)(hidden, mask=mask).numpy()
  for b in range(2):
    valid = hidden[b][mask[b]]
    expected = _softmax(valid @ kernel) @ valid
    np.testing.assert_allclose(pooled[b], expected, rtol=1e-5, atol=1e-6)


def test_per_position_pooling_under_a_causal_band_matches_windows():
  rng = np.random.RandomState(1)
  hidden = rng.normal(size=[1, 5, 2]).astype(np.float32)
  layer = _layer_with_kernel([1.0, 0.3])
  # Position t may pool positions t-1 and t (a band of width 2).
  t, s = np.meshgrid(np.arange(5), np.arange(5), indexing="ij")
  band = (s <= t) & (s > t - 2)
  per_position = layer(hidden, attention_mask=band).numpy()
  for position in range(5):
    window = hidden[:, max(0, position - 1):position + 1]
    np.testing.assert_allclose(per_position[0, position], layer(window).numpy()[0],
                               rtol=1e-5, atol=1e-6)


def test_fully_masked_rows_pool_to_zeros():
  pooled = _layer_with_kernel([1.0, 1.0])(tf.ones([1, 3, 2]), mask=tf.zeros([1, 3], tf.bool))
  np.testing.assert_array_equal(pooled.numpy(), np.zeros([1, 2]))


def test_keras_mask_from_embedding_is_used():
  inputs = tf.keras.Input([4], dtype=tf.int32)
  embedded = tf.keras.layers.Embedding(10, 3, mask_zero=True)(inputs)
  pooling = attention_pooling.AttentionPooling()
  model = tf.keras.Model(inputs, pooling(embedded))
  embedding = model.layers[1].get_weights()[0]
  kernel = pooling.get_weights()[0][:, 0]
  items = embedding[[5, 6]]
  expected = _softmax(items @ kernel) @ items  # Padding (item 0) takes no part.
  for ids in ([0, 0, 5, 6], [5, 0, 0, 6]):
    np.testing.assert_allclose(model(tf.constant([ids])).numpy()[0], expected, rtol=1e-5,
                               atol=1e-6)


def test_serialization_round_trip():
  layer = attention_pooling.AttentionPooling(use_bias=True, name="pool")
  restored = tf.keras.utils.deserialize_keras_object(tf.keras.utils.serialize_keras_object(layer))
  assert isinstance(restored, attention_pooling.AttentionPooling)
  assert restored.get_config() == layer.get_config()


def test_saved_model_round_trip(tmp_path):
  inputs = tf.keras.Input([6, 4])
  mask = tf.keras.Input([6], dtype=tf.bool)
  model = tf.keras.Model([inputs, mask],
                         attention_pooling.AttentionPooling()(inputs, mask=mask))
  hidden = np.random.RandomState(2).normal(size=[3, 6, 4]).astype(np.float32)
  valid = np.array([[True] * 6, [False] * 2 + [True] * 4, [True] + [False] * 5])
  expected = model([hidden, valid]).numpy()
  model.save(str(tmp_path / "model"))
  loaded = tf.keras.models.load_model(str(tmp_path / "model"))
  np.testing.assert_allclose(loaded([hidden, valid]).numpy(), expected, rtol=1e-6)
