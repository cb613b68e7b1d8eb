"""The history encoder of S-MoE-BST and of the two-tower query: experts, gate and user embedding."""

import math
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tfrs_smoe.layers import adaptive_gate
from tfrs_smoe.layers import timescale_experts
from tfrs_smoe.layers import user_content

GATE_CONTEXTS = ("history_length",)


@tf.keras.utils.register_keras_serializable(package="tfrs_smoe")
class HistoryEncoder(tf.keras.layers.Layer):
  """Item content vectors of a history -> one user vector per position, and the gate weights.

  content [batch, time, dim] -> `TimescaleExperts` [batch, time, E, dim] -> with one expert,
  its output (BST); with several, `AdaptiveGate` over (gate input, experts), where the gate
  input is the concatenation of the user id embedding (`user_dim` > 0), the embeddings of the
  user's categorical features (`user_feature_sizes`, a `UserContent` gathered by user index)
  and the context features named in `gate_context`. With one expert there is no gate, and
  neither the user embedding nor the user features are made (BST reads the history only).
  Both `SMoEBST` and `TwoTower` build this one layer, so an architecture change lands in both.

  Gate context (the paper's gate sees the user and the experts only; this is a setting):
  "history_length" adds log(1 + n_t) / log(1 + max_len), with n_t the number of real items up
  to position t, so that the gate can move weight between time scales as a history grows
  (a window of 20 items and the whole history are the same view for a user with 20 items).

  Args:
    num_users: user vocabulary size (the user embedding's rows).
    windows, num_blocks, num_heads, feed_forward_dim, dropout, max_len, shared_blocks,
      block, pooling: the experts (`TimescaleExperts`).
    user_dim: size of the user id embedding fed to the gate; 0 leaves it out.
    gate_hidden_units, gate_temperature, gate_noise_stddev, entropy_weight, target_entropy,
      balance_weight, expert_dropout: the gate (`AdaptiveGate`).
    gate_context: names from `GATE_CONTEXTS` fed to the gate besides the user embedding.
    user_feature_sizes: categorical user feature name -> value ids + 1, fed to the gate;
      None = sized from user_features, {} = none.
    feature_dim: size of each user feature's embedding.
    user_features: feature name -> [num_users] initial value-id tables
      (`UserFeatureTables.tables`); None = zeros (until weights load).

  Call args:
    inputs: (content [batch, time, dim] float, user_index [batch] int).
    mask: optional [batch, time] bool, True for real items.
    training: enables dropout and the gate's noise.
    last_only: encode the last position only (scoring, serving): the time axis is 1.

  Returns:
    (vectors [batch, time, dim], gate weights [batch, time, E] or None with one expert).

  Example:
    >>> encoder = HistoryEncoder(num_users=10, windows=(5, 0), shared_blocks=1, num_blocks=1,
    ...                          max_len=20)
    >>> vectors, alpha = encoder((tf.random.normal([4, 20, 64]), tf.zeros([4], tf.int32)))
    >>> vectors.shape, alpha.shape
    (TensorShape([4, 20, 64]), TensorShape([4, 20, 2]))
  """

  def __init__(self, num_users: int, windows: Sequence[int] = (5, 20, 0), num_blocks: int = 2,
               num_heads: int = 2, feed_forward_dim: int = 256, dropout: float = 0.2,
               max_len: int = 50, shared_blocks: int = 0, block: str = "post_ln",
               pooling: str = "attention", user_dim: int = 16,
               gate_hidden_units: Sequence[int] = (64,), gate_temperature: float = 1.0,
               gate_noise_stddev: float = 1.0, entropy_weight: float = 1.0,
               target_entropy: Optional[float] = 0.52, balance_weight: float = 0.0,
               expert_dropout: float = 0.0, gate_context: Sequence[str] = (),
               user_feature_sizes: Optional[Dict[str, int]] = None, feature_dim: int = 8,
               user_features: Optional[Dict[str, np.ndarray]] = None, **kwargs):
    super().__init__(**kwargs)
    unknown = sorted(set(gate_context) - set(GATE_CONTEXTS))
    if unknown:
      raise ValueError(f"gate_context: unknown {unknown}; available: {list(GATE_CONTEXTS)}.")
    if num_users < 1 or user_dim < 0:
      raise ValueError(f"num_users must be >= 1 and user_dim >= 0, got {num_users} and "
                       f"{user_dim}.")
    if feature_dim < 1:
      raise ValueError(f"feature_dim must be >= 1, got {feature_dim}.")
    self.num_users = num_users
    self.user_dim = user_dim
    self.feature_dim = feature_dim
    if user_features and user_feature_sizes is None:  # Sized to the tables' largest ids.
      user_features = user_content.user_feature_tables(user_features, num_users)
      user_feature_sizes = {name: int(table.max(initial=0)) + 1
                            for name, table in user_features.items()}
    self.user_feature_sizes = dict(sorted((user_feature_sizes or {}).items()))
    self.gate_context = tuple(gate_context)
    self.max_len = max_len
    self.experts = timescale_experts.TimescaleExperts(
        windows, num_blocks, num_heads, feed_forward_dim, dropout, max_len,
        shared_blocks=shared_blocks, block=block, pooling=pooling, name="experts")
    self.gate = None
    self.user_embedding = None
    if self.experts.num_experts > 1:
      self.gate = adaptive_gate.AdaptiveGate(
          gate_hidden_units, gate_temperature, gate_noise_stddev, entropy_weight,
          target_entropy, balance_weight, expert_dropout, name="gate")
      if user_dim:
        self.user_embedding = tf.keras.layers.Embedding(num_users, user_dim, name="user")
    self.user_features = None
    if self.gate is not None and self.user_feature_sizes:
      self.user_features = user_content.UserContent(
          num_users, self.user_feature_sizes, feature_dim, tables=user_features,
          name="user_features")
    self._gate_config = {
        "gate_hidden_units": list(gate_hidden_units), "gate_temperature": gate_temperature,
        "gate_noise_stddev": gate_noise_stddev, "entropy_weight": entropy_weight,
        "target_entropy": target_entropy, "balance_weight": balance_weight,
        "expert_dropout": expert_dropout}

  @property
  def num_experts(self) -> int:
    return self.experts.num_experts

  def build(self, input_shape):
    content_shape = tf.TensorShape(input_shape[0])
    self.experts.build(content_shape)
    if self.user_embedding is not None:
      self.user_embedding.build([None])
    if self.user_features is not None:
      self.user_features.build([None])
    super().build(input_shape)

  def _gate_inputs(self, user_index: tf.Tensor, mask: tf.Tensor, last_only: bool) -> tf.Tensor:
    """[batch, time', user_dim + user features + contexts] the gate's input besides the
    experts."""
    batch, length = tf.shape(mask)[0], tf.shape(mask)[1]
    time = 1 if last_only else length
    parts = [tf.zeros([batch, time, 0])]
    if self.user_embedding is not None:
      user = self.user_embedding(tf.cast(user_index, tf.int32))
      parts.append(tf.broadcast_to(user[:, tf.newaxis], [batch, time, self.user_dim]))
    if self.user_features is not None:
      features = self.user_features(user_index)
      parts.append(tf.broadcast_to(features[:, tf.newaxis],
                                   [batch, time, self.user_features.output_dim]))
    if "history_length" in self.gate_context:
      counts = tf.cumsum(tf.cast(mask, tf.float32), axis=1)
      counts = counts[:, -1:] if last_only else counts
      parts.append((tf.math.log1p(counts) / math.log1p(self.max_len))[..., tf.newaxis])
    return tf.concat(parts, axis=-1)

  def call(self, inputs: Tuple[tf.Tensor, tf.Tensor], mask: Optional[tf.Tensor] = None,
           training: Optional[bool] = None, last_only: bool = False):
    content, user_index = inputs
    if mask is None:
      mask = tf.ones(tf.shape(content)[:2], tf.bool)
    mask = tf.cast(mask, tf.bool)
    experts = self.experts(content, mask=mask, training=training, last_only=last_only)
    if self.gate is None:
      return experts[:, :, 0], None
    position_mask = mask[:, -1:] if last_only else mask
    return self.gate((self._gate_inputs(user_index, mask, last_only), experts),
                     position_mask=position_mask, training=training)

  def get_config(self):
    config = super().get_config()
    experts = self.experts.get_config()
    config.update({key: experts[key] for key in (
        "windows", "num_blocks", "num_heads", "feed_forward_dim", "dropout", "max_len",
        "shared_blocks", "block", "pooling")})
    config.update({"num_users": self.num_users, "user_dim": self.user_dim,
                   "gate_context": list(self.gate_context), **self._gate_config,
                   "user_feature_sizes": dict(self.user_feature_sizes),
                   "feature_dim": self.feature_dim})
    return config
