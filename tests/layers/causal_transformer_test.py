"""Tests of SASRec's encoder: the reference's formulas, causality, padding, serialization."""

# The NumPy reference reads the encoder's sublayers.
# pylint: disable=protected-access

import numpy as np
import pytest
import tensorflow as tf

from tfrs_smoe.layers import causal_transformer as ct

DIM = 8


def _encoder(**kwargs):
  settings = dict(num_blocks=2, num_heads=2, feed_forward_dim=12, dropout=0.0, max_len=6)
  settings.update(kwargs)
  return ct.CausalTransformer(**settings)


def _inputs(batch=2, time=6, seed=0):
  return tf.constant(np.random.RandomState(seed).normal(size=[batch, time, DIM]), tf.float32)


def _randomize(encoder, seed=1):
  """Random values for every weight (LayerNorm scales and biases included), so that no term
  of the formulas hides behind a zero bias or a unit scale."""
  rng = np.random.RandomState(seed)
  for variable in encoder.weights:
    variable.assign(rng.normal(scale=0.5, size=variable.shape).astype(np.float32))


def _reference(encoder, inputs, mask):
  """The encoder's forward pass written out in NumPy after kang205/SASRec (model.py,
  modules.py: `normalize`, `multihead_attention`, `feedforward`), residual "normalized", or
  the paper's pre-LN equation (residual "input")."""
  weights = lambda layer: [w.numpy() for w in layer.weights]

  def norm(layer, x):
    gamma, beta = weights(layer)
    mean = x.mean(-1, keepdims=True)
    variance = x.var(-1, keepdims=True)
    return gamma * (x - mean) / np.sqrt(variance + encoder.layer_norm_epsilon) + beta

  def dense(layer, x):
    kernel, bias = weights(layer)
    return x @ kernel + bias

  def attention(block, queries, keys):
    heads = encoder.num_heads
    split = lambda x: np.concatenate(np.split(x, heads, axis=2), axis=0)  # (h*N, T, C/h)
    q, k, v = (split(dense(block[n], x)) for n, x in (("query", queries), ("key", keys),
                                                        ("value", keys)))
    logits = q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1])
    length = inputs.shape[1]
    key_real = np.tile(mask, [heads, 1])[:, None, :]
    causal = np.tril(np.ones([length, length], bool))[None]
    logits = np.where(key_real & causal, logits, -2.0 ** 32 + 1)
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    probabilities *= np.tile(mask, [heads, 1])[:, :, None]  # Query masking.
    outputs = np.concatenate(np.split(probabilities @ v, heads, axis=0), axis=2)
    return dense(block["attention_output"], outputs)

  def feed_forward(block, x):
    return dense(block["output"], np.maximum(dense(block["hidden"], x), 0.0))

  real = mask[..., None].astype(np.float32)
  length = inputs.shape[1]
  positions = weights(encoder._positions)[0][length - 1 - np.arange(length)]
  x = (inputs + positions) * real
  for block in encoder._blocks:
    if encoder.residual == "normalized":
      q = norm(block["attention_norm"], x)
      x = q + attention(block, q, x)
      y = norm(block["feed_forward_norm"], x)
      x = y + feed_forward(block, y)
    else:
      normalized = norm(block["attention_norm"], x)
      x = x + attention(block, normalized, normalized)
      x = x + feed_forward(block, norm(block["feed_forward_norm"], x))
    x *= real
  return norm(encoder._final_norm, x) * real


@pytest.mark.parametrize("residual", ["normalized", "input"])
def test_matches_the_reference_formulas(residual):
  encoder = _encoder(residual=residual)
  inputs = _inputs()
  mask = np.array([[False, False, True, True, True, True], [True] * 6])
  encoder(inputs, mask=mask)
  _randomize(encoder)
  np.testing.assert_allclose(encoder(inputs, mask=mask).numpy(),
                             _reference(encoder, inputs.numpy(), mask), rtol=1e-4, atol=1e-4)


