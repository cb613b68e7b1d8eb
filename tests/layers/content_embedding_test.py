"""Tests of ContentEmbedding against its embedding tables, padding, serialization, SavedModel."""

import numpy as np
import pytest
import tensorflow as tf

from tfrs_smoe.layers import content_embedding


def _inputs():
  return {"item": tf.constant([[0, 5, 6]]),
          "genres": tf.constant([[[0, 0], [2, 3], [4, 0]]]),
          "year_bucket": tf.constant([[0, 1, 0]])}


def _layer():
  return content_embedding.ContentEmbedding(num_items=10, num_genres=5, num_year_buckets=3,
                                            item_dim=4, genre_dim=3, year_dim=2)


def test_content_vector_concatenates_id_mean_genre_and_year():
  layer = _layer()
  output = layer(_inputs()).numpy()
  items, genres, years = layer.get_weights()
  assert output.shape == (1, 3, 9) and layer.output_dim == 9
  np.testing.assert_array_equal(output[0, 0], np.zeros(9))  # Padding item.
  np.testing.assert_allclose(output[0, 1], np.concatenate(
      [items[5], (genres[2] + genres[3]) / 2, years[1]]), rtol=1e-6)
  # Item 6: one genre (slot 0 = none is ignored), unknown year embeds to zeros.
  np.testing.assert_allclose(output[0, 2], np.concatenate([items[6], genres[4], np.zeros(2)]),
                             rtol=1e-6)


def test_features_can_be_left_out():
  layer = content_embedding.ContentEmbedding(num_items=10, item_dim=4, genre_dim=0, year_dim=0)
  assert layer({"item": tf.constant([3, 0])}).shape == (2, 4)


def test_bad_settings_are_errors():
  with pytest.raises(ValueError, match="num_genres"):
    content_embedding.ContentEmbedding(num_items=10, num_genres=0, genre_dim=4, year_dim=0)


def test_serialization_round_trip():
  layer = _layer()
  restored = tf.keras.utils.deserialize_keras_object(tf.keras.utils.serialize_keras_object(layer))
  assert restored.get_config() == layer.get_config()


def test_saved_model_round_trip(tmp_path):
  inputs = {"item": tf.keras.Input([3], dtype=tf.int32),
            "genres": tf.keras.Input([3, 2], dtype=tf.int32),
            "year_bucket": tf.keras.Input([3], dtype=tf.int32)}
  model = tf.keras.Model(inputs, _layer()(inputs))
  expected = model(_inputs()).numpy()
  model.save(str(tmp_path / "model"))
  loaded = tf.keras.models.load_model(str(tmp_path / "model"))
  np.testing.assert_allclose(loaded(_inputs()).numpy(), expected, rtol=1e-6)
