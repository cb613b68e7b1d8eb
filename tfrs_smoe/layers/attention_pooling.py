"""Attention pooling of a sequence of hidden states into one vector (or one per position)."""

from typing import Optional

import tensorflow as tf

# Logit given to masked positions; finite so that fully masked rows give no NaN.
_MASKED_LOGIT = -1e9


@tf.keras.utils.register_keras_serializable(package="tfrs_smoe")
class AttentionPooling(tf.keras.layers.Layer):
  """h = sum_t softmax_t(w^T h_t) h_t over the unmasked positions.

  With `attention_mask`, every position t gets its own pooled vector over the positions s that
  the mask allows at t (e.g. a causal band: the last w items before t), so a model trained on all
  positions of a sequence in one pass pools each of them as the per-window path would. The
  scoring vector w is shared by both modes. A row with no allowed position pools to zeros.

  Args:
    use_bias: bool. Adds a bias to w^T h_t; it cancels in the softmax and exists only for
      checkpoints that have one. Default False.
    kernel_initializer: initializer of w.

  Call args:
    inputs: [batch, time, dim] hidden states.
    mask: optional [batch, time] bool, True for real (non-padding) positions.
    attention_mask: optional [time, time] or [batch, time, time] bool; entry [t, s] allows
      position t to pool position s.

  Returns:
    [batch, dim] without attention_mask, [batch, time, dim] with it.

  Example:
    >>> pooling = AttentionPooling()
    >>> pooled = pooling(tf.random.normal([2, 5, 8]), mask=tf.sequence_mask([5, 3], 5))
    >>> pooled.shape
    TensorShape([2, 8])
  """

  def __init__(self, use_bias: bool = False, kernel_initializer="glorot_uniform", **kwargs):
    super().__init__(**kwargs)
    self.use_bias = use_bias
    self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
    self._score = tf.keras.layers.Dense(1, use_bias=use_bias,
                                        kernel_initializer=self.kernel_initializer,
                                        name="score")
    self.supports_masking = True

  def call(self, inputs: tf.Tensor, mask: Optional[tf.Tensor] = None,
           attention_mask: Optional[tf.Tensor] = None) -> tf.Tensor:
    logits = tf.squeeze(self._score(inputs), axis=-1)  # [batch, time]
    if mask is None:
      mask = tf.ones(tf.shape(logits), tf.bool)
    mask = tf.cast(mask, tf.bool)
    if attention_mask is None:
      allowed = mask
      logits_per_row = logits
    else:
      attention_mask = tf.cast(attention_mask, tf.bool)
      if attention_mask.shape.rank == 2:
        attention_mask = attention_mask[tf.newaxis]
      allowed = tf.logical_and(attention_mask, mask[:, tf.newaxis, :])  # [batch, time, time]
      logits_per_row = tf.broadcast_to(logits[:, tf.newaxis, :], tf.shape(allowed))
    masked_logits = tf.where(allowed, logits_per_row,
                             tf.cast(_MASKED_LOGIT, logits_per_row.dtype))
    weights = tf.nn.softmax(masked_logits, axis=-1) * tf.cast(allowed, logits_per_row.dtype)
    if attention_mask is None:
      return tf.einsum("bt,btd->bd", weights, inputs)
    return tf.einsum("bts,bsd->btd", weights, inputs)

  def compute_mask(self, inputs, mask=None):
    del inputs, mask  # The pooled vector has no time axis to mask.
    return None

  def get_config(self):
    config = super().get_config()
    config.update({
        "use_bias": self.use_bias,
        "kernel_initializer": tf.keras.initializers.serialize(self.kernel_initializer),
    })
    return config
