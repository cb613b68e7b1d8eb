"""Tests of the BST encoder: masks, causality, recency positions, serialization, SavedModel."""

import numpy as np
import pytest
import tensorflow as tf

from tfrs_smoe.layers import behavior_sequence_transformer as bst


def _encoder(**kwargs):
  settings = dict(num_blocks=2, num_heads=2, feed_forward_dim=16, dropout=0.0, max_len=6)
  settings.update(kwargs)
  return bst.BehaviorSequenceTransformer(**settings)


def _hidden(batch=2, time=6, dim=8, seed=0):
  return tf.constant(np.random.RandomState(seed).normal(size=[batch, time, dim]), tf.float32)


def test_banded_causal_mask_by_hand():
  np.testing.assert_array_equal(bst.banded_causal_mask(4, window=2).numpy(), [
      [1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]])
  np.testing.assert_array_equal(bst.banded_causal_mask(3).numpy(), np.tril(np.ones([3, 3])))
  with pytest.raises(ValueError, match="window"):
    bst.banded_causal_mask(3, window=0)


def test_padding_does_not_leak_and_comes_out_as_zeros():
  encoder = _encoder()
  hidden = _hidden()
  mask = tf.constant([[False, False, True, True, True, True]] * 2)
  changed = tf.concat([tf.random.normal([2, 2, 8]) * 100, hidden[:, 2:]], axis=1)
  first = encoder(hidden, mask=mask).numpy()
  second = encoder(changed, mask=mask).numpy()
  np.testing.assert_allclose(first[:, 2:], second[:, 2:], rtol=1e-4, atol=1e-5)
  np.testing.assert_array_equal(first[:, :2], np.zeros([2, 2, 8]))


def test_causal_mask_makes_outputs_independent_of_the_future():
  encoder = _encoder()
  hidden = _hidden()
  future_changed = tf.concat([hidden[:, :4], hidden[:, 4:] + 5.0], axis=1)
  causal = bst.banded_causal_mask(6)
  first = encoder(hidden, attention_mask=causal).numpy()
  second = encoder(future_changed, attention_mask=causal).numpy()
  np.testing.assert_allclose(first[:, :4], second[:, :4], rtol=1e-4, atol=1e-5)
  assert not np.allclose(first[:, 4:], second[:, 4:])


def test_one_block_band_sees_only_the_window():
  encoder = _encoder(num_blocks=1)
  hidden = _hidden()
  past_changed = tf.concat([hidden[:, :3] - 5.0, hidden[:, 3:]], axis=1)
  band = bst.banded_causal_mask(6, window=2)
  first = encoder(hidden, attention_mask=band).numpy()
  second = encoder(past_changed, attention_mask=band).numpy()
  # Positions 4 and 5 attend to 3..5 only.
  np.testing.assert_allclose(first[:, 4:], second[:, 4:], rtol=1e-4, atol=1e-5)


def test_positions_count_from_the_most_recent_item():
  """A history and the same history with more left padding encode the same real positions."""
  encoder = _encoder()
  items = _hidden(batch=1, time=3)
  short = encoder(tf.concat([tf.zeros([1, 1, 8]), items], axis=1),
                  mask=tf.constant([[False, True, True, True]])).numpy()
  long = encoder(tf.concat([tf.zeros([1, 3, 8]), items], axis=1),
                 mask=tf.constant([[False, False, False, True, True, True]])).numpy()
  np.testing.assert_allclose(short[:, 1:], long[:, 3:], rtol=1e-4, atol=1e-5)


def test_bad_settings_are_errors():
  with pytest.raises(ValueError, match="divisible"):
    _encoder(num_heads=3)(_hidden())
  with pytest.raises(ValueError, match="dropout"):
    _encoder(dropout=1.0)


def test_serialization_round_trip():
  encoder = _encoder(dropout=0.2, name="bst")
  restored = tf.keras.utils.deserialize_keras_object(
      tf.keras.utils.serialize_keras_object(encoder))
  assert restored.get_config() == encoder.get_config()


def test_saved_model_round_trip(tmp_path):
  inputs = tf.keras.Input([6, 8])
  mask = tf.keras.Input([6], dtype=tf.bool)
  outputs = _encoder()(inputs, mask=mask, attention_mask=bst.banded_causal_mask(6, window=3))
  model = tf.keras.Model([inputs, mask], outputs)
  hidden = _hidden().numpy()
  valid = np.array([[True] * 6, [False] * 3 + [True] * 3])
  expected = model([hidden, valid]).numpy()
  model.save(str(tmp_path / "model"))
  loaded = tf.keras.models.load_model(str(tmp_path / "model"))
  np.testing.assert_allclose(loaded([hidden, valid]).numpy(), expected, rtol=1e-5, atol=1e-6)
