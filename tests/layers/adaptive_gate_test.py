"""Tests of AdaptiveGate: mixing, temperature, noise, entropy loss, metrics, saving."""

import numpy as np
import pytest
import tensorflow as tf

from tfrs_smoe.layers import adaptive_gate


def _inputs(batch=4, num_experts=3, dim=5, user_dim=6, seed=0):
  rng = np.random.RandomState(seed)
  return (tf.constant(rng.normal(size=[batch, user_dim]), tf.float32),
          tf.constant(rng.normal(size=[batch, num_experts, dim]), tf.float32))


def _entropy(alpha):
  return -np.sum(alpha * np.log(alpha + 1e-12), axis=-1)


def test_output_is_the_alpha_weighted_sum_of_experts():
  user, experts = _inputs()
  gate = adaptive_gate.AdaptiveGate(hidden_units=(8,), noise_stddev=0.0)
  mixed, alpha = gate((user, experts))
  np.testing.assert_allclose(alpha.numpy().sum(-1), np.ones(4), rtol=1e-6)
  np.testing.assert_allclose(mixed.numpy(),
                             np.einsum("be,bed->bd", alpha.numpy(), experts.numpy()),
                             rtol=1e-5, atol=1e-6)


def test_temperature_divides_the_logits():
  user, experts = _inputs()
  sharp = adaptive_gate.AdaptiveGate(hidden_units=(), temperature=1.0, noise_stddev=0.0)
  sharp((user, experts))
  flat = adaptive_gate.AdaptiveGate(hidden_units=(), temperature=4.0, noise_stddev=0.0)
  flat((user, experts))
  flat.set_weights(sharp.get_weights())
  _, alpha_sharp = sharp((user, experts))
  _, alpha_flat = flat((user, experts))
  logits = np.log(alpha_sharp.numpy())  # Equal to the logits up to a per-row constant.
  expected = np.exp(logits / 4.0) / np.exp(logits / 4.0).sum(-1, keepdims=True)
  np.testing.assert_allclose(alpha_flat.numpy(), expected, rtol=1e-5)


def test_noise_only_in_training():
  user, experts = _inputs()
  gate = adaptive_gate.AdaptiveGate(noise_stddev=1.0)
  _, first = gate((user, experts), training=False)
  _, second = gate((user, experts), training=False)
  np.testing.assert_array_equal(first.numpy(), second.numpy())
  _, noisy = gate((user, experts), training=True)
  assert not np.allclose(noisy.numpy(), first.numpy())


