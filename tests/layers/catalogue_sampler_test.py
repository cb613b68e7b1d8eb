"""Tests of CatalogueSampler: sampling frequencies, reserved ids, Q, state and serialization."""

import numpy as np
import pytest
from scipy import stats
import tensorflow as tf

from tfrs_smoe.layers import catalogue_sampler

NUM_ITEMS = 40


def _counts(seed=0):
  rng = np.random.RandomState(seed)
  counts = rng.randint(1, 60, size=NUM_ITEMS).astype(np.float64)
  counts[:2] = 1000.0  # Reserved rows with counts are still never drawn.
  counts[[7, 21]] = 0.0  # Never seen in training: never drawn.
  return counts


def _popularity(counts=None, **kwargs):
  sampler = catalogue_sampler.CatalogueSampler(
      num_items=NUM_ITEMS, num_sampled=kwargs.pop("num_sampled", 20_000),
      distribution="popularity", seed=kwargs.pop("seed", 1), **kwargs)
  sampler.set_counts(_counts() if counts is None else counts)
  return sampler


def _frequencies(sampler, draws=4, **call_kwargs):
  ids = np.concatenate([sampler.sample(**call_kwargs).numpy() for _ in range(draws)])
  return np.bincount(ids, minlength=NUM_ITEMS), ids


def test_uniform_frequencies_match_the_uniform_distribution():
  sampler = catalogue_sampler.CatalogueSampler(num_sampled=20_000, seed=3)
  observed, ids = _frequencies(sampler, num_items=NUM_ITEMS)
  assert ids.dtype == np.int32 and ids.min() >= 2 and ids.max() < NUM_ITEMS
  assert observed[:2].sum() == 0
  _, p_value = stats.chisquare(observed[2:])
  assert p_value > 1e-3


@pytest.mark.parametrize("exponent", [1.0, 0.75])
def test_popularity_frequencies_match_counts_to_the_exponent(exponent):
  counts = _counts()
  observed, _ = _frequencies(_popularity(counts, exponent=exponent))
  assert observed[:2].sum() == 0 and observed[[7, 21]].sum() == 0
  weights = counts ** exponent
  weights[:2] = 0.0
  drawable = weights > 0
  expected = weights[drawable] / weights[drawable].sum() * observed.sum()
  _, p_value = stats.chisquare(observed[drawable], expected)
  assert p_value > 1e-3


def test_counts_probability_is_the_sampling_distribution():
  counts = _counts()
  sampler = _popularity(counts, correction="counts", exponent=0.5)
  weights = np.sqrt(counts)
  weights[:2] = 0.0
  ids = np.array([[2, 3], [39, 7]])
  np.testing.assert_allclose(sampler.probability(tf.constant(ids)).numpy(),
                             weights[ids] / weights.sum(), rtol=1e-5)


def test_call_returns_q_of_positives_and_samples_and_ones_without_correction():
  sampler = _popularity(num_sampled=64)
  sampled, q_positives, q_sampled = sampler(tf.constant([[2, 3], [4, 0]]))
  assert sampled.shape == [64] and q_positives.shape == [2, 2] and q_sampled.shape == [64]
  np.testing.assert_array_equal(q_positives.numpy(), np.ones([2, 2]))
  np.testing.assert_array_equal(q_sampled.numpy(), np.ones([64]))


