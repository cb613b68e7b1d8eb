"""Tests of StreamingFrequencyEstimator against a sequential NumPy reference and on streams."""

import numpy as np
import pytest
import tensorflow as tf

from tfrs_smoe.layers import frequency_estimator


def _sequential_reference(estimator, batches, steps):
  """A and B after applying every occurrence one by one, as the paper's algorithm 2 does."""
  size = estimator.num_hashes * estimator.num_buckets
  last_step = np.zeros(size)
  gap = np.full(size, estimator.initial_gap)
  alpha = estimator.learning_rate
  for ids, step in zip(batches, steps):
    slots = estimator.slots(tf.constant(ids)).numpy()  # [num_hashes, batch]
    for occurrence in range(len(ids)):
      for slot in slots[:, occurrence]:
        gap[slot] = (1 - alpha) * gap[slot] + alpha * (step - last_step[slot])
        last_step[slot] = step
  return last_step, gap


def _power_law_stream(num_items, batch_size, num_steps, seed):
  rng = np.random.RandomState(seed)
  weights = 1.0 / np.arange(1, num_items + 1)
  probabilities = weights / weights.sum()
  return probabilities, rng.choice(num_items, size=[num_steps, batch_size], p=probabilities)


@pytest.mark.parametrize("num_hashes", [1, 3])
def test_updates_match_the_sequential_algorithm_with_repeats_and_collisions(num_hashes):
  # 7 buckets for ids up to 40: collisions and in-batch repeats both occur.
  estimator = frequency_estimator.StreamingFrequencyEstimator(
      num_buckets=7, num_hashes=num_hashes, learning_rate=0.3, initial_gap=10.0, seed=3)
  batches = [[1, 5, 5, 40], [2, 1, 1, 1], [40, 17, 3, 5]]
  steps = [1, 2, 4]
  for ids, step in zip(batches, steps):
    estimator(tf.constant(ids), tf.constant(step), training=True)
  last_step, gap = _sequential_reference(estimator, batches, steps)
  np.testing.assert_allclose(estimator.last_step.numpy(), last_step)
  np.testing.assert_allclose(estimator.gap.numpy(), gap, rtol=1e-5)
  probe = np.array([1, 5, 40, 9])
  slots = estimator.slots(tf.constant(probe)).numpy()
  np.testing.assert_allclose(estimator(tf.constant(probe), tf.constant(5)).numpy(),
                             1.0 / gap[slots].max(axis=0), rtol=1e-5)


def test_reading_does_not_update_and_shape_follows_ids():
  estimator = frequency_estimator.StreamingFrequencyEstimator(num_buckets=11, initial_gap=4.0)
  p = estimator(tf.constant([[1, 2], [3, 1]]), tf.constant(9))
  np.testing.assert_allclose(p.numpy(), np.full([2, 2], 0.25))
  np.testing.assert_array_equal(estimator.last_step.numpy(), np.zeros(11))


def test_converges_to_expected_occurrences_per_step_on_a_stationary_stream():
  probabilities, stream = _power_law_stream(num_items=100, batch_size=64, num_steps=3000,
                                            seed=0)
  estimator = frequency_estimator.StreamingFrequencyEstimator(
      num_buckets=100_000, learning_rate=0.02, seed=1)
  update = tf.function(lambda ids, step: estimator(ids, step, training=True))
  for step, ids in enumerate(stream, start=1):
    update(tf.constant(ids), tf.constant(step))
  estimate = estimator(tf.range(100), tf.constant(len(stream))).numpy()
  expected = 64 * probabilities  # Occurrences per step.
  relative_error = np.abs(estimate - expected) / expected
  # Stated tolerance (measured: mean 0.07, max 0.20): items seen every 1 to 10 steps, the
  # paper's regime, within 10 % on average and 30 % at worst.
  regular = (expected >= 0.1) & (expected < 1.0)
  assert regular.sum() > 50
  assert relative_error[regular].mean() < 0.1
  assert relative_error[regular].max() < 0.3
  # Items seen several times per step (measured mean 0.11): the EMA over zero gaps of in-step
  # repeats over-estimates them a little, within 20 % on average.
  assert relative_error[expected >= 1.0].mean() < 0.2