def test_entropy_loss_matches_hand_computation_and_respects_the_mask():
  user, experts = _inputs()
  gate = adaptive_gate.AdaptiveGate(noise_stddev=0.0, entropy_weight=0.5, target_entropy=0.52)
  mask = tf.constant([True, False, True, True])
  _, alpha = gate((user, experts), position_mask=mask)
  entropy = _entropy(alpha.numpy())[[0, 2, 3]]
  expected = 0.5 * np.mean((entropy - 0.52) ** 2)
  assert len(gate.losses) == 1
  np.testing.assert_allclose(gate.losses[0].numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("num_experts", [2, 3, 4])
def test_relative_target_entropy_is_three_quarters_of_ln_num_experts(num_experts):
  user, experts = _inputs(num_experts=num_experts)
  gate = adaptive_gate.AdaptiveGate(noise_stddev=0.0, entropy_weight=1.0, target_entropy=None)
  _, alpha = gate((user, experts))
  target = 0.75 * np.log(num_experts)  # 0.52 nats for two experts, the paper's H*.
  assert gate.resolved_target_entropy == pytest.approx(target)
  expected = np.mean((_entropy(alpha.numpy()) - target) ** 2)
  np.testing.assert_allclose(gate.losses[0].numpy(), expected, rtol=1e-5)
  assert gate.get_config()["target_entropy"] is None  # Stays relative when rebuilt.


def test_target_entropy_above_ln_num_experts_is_an_error():
  gate = adaptive_gate.AdaptiveGate(target_entropy=0.8)
  with pytest.raises(ValueError, match="target_entropy must be <= ln 2 = 0.693"):
    gate(_inputs(num_experts=2))


def test_unbuilt_relative_target_entropy_is_an_error():
  with pytest.raises(ValueError, match="needs the number of experts"):
    _ = adaptive_gate.AdaptiveGate(target_entropy=None).resolved_target_entropy


def test_no_loss_when_entropy_weight_is_zero():
  gate = adaptive_gate.AdaptiveGate(entropy_weight=0.0)
  gate(_inputs())
  assert not gate.losses


def test_balance_loss_matches_hand_computation_and_respects_the_mask():
  user, experts = _inputs()
  gate = adaptive_gate.AdaptiveGate(noise_stddev=0.0, entropy_weight=0.0, balance_weight=0.3)
  mask = tf.constant([True, False, True, True])
  _, alpha = gate((user, experts), position_mask=mask)
  mean_alpha = alpha.numpy()[[0, 2, 3]].mean(axis=0)
  coefficient_of_variation = mean_alpha.std() / mean_alpha.mean()
  assert len(gate.losses) == 1
  np.testing.assert_allclose(gate.losses[0].numpy(), 0.3 * coefficient_of_variation ** 2,
                             rtol=1e-4)


def test_balance_loss_is_zero_for_equal_mean_weights():
  gate = adaptive_gate.AdaptiveGate(hidden_units=(), noise_stddev=0.0, entropy_weight=0.0,
                                    balance_weight=1.0)
  user, experts = _inputs(num_experts=2)
  gate((user, experts))
  gate.set_weights([np.zeros_like(w) for w in gate.get_weights()])
  _, alpha = gate((user, experts))
  np.testing.assert_allclose(alpha.numpy(), 0.5)
  assert len(gate.losses) == 1
  np.testing.assert_allclose(gate.losses[0].numpy(), 0.0, atol=1e-6)


def test_per_position_gate_and_metrics_in_a_model():
  user = tf.keras.Input([7, 6])
  experts = tf.keras.Input([7, 2, 5])
  mixed, alpha = adaptive_gate.AdaptiveGate(noise_stddev=0.0)((user, experts))
  model = tf.keras.Model([user, experts], [mixed, alpha])
  assert mixed.shape.as_list() == [None, 7, 5] and alpha.shape.as_list() == [None, 7, 2]
  names = {metric.name for metric in model.metrics}
  assert {"gate_entropy", "gate_weight_0", "gate_weight_1"} <= names


def test_metrics_are_the_masked_means_of_entropy_and_weights():
  rng = np.random.RandomState(1)
  user = tf.constant(rng.normal(size=[2, 4, 6]), tf.float32)
  experts = tf.constant(rng.normal(size=[2, 4, 3, 5]), tf.float32)
  mask = np.array([[False, True, True, True], [False, False, False, True]])
  gate = adaptive_gate.AdaptiveGate(noise_stddev=0.0)
  _, alpha = gate((user, experts), position_mask=tf.constant(mask))
  alpha = alpha.numpy()[mask]  # [4 unmasked positions, 3 experts]
  metrics = {metric.name: float(metric.result()) for metric in gate.metrics}
  np.testing.assert_allclose(metrics["gate_entropy"], _entropy(alpha).mean(), rtol=1e-5)
  for expert in range(3):
    np.testing.assert_allclose(metrics[f"gate_weight_{expert}"], alpha[:, expert].mean(),
                               rtol=1e-5)


def test_entropy_term_prevents_collapse():
  """With the gate pushed towards one expert, the regulariser keeps its entropy near H*."""
  rng = np.random.RandomState(0)
  user = rng.normal(size=[256, 4]).astype(np.float32)
  experts = rng.normal(size=[256, 2, 3]).astype(np.float32)

  def final_entropy(entropy_weight):
    tf.keras.utils.set_random_seed(0)
    gate = adaptive_gate.AdaptiveGate(hidden_units=(8,), noise_stddev=0.0,
                                      entropy_weight=entropy_weight, target_entropy=0.52)
    optimizer = tf.keras.optimizers.Adam(0.05)

    @tf.function  # Traced once: 150 eager steps cost ~5x more (the final weights are the same).
    def step():
      with tf.GradientTape() as tape:
        _, alpha = gate((user, experts), training=True)
        # A task loss that rewards putting all weight on expert 0.
        loss = -tf.reduce_mean(tf.math.log(alpha[:, 0] + 1e-9)) + tf.add_n(gate.losses or [0.0])
      optimizer.apply_gradients(zip(tape.gradient(loss, gate.trainable_variables),
                                    gate.trainable_variables))

    for _ in range(150):
      step()
    _, alpha = gate((user, experts))
    return float(np.mean(_entropy(alpha.numpy())))

  assert final_entropy(0.0) < 0.05  # Collapse onto expert 0.
  assert final_entropy(10.0) > 0.35  # Held near H* = 0.52.


def test_balance_term_keeps_every_expert_in_use():
  """Three experts, a task that rewards expert 0 at half of the positions and expert 1 at the
  other half: the entropy term alone lets expert 2 go unused; the balance term keeps it in use."""
  rng = np.random.RandomState(0)
  user = rng.normal(size=[256, 4]).astype(np.float32)
  experts = rng.normal(size=[256, 3, 3]).astype(np.float32)
  favoured = np.arange(256) % 2

  def final_weights(balance_weight):
    tf.keras.utils.set_random_seed(0)
    gate = adaptive_gate.AdaptiveGate(hidden_units=(8,), noise_stddev=0.0, entropy_weight=1.0,
                                      target_entropy=0.52, balance_weight=balance_weight)
    optimizer = tf.keras.optimizers.Adam(0.05)
    user_and_favoured = np.concatenate([user, favoured[:, None].astype(np.float32)], axis=1)

    @tf.function  # Traced once: 200 eager steps cost ~6x more (the final weights are the same).
    def step():
      with tf.GradientTape() as tape:
        _, alpha = gate((user_and_favoured, experts), training=True)
        task = -tf.reduce_mean(tf.math.log(tf.gather(alpha, favoured, batch_dims=1) + 1e-9))
        loss = task + tf.add_n(gate.losses)
      optimizer.apply_gradients(zip(tape.gradient(loss, gate.trainable_variables),
                                    gate.trainable_variables))

    for _ in range(200):
      step()
    _, alpha = gate((user_and_favoured, experts))
    return alpha.numpy().mean(axis=0)

  assert final_weights(0.0)[2] < 0.05  # Entropy met by mixing experts 0 and 1 only.
  assert final_weights(5.0)[2] > 0.2


def test_expert_dropout_drops_experts_in_training_only_and_never_a_whole_row():
  user, experts = _inputs(batch=2000, num_experts=3)
  gate = adaptive_gate.AdaptiveGate(noise_stddev=0.0, expert_dropout=0.4)
  _, kept = gate((user, experts), training=False)
  assert np.all(kept.numpy() > 0)
  tf.random.set_seed(1)
  _, dropped = gate((user, experts), training=True)
  dropped = dropped.numpy()
  np.testing.assert_allclose(dropped.sum(-1), np.ones(2000), rtol=1e-5)
  off = dropped < 1e-20
  assert not np.any(off.all(-1))
  # Rows that would lose all three experts keep them all: P(dropped) = 0.4 - 0.4^3 per expert.
  np.testing.assert_allclose(off.mean(), 0.4 - 0.4 ** 3, atol=0.03)
  # The kept experts share the row in proportion to the undropped weights.
  row = np.flatnonzero(off.sum(-1) == 1)[0]
  survivors = ~off[row]
  expected = kept.numpy()[row][survivors] / kept.numpy()[row][survivors].sum()
  np.testing.assert_allclose(dropped[row][survivors], expected, rtol=1e-5)


@pytest.mark.parametrize("kwargs", [{"temperature": 0.0}, {"noise_stddev": -1.0},
                                    {"balance_weight": -0.1}, {"expert_dropout": 1.0},
                                    {"target_entropy": -0.1}])
def test_bad_settings_are_errors(kwargs):
  with pytest.raises(ValueError):
    adaptive_gate.AdaptiveGate(**kwargs)


def test_serialization_round_trip():
  gate = adaptive_gate.AdaptiveGate(hidden_units=(16, 8), temperature=0.5, noise_stddev=0.3,
                                    entropy_weight=0.1, target_entropy=0.4, balance_weight=0.2,
                                    expert_dropout=0.25)
  restored = tf.keras.utils.deserialize_keras_object(tf.keras.utils.serialize_keras_object(gate))
  assert isinstance(restored, adaptive_gate.AdaptiveGate)
  assert restored.get_config() == gate.get_config()


def test_saved_model_round_trip(tmp_path):
  user = tf.keras.Input([6])
  experts = tf.keras.Input([3, 5])
  mixed, alpha = adaptive_gate.AdaptiveGate(noise_stddev=0.5)((user, experts))
  model = tf.keras.Model([user, experts], {"mixed": mixed, "alpha": alpha})
  inputs = _inputs()
  expected = model(list(inputs))
  model.save(str(tmp_path / "model"))
  loaded = tf.keras.models.load_model(str(tmp_path / "model"))
  outputs = loaded(list(inputs))
  for name in ("mixed", "alpha"):
    np.testing.assert_allclose(outputs[name].numpy(), expected[name].numpy(), rtol=1e-6)