def test_a_single_item_history_is_its_own_attention():
  """One block, one head, one real item: the attention output is the item's value vector, so
  the block's output can be written down from the weights alone."""
  encoder = _encoder(num_blocks=1, num_heads=1)
  inputs = _inputs(batch=1, time=1)
  encoder(inputs)
  _randomize(encoder)
  block = encoder._blocks[0]
  x = inputs.numpy() + encoder._positions.embeddings.numpy()[:1]
  q = block["attention_norm"](x).numpy()
  value = block["value"](x).numpy()  # Keys and values are the un-normalized input.
  x = q + block["attention_output"](value).numpy()
  y = block["feed_forward_norm"](x).numpy()
  expected = encoder._final_norm(y + block["output"](block["hidden"](y))).numpy()
  np.testing.assert_allclose(encoder(inputs).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_outputs_do_not_depend_on_later_items():
  encoder = _encoder()
  inputs = _inputs()
  changed = tf.concat([inputs[:, :4], _inputs(seed=2)[:, 4:]], axis=1)
  first, second = encoder(inputs).numpy(), encoder(changed).numpy()
  np.testing.assert_allclose(first[:, :4], second[:, :4], rtol=1e-4, atol=1e-5)
  assert not np.allclose(first[:, 4:], second[:, 4:], atol=1e-3)


def test_padding_does_not_leak_comes_out_as_zeros_and_positions_count_from_the_end():
  encoder = _encoder()
  inputs = _inputs()
  mask = tf.constant([[False, False, True, True, True, True]] * 2)
  garbage = tf.concat([tf.random.normal([2, 2, DIM]) * 100, inputs[:, 2:]], axis=1)
  first = encoder(inputs, mask=mask).numpy()
  np.testing.assert_allclose(encoder(garbage, mask=mask).numpy(), first, rtol=1e-4, atol=1e-5)
  np.testing.assert_array_equal(first[:, :2], np.zeros([2, 2, DIM]))
  # The same four items with no padding: the same outputs.
  np.testing.assert_allclose(encoder(inputs[:, 2:]).numpy(), first[:, 2:], rtol=1e-4,
                             atol=1e-5)


def test_dropout_acts_in_training_only():
  encoder = _encoder(dropout=0.5)
  inputs = _inputs()
  np.testing.assert_array_equal(encoder(inputs).numpy(), encoder(inputs).numpy())
  assert not np.allclose(encoder(inputs, training=True).numpy(), encoder(inputs).numpy())


def test_no_output_projection_has_fewer_weights():
  with_projection, without = _encoder(), _encoder(attention_output_projection=False)
  with_projection(_inputs())
  without(_inputs())
  assert len(with_projection.weights) - len(without.weights) == 2 * 2  # A kernel and a bias.


def test_bad_settings_are_errors():
  with pytest.raises(ValueError, match="divisible"):
    _encoder(num_heads=3)(_inputs())
  with pytest.raises(ValueError, match="dropout"):
    _encoder(dropout=1.0)
  with pytest.raises(ValueError, match="residual"):
    _encoder(residual="post")
  with pytest.raises(tf.errors.InvalidArgumentError, match="max_len"):
    _encoder(max_len=4)(_inputs())


def test_serialization_round_trip():
  encoder = _encoder(dropout=0.2, residual="input", attention_output_projection=False,
                     layer_norm_epsilon=1e-6, name="sasrec_encoder")
  restored = tf.keras.utils.deserialize_keras_object(
      tf.keras.utils.serialize_keras_object(encoder))
  assert isinstance(restored, ct.CausalTransformer)
  assert restored.get_config() == encoder.get_config()


def test_saved_model_round_trip(tmp_path):
  inputs = tf.keras.Input([6, DIM])
  mask = tf.keras.Input([6], dtype=tf.bool)
  model = tf.keras.Model([inputs, mask], _encoder(dropout=0.3)(inputs, mask=mask))
  values = _inputs().numpy()
  valid = np.array([[True] * 6, [False] * 3 + [True] * 3])
  expected = model([values, valid]).numpy()
  model.save(str(tmp_path / "model"))
  loaded = tf.keras.models.load_model(str(tmp_path / "model"))
  np.testing.assert_allclose(loaded([values, valid]).numpy(), expected, rtol=1e-5, atol=1e-6)
