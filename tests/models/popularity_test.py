"""Tests of the most-popular baseline: counts, serialization and SavedModel round trip."""

import numpy as np
import pytest
import tensorflow as tf

from tfrs_smoe.models import popularity


def _features(batch_size):
  return {"history": tf.zeros([batch_size, 3], tf.int32)}


def _fitted():
  model = popularity.PopularityModel(num_items=6)
  model.fit_counts(np.array([2, 3, 3, 5, 5, 5]))
  return model


def test_scores_are_positive_counts_for_every_user():
  scores = _fitted()(_features(2)).numpy()
  np.testing.assert_array_equal(scores, [[0, 0, 1, 2, 0, 3]] * 2)


def test_candidate_scores_gather_counts():
  scores = _fitted().score_candidates(_features(1), tf.constant([[5, 2, 4]]))
  np.testing.assert_array_equal(scores.numpy(), [[3, 1, 0]])


def test_weighted_counts():
  model = popularity.PopularityModel(num_items=4)
  model.fit_counts(np.array([2, 3, 3]), weights=np.array([0.5, 1.0, 0.25]))
  np.testing.assert_allclose(model.counts.numpy(), [0, 0, 0.5, 1.25])


def test_rejects_out_of_range_items():
  with pytest.raises(ValueError, match="item indices"):
    popularity.PopularityModel(num_items=3).fit_counts(np.array([3]))


def test_serialization_round_trip():
  model = _fitted()
  restored = tf.keras.utils.deserialize_keras_object(tf.keras.utils.serialize_keras_object(model))
  assert restored.get_config() == model.get_config()
  frozen = popularity.PopularityModel(num_items=4, name="frozen", trainable=False)
  restored = popularity.PopularityModel.from_config(frozen.get_config())
  assert (restored.name, restored.trainable, restored.num_items) == ("frozen", False, 4)


def test_saved_model_round_trip(tmp_path):
  model = _fitted()
  expected = model(_features(2)).numpy()
  model.save(str(tmp_path / "popularity"))
  loaded = tf.keras.models.load_model(str(tmp_path / "popularity"))
  np.testing.assert_array_equal(loaded(_features(2)).numpy(), expected)
