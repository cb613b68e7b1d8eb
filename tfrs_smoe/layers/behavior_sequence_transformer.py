"""Behavior Sequence Transformer encoder: position embeddings and masked transformer blocks."""

from typing import Optional

import tensorflow as tf


def banded_causal_mask(length: int, window: Optional[int] = None) -> tf.Tensor:
  """[length, length] bool: position t may attend to s when t - window < s <= t.

  With window None every earlier position is allowed (a causal mask). Stacking B blocks under a
  band of width w lets position t depend on the last B * (w - 1) + 1 items, not only w.

  Args:
    length: sequence length T.
    window: band width w >= 1, or None.
  """
  if window is not None and window < 1:
    raise ValueError(f"window must be >= 1 or None, got {window}.")
  t = tf.range(length)[:, tf.newaxis]
  s = tf.range(length)[tf.newaxis, :]
  allowed = s <= t
  if window is not None:
    allowed &= s > t - window
  return allowed


@tf.keras.utils.register_keras_serializable(package="tfrs_smoe")
class BehaviorSequenceTransformer(tf.keras.layers.Layer):
  """Transformer encoder over a left-padded history (most recent item last), as in BST.

  Adds a learned position embedding indexed by recency (0 = the most recent item), so the same
  item at the same distance from "now" gets the same position whatever the padding. Each block:
  multi-head self-attention -> dropout -> residual + layer norm -> feed-forward (ReLU) ->
  dropout -> residual + layer norm. Padding positions neither attend nor are attended to and
  come out as zeros.

  Args:
    num_blocks: number of transformer blocks.
    num_heads: attention heads; the input dim must be divisible by it.
    feed_forward_dim: hidden size of the feed-forward sublayer.
    dropout: dropout rate of attention weights and sublayer outputs.
    max_len: longest history; the number of position embeddings. 0 disables them.

  Call args:
    inputs: [batch, time, dim] item content vectors.
    mask: optional [batch, time] bool, True for real items.
    attention_mask: optional [time, time] or [batch, time, time] bool (see
      `banded_causal_mask`); None lets every position attend to every real position.
    training: enables dropout.

  Returns:
    [batch, time, dim] hidden states, zeros at padding positions.

  Example:
    >>> encoder = BehaviorSequenceTransformer(num_blocks=2, num_heads=2, max_len=50)
    >>> hidden = encoder(tf.random.normal([8, 50, 64]), mask=tf.ones([8, 50], tf.bool),
    ...                  attention_mask=banded_causal_mask(50))
  """

  def __init__(self, num_blocks: int = 2, num_heads: int = 2, feed_forward_dim: int = 256,
               dropout: float = 0.1, max_len: int = 50, **kwargs):
    super().__init__(**kwargs)
    if num_blocks < 1 or num_heads < 1 or feed_forward_dim < 1 or max_len < 0:
      raise ValueError("num_blocks, num_heads and feed_forward_dim must be >= 1, max_len >= 0.")
    if not 0.0 <= dropout < 1.0:
      raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
    self.num_blocks = num_blocks
    self.num_heads = num_heads
    self.feed_forward_dim = feed_forward_dim
    self.dropout = dropout
    self.max_len = max_len
    self.supports_masking = True

  def build(self, input_shape):
    dim = int(input_shape[-1])
    if dim % self.num_heads:
      raise ValueError(f"input dim {dim} is not divisible by num_heads={self.num_heads}.")
    self._positions = (tf.keras.layers.Embedding(self.max_len, dim, name="position")
                       if self.max_len else None)
    self._input_dropout = tf.keras.layers.Dropout(self.dropout)
    self._blocks = []
    for block in range(self.num_blocks):
      self._blocks.append({
          "attention": tf.keras.layers.MultiHeadAttention(
              self.num_heads, dim // self.num_heads, dropout=self.dropout,
              name=f"attention_{block}"),
          "attention_dropout": tf.keras.layers.Dropout(self.dropout),
          "attention_norm": tf.keras.layers.LayerNormalization(name=f"attention_norm_{block}"),
          "hidden": tf.keras.layers.Dense(self.feed_forward_dim, activation="relu",
                                          name=f"feed_forward_{block}"),
          "output": tf.keras.layers.Dense(dim, name=f"feed_forward_output_{block}"),
          "output_dropout": tf.keras.layers.Dropout(self.dropout),
          "output_norm": tf.keras.layers.LayerNormalization(name=f"output_norm_{block}"),
      })
    for block in self._blocks:
      # tf-keras creates MultiHeadAttention's weights on its first call; creating them here
      # instead makes a reloaded SavedModel restore them (otherwise they are re-initialised).
      block["attention"]._build_from_signature(  # pylint: disable=protected-access
          query=input_shape, value=input_shape)
    super().build(input_shape)

  def call(self, inputs: tf.Tensor, mask: Optional[tf.Tensor] = None,
           attention_mask: Optional[tf.Tensor] = None, training: Optional[bool] = None):
    length = tf.shape(inputs)[1]
    if mask is None:
      mask = tf.ones(tf.shape(inputs)[:2], tf.bool)
    mask = tf.cast(mask, tf.bool)
    real = tf.cast(mask, inputs.dtype)[..., tf.newaxis]
    hidden = inputs
    if self._positions is not None:
      tf.debugging.assert_less_equal(length, self.max_len,
                                     message="history longer than max_len position embeddings")
      recency = length - 1 - tf.range(length)
      hidden += self._positions(recency)[tf.newaxis]
    hidden = self._input_dropout(hidden, training=training) * real
    allowed = mask[:, tf.newaxis, :]  # [batch, 1, time]: keys that are real items.
    if attention_mask is not None:
      attention_mask = tf.cast(attention_mask, tf.bool)
      if attention_mask.shape.rank == 2:
        attention_mask = attention_mask[tf.newaxis]
      allowed &= attention_mask
    for block in self._blocks:
      attended = block["attention"](hidden, hidden, attention_mask=allowed, training=training)
      hidden = block["attention_norm"](
          hidden + block["attention_dropout"](attended, training=training))
      transformed = block["output"](block["hidden"](hidden))
      hidden = block["output_norm"](
          hidden + block["output_dropout"](transformed, training=training))
      hidden *= real
    return hidden

  def compute_mask(self, inputs, mask=None):
    return mask

  def get_config(self):
    config = super().get_config()
    config.update({
        "num_blocks": self.num_blocks, "num_heads": self.num_heads,
        "feed_forward_dim": self.feed_forward_dim, "dropout": self.dropout,
        "max_len": self.max_len,
    })
    return config
