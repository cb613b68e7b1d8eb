"""S-MoE-BST experts: one BST encoder and attention pooling per history time scale."""

from typing import Optional, Sequence

import tensorflow as tf

from tfrs_smoe.layers import attention_pooling
from tfrs_smoe.layers import behavior_sequence_transformer as bst


@tf.keras.utils.register_keras_serializable(package="tfrs_smoe")
class TimescaleExperts(tf.keras.layers.Layer):
  """Per-position representations of a history at several time scales, one per expert.

  Expert e sees, at position t, the last `windows[e]` items up to and including t: its
  transformer blocks run under `banded_causal_mask(time, windows[e])` and its attention pooling
  pools under the same band (window 0 = no limit, a plain causal mask: the long-term expert).
  Every position of a sequence is encoded in one pass, so a model trains on all positions at
  once; the representation of the whole history is the one at the last position.

  Choice, as the paper does not fix it: the band applies to every block, so with B blocks the
  last B * (w - 1) + 1 items can reach position t through intermediate positions, while the
  pooling itself covers exactly the last w. Defaults (5, 20, 0) read "short-term" as about one
  viewing session, "mid-term" as a few weeks of a typical MovieLens or streaming user.

  Args:
    windows: history window of each expert, in items; 0 = the whole history.
    num_blocks: transformer blocks per expert.
    num_heads: attention heads.
    feed_forward_dim: feed-forward size of the blocks.
    dropout: dropout rate of the blocks.
    max_len: longest history (position embeddings).

  Call args:
    inputs: [batch, time, dim] item content vectors, most recent item last.
    mask: optional [batch, time] bool, True for real items.
    training: enables dropout.

  Returns:
    [batch, time, num_experts, dim]; row t of expert e pools expert e's view at position t.

  Example:
    >>> experts = TimescaleExperts(windows=(5, 20, 0), max_len=50)
    >>> experts(tf.random.normal([8, 50, 64])).shape
    TensorShape([8, 50, 3, 64])
  """

  def __init__(self, windows: Sequence[int] = (5, 20, 0), num_blocks: int = 2,
               num_heads: int = 2, feed_forward_dim: int = 256, dropout: float = 0.1,
               max_len: int = 50, **kwargs):
    super().__init__(**kwargs)
    windows = [int(w) for w in windows]
    if not windows or any(w < 0 for w in windows):
      raise ValueError(f"windows must be a non-empty list of ints >= 0, got {windows}.")
    self.windows = windows
    self.num_blocks = num_blocks
    self.num_heads = num_heads
    self.feed_forward_dim = feed_forward_dim
    self.dropout = dropout
    self.max_len = max_len
    self.supports_masking = True
    self._encoders = [
        bst.BehaviorSequenceTransformer(num_blocks, num_heads, feed_forward_dim, dropout,
                                        max_len, name=f"encoder_{e}")
        for e in range(len(windows))]
    self._poolings = [attention_pooling.AttentionPooling(name=f"pooling_{e}")
                      for e in range(len(windows))]

  @property
  def num_experts(self) -> int:
    return len(self.windows)

  def build(self, input_shape):
    for encoder, pooling in zip(self._encoders, self._poolings):
      encoder.build(input_shape)
      pooling.build(input_shape)
    super().build(input_shape)

  def call(self, inputs: tf.Tensor, mask: Optional[tf.Tensor] = None,
           training: Optional[bool] = None) -> tf.Tensor:
    length = tf.shape(inputs)[1]
    outputs = []
    for window, encoder, pooling in zip(self.windows, self._encoders, self._poolings):
      band = bst.banded_causal_mask(length, window or None)
      hidden = encoder(inputs, mask=mask, attention_mask=band, training=training)
      outputs.append(pooling(hidden, mask=mask, attention_mask=band))
    return tf.stack(outputs, axis=2)

  def compute_mask(self, inputs, mask=None):
    return mask

  def get_config(self):
    config = super().get_config()
    config.update({
        "windows": list(self.windows), "num_blocks": self.num_blocks,
        "num_heads": self.num_heads, "feed_forward_dim": self.feed_forward_dim,
        "dropout": self.dropout, "max_len": self.max_len,
    })
    return config
