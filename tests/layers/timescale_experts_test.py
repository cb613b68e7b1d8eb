"""Tests of TimescaleExperts: causality, time-scale bands, serialization and SavedModel."""

import numpy as np
import pytest
import tensorflow as tf

from tfrs_smoe.layers import timescale_experts


def _experts(windows, num_blocks=1, **kwargs):
  tf.keras.utils.set_random_seed(0)
  layer = timescale_experts.TimescaleExperts(windows, num_blocks=num_blocks, num_heads=2,
                                             feed_forward_dim=8, dropout=0.0, max_len=12,
                                             **kwargs)
  layer.build([None, 12, 4])
  return layer


def _history(seed=0):
  return np.random.RandomState(seed).normal(size=[2, 12, 4]).astype(np.float32)


def test_one_output_per_position_and_expert_and_zeros_at_padding():
  mask = np.ones([2, 12], bool)
  mask[1, :5] = False
  outputs = _experts((2, 0))(_history(), mask=mask).numpy()
  assert outputs.shape == (2, 12, 2, 4)
  np.testing.assert_array_equal(outputs[1, :5], np.zeros([5, 2, 4]))
  assert np.all(np.abs(outputs[1, 5:]).sum(-1) > 0)


def test_no_position_sees_the_future():
  layer = _experts((3, 0), num_blocks=2)
  history = _history()
  changed = history.copy()
  changed[:, 8:] += 5.0
  before, after = layer(history).numpy(), layer(changed).numpy()
  np.testing.assert_allclose(after[:, :8], before[:, :8], rtol=1e-5, atol=1e-5)
  assert not np.allclose(after[:, 8:], before[:, 8:])


@pytest.mark.parametrize("num_blocks", [1, 2])
def test_a_windowed_expert_ignores_items_beyond_its_receptive_field(num_blocks):
  window = 3
  layer = _experts((window, 0), num_blocks=num_blocks)
  history = _history(1)
  changed = history.copy()
  changed[:, 2] += 5.0  # An old item.
  last = 11
  # Blocks widen the band: position t depends on the last B * (w - 1) + 1 items.
  reach = num_blocks * (window - 1) + 1
  assert 2 < last - reach + 1  # The changed item is out of the short expert's reach.
  before, after = layer(history).numpy(), layer(changed).numpy()
  np.testing.assert_allclose(after[:, last, 0], before[:, last, 0], rtol=1e-5, atol=1e-5)
  assert not np.allclose(after[:, last, 1], before[:, last, 1])  # The long-term expert sees it.


ARCHITECTURES = [
    {"shared_blocks": 1, "num_blocks": 1},
    {"shared_blocks": 1, "num_blocks": 1, "block": "pre_ln"},
    {"shared_blocks": 0, "num_blocks": 2, "block": "pre_ln", "pooling": "last"},
    {"shared_blocks": 2, "num_blocks": 0},
]


@pytest.mark.parametrize("kwargs", ARCHITECTURES)
def test_every_architecture_is_causal_and_last_only_is_the_last_row(kwargs):
  layer = _experts((3, 0), **kwargs)
  history = _history()
  mask = np.ones([2, 12], bool)
  mask[1, :4] = False
  changed = history.copy()
  changed[:, 8:] += 5.0
  before = layer(history, mask=mask).numpy()
  np.testing.assert_allclose(layer(changed, mask=mask).numpy()[:, :8], before[:, :8],
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(before[1, :4], np.zeros([4, 2, 4]))
  last = layer(history, mask=mask, last_only=True).numpy()
  assert last.shape == (2, 1, 2, 4)
  np.testing.assert_allclose(last[:, 0], before[:, -1], rtol=1e-5, atol=1e-6)


def test_shared_blocks_make_the_short_expert_see_old_items_and_share_weights():
  window = 2
  separate = _experts((window, 0), num_blocks=1)
  shared = _experts((window, 0), num_blocks=1, shared_blocks=1)
  history = _history(2)
  changed = history.copy()
  changed[:, 1] += 5.0  # An old item, beyond the band of the short expert's own block.
  for layer, sees_it in ((separate, False), (shared, True)):
    moved = not np.allclose(layer(changed).numpy()[:, -1, 0], layer(history).numpy()[:, -1, 0],
                            atol=1e-5)
    assert moved == sees_it
  # One shared encoder plus one block per expert: fewer weights than two whole encoders.
  deep = _experts((window, 0), num_blocks=2)
  deep(history)
  assert shared.count_params() < deep.count_params()


def test_bad_settings_are_errors():
  for windows in ((), (3, -1)):
    with pytest.raises(ValueError):
      timescale_experts.TimescaleExperts(windows)
  for kwargs in ({"num_blocks": 0}, {"block": "mid_ln"}, {"pooling": "max"},
                 {"shared_blocks": 1, "num_blocks": 0, "pooling": "last"}):
    with pytest.raises(ValueError):
      timescale_experts.TimescaleExperts((3, 0), **kwargs)


def test_serialization_round_trip():
  layer = timescale_experts.TimescaleExperts((4, 0), num_blocks=1, num_heads=1,
                                             feed_forward_dim=16, dropout=0.3, max_len=20,
                                             shared_blocks=1, block="pre_ln", pooling="last")
  restored = tf.keras.utils.deserialize_keras_object(tf.keras.utils.serialize_keras_object(layer))
  assert isinstance(restored, timescale_experts.TimescaleExperts)
  assert restored.get_config() == layer.get_config()


def test_saved_model_round_trip(tmp_path):
  inputs = tf.keras.Input([12, 4])
  mask = tf.keras.Input([12], dtype=tf.bool)
  layer = timescale_experts.TimescaleExperts((2, 0), num_blocks=1, num_heads=2,
                                             feed_forward_dim=8, max_len=12, shared_blocks=1)
  model = tf.keras.Model([inputs, mask], layer(inputs, mask=mask))
  valid = np.ones([2, 12], bool)
  valid[0, :4] = False
  expected = model([_history(), valid]).numpy()
  model.save(str(tmp_path / "model"))
  loaded = tf.keras.models.load_model(str(tmp_path / "model"))
  np.testing.assert_allclose(loaded([_history(), valid]).numpy(), expected, rtol=1e-5,
                             atol=1e-6)