def test_more_hash_functions_reduce_collision_error():
  probabilities, stream = _power_law_stream(num_items=400, batch_size=32, num_steps=1500,
                                            seed=2)
  expected = 32 * probabilities
  errors = {}
  for num_hashes in (1, 4):
    estimator = frequency_estimator.StreamingFrequencyEstimator(
        num_buckets=300, num_hashes=num_hashes, learning_rate=0.05, seed=5)
    update = tf.function(lambda ids, step, e=estimator: e(ids, step, training=True))
    for step, ids in enumerate(stream, start=1):
      update(tf.constant(ids), tf.constant(step))
    estimate = estimator(tf.range(400), tf.constant(len(stream))).numpy()
    errors[num_hashes] = np.mean(np.abs(estimate - expected))
  assert errors[4] < 0.7 * errors[1], errors


def test_string_ids_hash_consistently():
  estimator = frequency_estimator.StreamingFrequencyEstimator(
      num_buckets=1000, num_hashes=2, learning_rate=0.5, string_ids=True)
  for step in range(1, 41):
    ids = ["a", "a", "b"] if step % 2 else ["a", "a"]
    estimator(tf.constant(ids), tf.constant(step), training=True)
  p = estimator(tf.constant(["a", "b", "never"]), tf.constant(40)).numpy()
  # "a" twice per step: gaps 1 then 0, fixed point B = (1 - alpha) alpha / (1 - (1 - alpha)^2)
  # = 1/3 at alpha = 0.5 (the in-step repeat bias is large at a large alpha).
  assert p[0] == pytest.approx(3.0, rel=1e-3)
  assert p[1] == pytest.approx(0.5, rel=1e-3)  # Every other step: B -> 2.
  assert p[2] == pytest.approx(0.01)  # Never seen: 1 / initial_gap.


@pytest.mark.parametrize("kwargs", [{"num_buckets": 0}, {"num_hashes": 0},
                                    {"learning_rate": 0.0}, {"learning_rate": 1.5},
                                    {"initial_gap": 0.0}])
def test_bad_settings_are_rejected(kwargs):
  with pytest.raises(ValueError):
    frequency_estimator.StreamingFrequencyEstimator(**kwargs)


def test_negative_integer_ids_are_rejected():
  estimator = frequency_estimator.StreamingFrequencyEstimator(num_buckets=5)
  with pytest.raises(tf.errors.InvalidArgumentError, match="ids must be >= 0"):
    estimator(tf.constant([3, -1]), tf.constant(1))


def test_serialization_round_trip():
  estimator = frequency_estimator.StreamingFrequencyEstimator(
      num_buckets=50, num_hashes=3, learning_rate=0.1, initial_gap=20.0, seed=7, name="freq")
  restored = tf.keras.utils.deserialize_keras_object(
      tf.keras.utils.serialize_keras_object(estimator))
  assert isinstance(restored, frequency_estimator.StreamingFrequencyEstimator)
  assert restored.get_config() == estimator.get_config()
  ids = tf.constant([1, 2, 3, 49, 1000])
  np.testing.assert_array_equal(restored.slots(ids).numpy(), estimator.slots(ids).numpy())


def test_saved_model_round_trip_keeps_the_state(tmp_path):
  estimator = frequency_estimator.StreamingFrequencyEstimator(num_buckets=64, num_hashes=2,
                                                              learning_rate=0.2)
  for step in range(1, 6):
    estimator(tf.constant([step, 1, 1]), tf.constant(step), training=True)
  module = tf.Module()
  module.estimator = estimator
  module.probability = tf.function(
      lambda ids: estimator(ids, tf.constant(0)),
      input_signature=[tf.TensorSpec([None], tf.int64)])
  tf.saved_model.save(module, str(tmp_path / "estimator"))
  loaded = tf.saved_model.load(str(tmp_path / "estimator"))
  ids = tf.constant([1, 2, 3, 77], tf.int64)
  np.testing.assert_allclose(loaded.probability(ids).numpy(), estimator(ids, 0).numpy())
