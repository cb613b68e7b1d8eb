"""The S-MoE-BST gate: mixes expert representations with weights from the user and the experts."""

import math
from typing import Optional, Sequence

import tensorflow as tf

from tfrs_smoe import distribute


# The relative H* (target_entropy=None) as a fraction of ln E, the most entropy E experts'
# weights can have: the paper's 0.52 nats is 0.75 ln 2.
RELATIVE_ENTROPY_FRACTION = 0.75


@tf.keras.utils.register_keras_serializable(package="tfrs_smoe")
class AdaptiveGate(tf.keras.layers.Layer):
  """alpha = softmax((z + eps) / tau); output = sum_e alpha_e h_e.

  The logits z come from one MLP over the concatenation [u, h_1, ..., h_E] of the user embedding
  and every expert's representation (a joint gate: the MLP sees which expert said what). eps is
  Gaussian noise with standard deviation `noise_stddev`, added only in training. An entropy
  regulariser lambda * mean((H(alpha) - H*)^2), H(alpha) = -sum_e alpha_e log alpha_e, is added as
  a layer loss against expert collapse. H* is `target_entropy` nats (0.52 by default, the
  paper's value, between one expert, 0, and two equal experts, ln 2 = 0.69), or with
  `target_entropy=None` `RELATIVE_ENTROPY_FRACTION` (0.75) of the most entropy the E experts can
  have, 0.75 ln E (0.52 for two experts, 0.82 for three): the entropy term acts per position,
  so with three experts an absolute H* below ln 2 is met by positions that each mix two of them
  while the third may go unused everywhere. Measured on the embedded default (docs/results.md):
  at 0.52 the 20-item expert lost its weight in one seed of three at lr 1e-3 and in none at
  lr 3e-3; 0.75 ln 3 kept every expert near a third in every seed, at -0.0018 validation
  NDCG@10 (3 seeds, interval [-0.0038, +0.0003]), so 0.52 stays the default. An optional
  balance term against that, the importance loss of Shazeer et al. (2017),
  w * CV(mean alpha)^2 = w * (E * sum_e mean_alpha_e^2 - 1), is zero when every expert's mean
  weight over the batch's positions is 1/E. The mean weight of each expert and the
  mean gate entropy are reported as metrics (`gate_weight_<e>`, `gate_entropy`).

  Expert dropout (training only, `expert_dropout` = p): each expert of each row is left out of
  the softmax with probability p (its logit set to -inf; a row that would lose every expert
  keeps them all), so that every expert is trained to stand on its own and the gate cannot
  starve one for good (dropout applied to whole experts instead of units). The regularisers
  and the metrics see the weights after the drop.

  Leading dimensions are free: [batch] for one user vector, [batch, time] for a gate per position.

  Args:
    hidden_units: sizes of the MLP's hidden ReLU layers.
    temperature: tau > 0.
    noise_stddev: standard deviation of eps in training; 0 disables the noise.
    entropy_weight: lambda; 0 disables the regulariser.
    target_entropy: H* in nats, at most ln E; None is 0.75 ln E for the E experts the layer is
      built with.
    balance_weight: w of the balance term; 0 (the paper's gate) disables it. Under a
      tf.distribute strategy each replica balances its own share of the batch.
    expert_dropout: p, the probability that an expert is left out of a row's mixture in
      training; 0 (the paper's gate) disables it.

  Call args:
    inputs: a pair (user, experts): user [..., user_dim] embedding and experts
      [..., num_experts, dim] representations.
    position_mask: optional [...] bool; False entries (padding positions) are left out of the
      regulariser and the metrics.
    training: whether to add the noise.

  Returns:
    ([..., dim] mixed representation, [..., num_experts] gate weights alpha).

  Example:
    >>> gate = AdaptiveGate(hidden_units=(32,))
    >>> mixed, alpha = gate((tf.zeros([4, 16]), tf.random.normal([4, 3, 8])))
    >>> mixed.shape, alpha.shape
    (TensorShape([4, 8]), TensorShape([4, 3]))
  """

  def __init__(self, hidden_units: Sequence[int] = (64,), temperature: float = 1.0,
               noise_stddev: float = 1.0, entropy_weight: float = 0.01,
               target_entropy: Optional[float] = 0.52, balance_weight: float = 0.0,
               expert_dropout: float = 0.0, **kwargs):
    super().__init__(**kwargs)
    if temperature <= 0:
      raise ValueError(f"temperature must be > 0, got {temperature}.")
    if min(noise_stddev, entropy_weight, balance_weight,
           0.0 if target_entropy is None else target_entropy) < 0:
      raise ValueError("noise_stddev, entropy_weight, target_entropy and balance_weight must be "
                       f">= 0, got {noise_stddev}, {entropy_weight}, {target_entropy} and "
                       f"{balance_weight}.")
    if not 0.0 <= expert_dropout < 1.0:
      raise ValueError(f"expert_dropout must be in [0, 1), got {expert_dropout}.")
    self.expert_dropout = expert_dropout
    self.hidden_units = tuple(hidden_units)
    self.temperature = temperature
    self.noise_stddev = noise_stddev
    self.entropy_weight = entropy_weight
    self.target_entropy = target_entropy
    self.balance_weight = balance_weight
    self._hidden = [tf.keras.layers.Dense(units, activation="relu", name=f"hidden_{i}")
                    for i, units in enumerate(self.hidden_units)]
    self._logits: Optional[tf.keras.layers.Dense] = None

  def build(self, input_shape):
    experts_shape = tf.TensorShape(input_shape[1])
    if experts_shape.rank is None or experts_shape.rank < 3 or experts_shape[-2] is None:
      raise ValueError(f"experts must be [..., num_experts, dim] with a known num_experts, got "
                       f"{experts_shape}.")
    self.num_experts = int(experts_shape[-2])
    if self.target_entropy is not None and self.target_entropy > math.log(self.num_experts) + 1e-6:
      raise ValueError(f"target_entropy must be <= ln {self.num_experts} = "
                       f"{math.log(self.num_experts):.3f}, the most entropy {self.num_experts} "
                       f"experts' weights can have, got {self.target_entropy}.")
    self._logits = tf.keras.layers.Dense(self.num_experts, name="logits")
    super().build(input_shape)

  def call(self, inputs, position_mask: Optional[tf.Tensor] = None,
           training: Optional[bool] = None):
    user, experts = inputs
    leading = tf.shape(experts)[:-2]
    flat_experts = tf.reshape(experts, tf.concat(
        [leading, [self.num_experts * experts.shape[-1]]], axis=0))
    hidden = tf.concat([user, flat_experts], axis=-1)
    for layer in self._hidden:
      hidden = layer(hidden)
    logits = self._logits(hidden)
    if training and self.noise_stddev > 0:
      logits += tf.random.normal(tf.shape(logits), stddev=self.noise_stddev, dtype=logits.dtype)
    logits /= self.temperature
    if training and self.expert_dropout > 0:
      kept = tf.random.uniform(tf.shape(logits)) >= self.expert_dropout
      kept |= ~tf.reduce_any(kept, axis=-1, keepdims=True)  # Never drop a whole row.
      logits = tf.where(kept, logits, tf.constant(-1e9, logits.dtype))
    alpha = tf.nn.softmax(logits, axis=-1)
    mixed = tf.einsum("...e,...ed->...d", alpha, experts)

    weights = (tf.ones(tf.shape(alpha)[:-1], alpha.dtype) if position_mask is None
               else tf.cast(position_mask, alpha.dtype))
    count = tf.maximum(tf.reduce_sum(weights), 1.0)
    entropy = -tf.reduce_sum(alpha * tf.math.log(alpha + 1e-12), axis=-1)
    if self.entropy_weight > 0:
      # Divided by the positions of all replicas: the replicas' gradients sum to the global mean.
      self.add_loss(self.entropy_weight * tf.reduce_sum(
          weights * tf.square(entropy - self.resolved_target_entropy))
                    / tf.maximum(distribute.global_sum(tf.reduce_sum(weights)), 1.0))
    mean_alpha = tf.reduce_sum(weights[..., tf.newaxis] * alpha,
                               axis=tf.range(tf.rank(alpha) - 1)) / count
    if self.balance_weight > 0:
      # Divided by the replicas: their summed gradients are those of the replicas' mean term.
      replicas = tf.distribute.get_strategy().num_replicas_in_sync
      self.add_loss(self.balance_weight / replicas * (
          self.num_experts * tf.reduce_sum(tf.square(mean_alpha)) - 1.0))
    if tf.distribute.in_cross_replica_context():
      # A distributed model called outside its training steps (scoring, evaluation): its
      # per-replica metric variables cannot be updated here, and nothing is being trained.
      return mixed, alpha
    self.add_metric(tf.reduce_sum(weights * entropy) / count, name="gate_entropy")
    for expert in range(self.num_experts):
      self.add_metric(mean_alpha[expert], name=f"gate_weight_{expert}")
    return mixed, alpha

  @property
  def resolved_target_entropy(self) -> float:
    """H* in nats: `target_entropy`, or 0.75 ln E once the layer knows its E experts."""
    if self.target_entropy is not None:
      return self.target_entropy
    if not self.built:
      raise ValueError("the relative target entropy (target_entropy=None, 0.75 ln E) needs the "
                       "number of experts E: build or call the gate first.")
    return RELATIVE_ENTROPY_FRACTION * math.log(self.num_experts)

  def get_config(self):
    config = super().get_config()
    config.update({
        "hidden_units": list(self.hidden_units),
        "temperature": self.temperature,
        "noise_stddev": self.noise_stddev,
        "entropy_weight": self.entropy_weight,
        "target_entropy": self.target_entropy,
        "balance_weight": self.balance_weight,
        "expert_dropout": self.expert_dropout,
    })
    return config