def test_streaming_q_follows_the_estimator_of_the_positives():
  sampler = _popularity(num_sampled=8, correction="streaming", estimator_learning_rate=0.5,
                        exponent=0.5)
  positives = tf.constant([[2, 2, 5, 0], [1, 2, 5, 9]])  # 0 and 1 are not positives.
  for _ in range(3):
    sampled, q_positives, q_sampled = sampler(positives, training=True)
  assert int(sampler.step.numpy()) == 3
  estimator = sampler.estimator
  np.testing.assert_allclose(q_positives.numpy(),
                             estimator.probability(positives).numpy() ** 0.5, rtol=1e-5)
  np.testing.assert_allclose(q_sampled.numpy(),
                             estimator.probability(sampled).numpy() ** 0.5, rtol=1e-5)
  # Item 2 appears three times a step, 9 once: the estimate orders them.
  p = estimator.probability(tf.constant([2, 9])).numpy()
  assert p[0] > 2 * p[1]
  # Reserved ids never update the estimator: their buckets keep the initial gap, unless an
  # item id shares them.
  seen = set(estimator.slots(tf.constant([2, 5, 9])).numpy().ravel())
  for slot in estimator.slots(tf.constant([0, 1])).numpy().ravel():
    if slot not in seen:
      assert estimator.gap.numpy()[slot] == estimator.initial_gap
  gap = estimator.gap.numpy().copy()
  sampler(positives, training=False)
  np.testing.assert_array_equal(estimator.gap.numpy(), gap)
  assert int(sampler.step.numpy()) == 3


@pytest.mark.parametrize("kwargs, match", [
    ({"distribution": "zipf"}, "distribution"),
    ({"correction": "exact"}, "correction"),
    ({"correction": "counts"}, "popularity distribution"),
    ({"num_sampled": 0}, "num_sampled"),
    ({"exponent": 0.0}, "exponent"),
    ({"distribution": "popularity"}, "num_items"),
    ({"num_items": 2}, "num_items"),
])
def test_bad_arguments_are_errors(kwargs, match):
  with pytest.raises(ValueError, match=match):
    catalogue_sampler.CatalogueSampler(**kwargs)


@pytest.mark.parametrize("counts, match", [
    (np.ones(NUM_ITEMS - 1), "shape"),
    (-np.ones(NUM_ITEMS), ">= 0"),
    (np.r_[5.0, 5.0, np.zeros(NUM_ITEMS - 2)], "nothing to sample"),
])
def test_bad_counts_are_errors(counts, match):
  sampler = catalogue_sampler.CatalogueSampler(num_items=NUM_ITEMS, distribution="popularity")
  with pytest.raises(ValueError, match=match):
    sampler.set_counts(counts)


def test_uniform_needs_the_catalogue_size():
  with pytest.raises(ValueError, match="num_items"):
    catalogue_sampler.CatalogueSampler().sample()


def test_serialization_round_trip():
  sampler = _popularity(correction="streaming", exponent=0.75, estimator_buckets=64,
                        name="sampler")
  restored = tf.keras.utils.deserialize_keras_object(
      tf.keras.utils.serialize_keras_object(sampler))
  assert isinstance(restored, catalogue_sampler.CatalogueSampler)
  assert restored.get_config() == sampler.get_config()
  assert restored.estimator.num_buckets == 64


def test_checkpoint_restores_counts_into_a_layer_built_from_its_config(tmp_path):
  sampler = _popularity(correction="counts")
  path = tf.train.Checkpoint(sampler=sampler).write(str(tmp_path / "ckpt"))
  restored = catalogue_sampler.CatalogueSampler.from_config(sampler.get_config())
  tf.train.Checkpoint(sampler=restored).read(path).assert_existing_objects_matched()
  np.testing.assert_array_equal(restored.counts.numpy(), sampler.counts.numpy())


def test_saved_model_round_trip(tmp_path):
  sampler = _popularity(num_sampled=256, correction="streaming", estimator_buckets=64)
  positives = tf.constant([[2, 3], [3, 5]])
  sampler(positives, training=True)
  module = tf.Module()
  module.sampler = sampler
  module.draw = tf.function(lambda ids: sampler(ids, training=False),
                            input_signature=[tf.TensorSpec([None, 2], tf.int32)])
  expected = sampler.probability(positives).numpy()
  tf.saved_model.save(module, str(tmp_path / "sampler"))
  loaded = tf.saved_model.load(str(tmp_path / "sampler"))
  sampled, q_positives, _ = loaded.draw(positives)
  np.testing.assert_allclose(q_positives.numpy(), expected, rtol=1e-6)
  counts = _counts()
  assert set(sampled.numpy()) <= set(np.flatnonzero(counts[2:] > 0) + 2)
