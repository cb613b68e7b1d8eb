"""SASRec's encoder: recency position embeddings and pre-LN causal self-attention blocks."""

import math
from typing import Optional

import tensorflow as tf

RESIDUALS = ("normalized", "input")


@tf.keras.utils.register_keras_serializable(package="tfrs_smoe")
class CausalTransformer(tf.keras.layers.Layer):
  """The self-attention encoder of SASRec (Kang & McAuley, 2018) over a left-padded history.

  inputs + learned position embedding -> dropout -> padding zeroed -> num_blocks x [pre-LN
  causal self-attention, pre-LN point-wise feed-forward, padding zeroed] -> final LayerNorm.
  Each choice follows the authors' TensorFlow code (kang205/SASRec, `model.py` and
  `modules.py`) unless a setting says otherwise:

  - Positions: one learned embedding per position, indexed by recency (0 = the most recent
    item). The reference pads every history to max_len and indexes absolute positions, so its
    last position is always max_len - 1; counting from the end is the same map and also holds
    when a training batch is cut to its longest sequence. The embedding is added to every step,
    padding included, and dropout follows, then padding steps are set to zero (`seq *= mask`).
  - Blocks with residual "normalized" (the reference code, also the full cross-entropy SASRec
    of Klenitskiy & Vasilev, 2023, antklen/sasrec-bert4rec-recsys23): `q = LN(x)`,
    `x = q + Attention(queries=q, keys=values=x)`, `y = LN(x)`, `x = y + FFN(y)`. The residual
    adds the normalized input, and keys and values are the un-normalized input. Residual
    "input" is the paper's equation `x + Dropout(g(LN(x)))` and PyTorch's `norm_first`
    (pmixer/SASRec.pytorch): `x = x + Attention(LN(x))`, `x = x + FFN(LN(x))`, with
    normalized queries, keys and values.
  - Attention: Q, K, V projections with biases; scaled dot products over `num_heads` heads of
    dim / num_heads; a query attends to the real items at or before it (causal and key
    padding masks); rows without any allowed key (padding queries) are zero, as the
    reference's query masking makes them; dropout on the attention weights. The reference has
    no output projection, while the PyTorch re-implementations (nn.MultiheadAttention) have
    one: `attention_output_projection`.
  - Feed-forward: Dense(feed_forward_dim, ReLU) -> dropout -> Dense(dim) -> dropout (the
    reference's two 1x1 convolutions, feed_forward_dim = dim there).
  - LayerNorm epsilon 1e-8 as in the reference (Keras' default is 1e-3). The final LayerNorm
    is applied at every step; padding steps come out as zeros.

  Args:
    num_blocks: number of blocks.
    num_heads: attention heads; the input dim must be divisible by it.
    feed_forward_dim: hidden size of the feed-forward sublayer.
    dropout: rate of the input, attention-weight and feed-forward dropouts.
    max_len: longest history; the number of position embeddings.
    residual: "normalized" or "input", see above.
    attention_output_projection: a Dense(dim) after the attention heads.
    layer_norm_epsilon: epsilon of every LayerNorm.
    position_initializer: Keras initializer of the position embeddings.
    position_embeddings: add the position embeddings; False for blocks stacked on an encoder
      that added them already (S-MoE-BST's per-expert blocks on its shared ones).

  Call args:
    inputs: [batch, time, dim] item vectors (time <= max_len, most recent last).
    mask: optional [batch, time] bool, True for real items (default: all real).
    attention_mask: optional [time, time] or [batch, time, time] bool that further limits
      which keys a query attends to (e.g. `banded_causal_mask(time, w)`: the last w items).
    training: enables dropout.

  Returns:
    [batch, time, dim]: at step t, the representation of the history up to t; zeros at
    padding steps.

  Example:
    >>> encoder = CausalTransformer(num_blocks=2, num_heads=1, feed_forward_dim=64, max_len=50)
    >>> hidden = encoder(tf.random.normal([8, 50, 64]), mask=tf.ones([8, 50], tf.bool))
    >>> hidden.shape
    TensorShape([8, 50, 64])
  """

  def __init__(self, num_blocks: int = 2, num_heads: int = 1, feed_forward_dim: int = 64,
               dropout: float = 0.5, max_len: int = 50, residual: str = "normalized",
               attention_output_projection: bool = True, layer_norm_epsilon: float = 1e-8,
               position_initializer: str = "glorot_uniform", position_embeddings: bool = True,
               **kwargs):
    super().__init__(**kwargs)
    if num_blocks < 1 or num_heads < 1 or feed_forward_dim < 1 or max_len < 1:
      raise ValueError("num_blocks, num_heads, feed_forward_dim and max_len must be >= 1.")
    if not 0.0 <= dropout < 1.0:
      raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
    if residual not in RESIDUALS:
      raise ValueError(f"residual must be one of {RESIDUALS}, got {residual!r}.")
    self.num_blocks = num_blocks
    self.num_heads = num_heads
    self.feed_forward_dim = feed_forward_dim
    self.dropout = dropout
    self.max_len = max_len
    self.residual = residual
    self.attention_output_projection = attention_output_projection
    self.layer_norm_epsilon = layer_norm_epsilon
    self.position_initializer = position_initializer
    self.position_embeddings = position_embeddings
    self.supports_masking = True

  def build(self, input_shape):
    dim = int(input_shape[-1])
    if dim % self.num_heads:
      raise ValueError(f"input dim {dim} is not divisible by num_heads={self.num_heads}.")
    self._positions = (tf.keras.layers.Embedding(
        self.max_len, dim, embeddings_initializer=self.position_initializer, name="position")
                       if self.position_embeddings else None)
    self._input_dropout = tf.keras.layers.Dropout(self.dropout)
    norm = lambda name: tf.keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon,
                                                           name=name)
    self._blocks = []
    for i in range(self.num_blocks):
      block = {
          "attention_norm": norm(f"attention_norm_{i}"),
          "query": tf.keras.layers.Dense(dim, name=f"query_{i}"),
          "key": tf.keras.layers.Dense(dim, name=f"key_{i}"),
          "value": tf.keras.layers.Dense(dim, name=f"value_{i}"),
          "attention_dropout": tf.keras.layers.Dropout(self.dropout),
          "feed_forward_norm": norm(f"feed_forward_norm_{i}"),
          "hidden": tf.keras.layers.Dense(self.feed_forward_dim, activation="relu",
                                          name=f"feed_forward_{i}"),
          "hidden_dropout": tf.keras.layers.Dropout(self.dropout),
          "output": tf.keras.layers.Dense(dim, name=f"feed_forward_output_{i}"),
          "output_dropout": tf.keras.layers.Dropout(self.dropout),
      }
      if self.attention_output_projection:
        block["attention_output"] = tf.keras.layers.Dense(dim, name=f"attention_output_{i}")
      self._blocks.append(block)
    self._final_norm = norm("final_norm")
    # Weights are created here, not on the first call, so that a reloaded SavedModel restores
    # them.
    vectors = tf.TensorShape([None, None, dim])
    if self._positions is not None:
      self._positions.build([None])
    for block in self._blocks:
      for name, layer in block.items():
        if "dropout" in name:
          continue
        layer.build(tf.TensorShape([None, None, self.feed_forward_dim]) if name == "output"
                    else vectors)
    self._final_norm.build(vectors)
    super().build(input_shape)

  def _split_heads(self, values: tf.Tensor) -> tf.Tensor:
    """[batch, time, dim] -> [batch, heads, time, dim / heads]."""
    batch, time = tf.shape(values)[0], tf.shape(values)[1]
    values = tf.reshape(values, [batch, time, self.num_heads, values.shape[-1] // self.num_heads])
    return tf.transpose(values, [0, 2, 1, 3])

  def _attend(self, block, queries: tf.Tensor, keys: tf.Tensor, allowed: tf.Tensor,
              training: Optional[bool]) -> tf.Tensor:
    """Multi-head attention of `queries` over `keys` [batch, time, dim] where `allowed`
    [batch, 1, time, time] (query, key) is True; [batch, time, dim]."""
    query = self._split_heads(block["query"](queries))
    key = self._split_heads(block["key"](keys))
    value = self._split_heads(block["value"](keys))
    logits = tf.einsum("bhtd,bhsd->bhts", query, key) / math.sqrt(query.shape[-1])
    logits = tf.where(allowed, logits, tf.constant(-1e9, logits.dtype))
    # Rows with no allowed key would be uniform over the padding: they are zeroed instead.
    weights = tf.nn.softmax(logits, axis=-1) * tf.cast(allowed, logits.dtype)
    weights = block["attention_dropout"](weights, training=training)
    attended = tf.einsum("bhts,bhsd->bhtd", weights, value)
    batch, time = tf.shape(queries)[0], tf.shape(queries)[1]
    attended = tf.reshape(tf.transpose(attended, [0, 2, 1, 3]), [batch, time, queries.shape[-1]])
    if self.attention_output_projection:
      attended = block["attention_output"](attended)
    return attended

  def _feed_forward(self, block, inputs: tf.Tensor, training: Optional[bool]) -> tf.Tensor:
    hidden = block["hidden_dropout"](block["hidden"](inputs), training=training)
    return block["output_dropout"](block["output"](hidden), training=training)

  def call(self, inputs: tf.Tensor, mask: Optional[tf.Tensor] = None,
           attention_mask: Optional[tf.Tensor] = None,
           training: Optional[bool] = None) -> tf.Tensor:
    length = tf.shape(inputs)[1]
    tf.debugging.assert_less_equal(length, self.max_len,
                                   message="history longer than max_len position embeddings")
    if mask is None:
      mask = tf.ones(tf.shape(inputs)[:2], tf.bool)
    mask = tf.cast(mask, tf.bool)
    real = tf.cast(mask, inputs.dtype)[..., tf.newaxis]
    hidden = inputs
    if self._positions is not None:
      hidden += self._positions(length - 1 - tf.range(length))[tf.newaxis]
    hidden = self._input_dropout(hidden, training=training) * real
    causal = tf.linalg.band_part(tf.ones([length, length], tf.bool), -1, 0)  # key <= query
    allowed = (causal[tf.newaxis] & mask[:, tf.newaxis, :] & mask[:, :, tf.newaxis])
    if attention_mask is not None:
      attention_mask = tf.cast(attention_mask, tf.bool)
      allowed &= (attention_mask[tf.newaxis] if attention_mask.shape.rank == 2
                  else attention_mask)
    allowed = allowed[:, tf.newaxis]  # [batch, 1 (heads), query, key]
    for block in self._blocks:
      normalized = block["attention_norm"](hidden)
      if self.residual == "normalized":
        hidden = normalized + self._attend(block, normalized, hidden, allowed, training)
        normalized = block["feed_forward_norm"](hidden)
        hidden = normalized + self._feed_forward(block, normalized, training)
      else:
        hidden = hidden + self._attend(block, normalized, normalized, allowed, training)
        hidden = hidden + self._feed_forward(block, block["feed_forward_norm"](hidden), training)
      hidden *= real
    return self._final_norm(hidden) * real

  def compute_mask(self, inputs, mask=None):
    return mask

  def get_config(self):
    config = super().get_config()
    config.update({
        "num_blocks": self.num_blocks, "num_heads": self.num_heads,
        "feed_forward_dim": self.feed_forward_dim, "dropout": self.dropout,
        "max_len": self.max_len, "residual": self.residual,
        "attention_output_projection": self.attention_output_projection,
        "layer_norm_epsilon": self.layer_norm_epsilon,
        "position_initializer": self.position_initializer,
        "position_embeddings": self.position_embeddings,
    })
    return config
