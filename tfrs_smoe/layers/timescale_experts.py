"""S-MoE-BST experts: shared lower blocks, then per-expert blocks and pooling per time scale."""

from typing import Optional, Sequence

import tensorflow as tf

from tfrs_smoe.layers import attention_pooling
from tfrs_smoe.layers import behavior_sequence_transformer as bst
from tfrs_smoe.layers import causal_transformer

BLOCKS = ("post_ln", "pre_ln")
POOLINGS = ("attention", "last")


@tf.keras.utils.register_keras_serializable(package="tfrs_smoe")
class TimescaleExperts(tf.keras.layers.Layer):
  """Per-position representations of a history at several time scales, one per expert.

  inputs -> `shared_blocks` causal blocks over the whole history (one encoder for all experts,
  with the position embeddings) -> per expert e: `num_blocks` blocks under
  `banded_causal_mask(time, windows[e])` -> pooling under the same band (window 0 = no limit,
  a plain causal mask: the long-term expert). Every position of a sequence is encoded in one
  pass, so a model trains on all positions at once; the representation of the whole history
  is the one at the last position.

  Choices, as the paper does not fix them:
  - The paper shares the embedding layers across experts; `shared_blocks` > 0 also shares the
    lower transformer blocks (which then see the whole history), so that the experts differ in
    their top blocks and pooling only and cost less than E separate encoders.
  - The band applies to every per-expert block, so with B such blocks the last B * (w - 1) + 1
    items can reach position t through intermediate positions, while the pooling covers exactly
    the last w. With shared blocks the short-term expert's view is the recent items as the
    shared blocks read them (in the context of the whole history).
  - Pooling "attention" is BST's attention pooling over the band; "last" takes the expert's
    top-block state at t (SASRec's read-out), which needs `num_blocks` >= 1 for the experts to
    differ.
  - Block "post_ln" is BST's post-LN block (`BehaviorSequenceTransformer`); "pre_ln" is
    SASRec's (`CausalTransformer`, residual "input", no output dropout of attention).
  Defaults (5, 20, 0) read "short-term" as about one viewing session, "mid-term" as a few weeks
  of a typical MovieLens or streaming user.

  Args:
    windows: history window of each expert, in items; 0 = the whole history.
    num_blocks: transformer blocks per expert (0 allowed when shared_blocks >= 1).
    num_heads: attention heads.
    feed_forward_dim: feed-forward size of the blocks.
    dropout: dropout rate of the blocks.
    max_len: longest history (position embeddings).
    shared_blocks: causal blocks over the whole history shared by every expert.
    block: "post_ln" or "pre_ln".
    pooling: "attention" or "last".

  Call args:
    inputs: [batch, time, dim] item content vectors, most recent item last.
    mask: optional [batch, time] bool, True for real items.
    training: enables dropout.
    last_only: pool the last position only (serving, retrieval); the output's time axis is 1.

  Returns:
    [batch, time, num_experts, dim] ([batch, 1, num_experts, dim] with last_only); row t of
    expert e pools expert e's view at position t; zeros at padding positions.

  Example:
    >>> experts = TimescaleExperts(windows=(5, 20, 0), shared_blocks=1, num_blocks=1, max_len=50)
    >>> experts(tf.random.normal([8, 50, 64])).shape
    TensorShape([8, 50, 3, 64])
  """

  def __init__(self, windows: Sequence[int] = (5, 20, 0), num_blocks: int = 2,
               num_heads: int = 2, feed_forward_dim: int = 256, dropout: float = 0.1,
               max_len: int = 50, shared_blocks: int = 0, block: str = "post_ln",
               pooling: str = "attention", **kwargs):
    super().__init__(**kwargs)
    windows = [int(w) for w in windows]
    if not windows or any(w < 0 for w in windows):
      raise ValueError(f"windows must be a non-empty list of ints >= 0, got {windows}.")
    if shared_blocks < 0 or num_blocks < 0 or shared_blocks + num_blocks < 1:
      raise ValueError(f"shared_blocks and num_blocks must be >= 0 with at least one block, got "
                       f"{shared_blocks} and {num_blocks}.")
    if block not in BLOCKS:
      raise ValueError(f"block must be one of {BLOCKS}, got {block!r}.")
    if pooling not in POOLINGS:
      raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}.")
    if pooling == "last" and num_blocks < 1 and len(windows) > 1:
      raise ValueError("pooling 'last' needs num_blocks >= 1 per expert: with shared blocks "
                       "only, every expert would read the same state.")
    self.windows = windows
    self.num_blocks = num_blocks
    self.num_heads = num_heads
    self.feed_forward_dim = feed_forward_dim
    self.dropout = dropout
    self.max_len = max_len
    self.shared_blocks = shared_blocks
    self.block = block
    self.pooling = pooling
    self.supports_masking = True
    self._shared = (self._encoder(shared_blocks, True, "shared_encoder")
                    if shared_blocks else None)
    self._encoders = [self._encoder(num_blocks, not shared_blocks, f"encoder_{e}")
                      if num_blocks else None for e in range(len(windows))]
    self._poolings = ([attention_pooling.AttentionPooling(name=f"pooling_{e}")
                       for e in range(len(windows))] if pooling == "attention" else [])

  def _encoder(self, blocks: int, positions: bool, name: str) -> tf.keras.layers.Layer:
    if self.block == "post_ln":
      return bst.BehaviorSequenceTransformer(blocks, self.num_heads, self.feed_forward_dim,
                                             self.dropout, self.max_len if positions else 0,
                                             name=name)
    return causal_transformer.CausalTransformer(
        blocks, self.num_heads, self.feed_forward_dim, self.dropout, self.max_len,
        residual="input", layer_norm_epsilon=1e-6, position_embeddings=positions, name=name)

  @property
  def num_experts(self) -> int:
    return len(self.windows)

  def build(self, input_shape):
    for layer in [self._shared, *self._encoders, *self._poolings]:
      if layer is not None:
        layer.build(input_shape)
    super().build(input_shape)

  def call(self, inputs: tf.Tensor, mask: Optional[tf.Tensor] = None,
           training: Optional[bool] = None, last_only: bool = False) -> tf.Tensor:
    length = tf.shape(inputs)[1]
    if mask is None:
      mask = tf.ones(tf.shape(inputs)[:2], tf.bool)
    mask = tf.cast(mask, tf.bool)
    shared = inputs
    if self._shared is not None:
      shared = self._shared(inputs, mask=mask, attention_mask=bst.banded_causal_mask(length),
                            training=training)
    outputs = []
    for e, window in enumerate(self.windows):
      band = bst.banded_causal_mask(length, window or None)
      hidden = shared
      if self._encoders[e] is not None:
        hidden = self._encoders[e](shared, mask=mask, attention_mask=band, training=training)
      if self.pooling == "last":
        outputs.append(hidden[:, -1:] if last_only else hidden)
      else:
        outputs.append(self._poolings[e](hidden, mask=mask,
                                         attention_mask=band[-1:] if last_only else band))
    stacked = tf.stack(outputs, axis=2)
    real = mask[:, -1:] if last_only else mask
    return stacked * tf.cast(real, stacked.dtype)[:, :, tf.newaxis, tf.newaxis]

  def compute_mask(self, inputs, mask=None):
    return mask

  def get_config(self):
    config = super().get_config()
    config.update({
        "windows": list(self.windows), "num_blocks": self.num_blocks,
        "num_heads": self.num_heads, "feed_forward_dim": self.feed_forward_dim,
        "dropout": self.dropout, "max_len": self.max_len,
        "shared_blocks": self.shared_blocks, "block": self.block, "pooling": self.pooling,
    })
    return config
