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


def _featured_layer():
  return content_embedding.ContentEmbedding(num_items=10, num_genres=5, num_year_buckets=3,
                                            item_dim=4, genre_dim=3, year_dim=2,
                                            feature_sizes={"maturity": 4, "studio": 3})


def _featured_inputs():
  return {**_inputs(), "maturity": tf.constant([[2, 3, 0]]), "studio": tf.constant([[1, 0, 2]])}


def test_extra_features_are_added_at_full_size_and_unknown_embeds_to_zero():
  layer = _featured_layer()
  output = layer(_featured_inputs()).numpy()
  items, genres, years, maturity, studio = layer.get_weights()
  assert output.shape == (1, 3, 9) and layer.output_dim == 9
  assert maturity.shape == (4, 9) and studio.shape == (3, 9)
  np.testing.assert_array_equal(output[0, 0], np.zeros(9))  # Padding item, whatever its values.
  base = np.concatenate([items[5], (genres[2] + genres[3]) / 2, years[1]])
  np.testing.assert_allclose(output[0, 1], base + maturity[3], rtol=1e-6)  # Studio 0: unknown.
  base = np.concatenate([items[6], genres[4], np.zeros(2)])
  np.testing.assert_allclose(output[0, 2], base + studio[2], rtol=1e-6)  # Maturity unknown.


def test_without_extra_features_the_weights_and_output_are_todays():
  tf.keras.utils.set_random_seed(3)
  plain = content_embedding.ContentEmbedding(num_items=10, num_genres=5, num_year_buckets=3,
                                             item_dim=4, genre_dim=3, year_dim=2)
  expected = plain(_inputs()).numpy()
  tf.keras.utils.set_random_seed(3)
  empty = content_embedding.ContentEmbedding(num_items=10, num_genres=5, num_year_buckets=3,
                                             item_dim=4, genre_dim=3, year_dim=2,
                                             feature_sizes={})
  np.testing.assert_array_equal(empty(_inputs()).numpy(), expected)
  assert [w.name.split("/", 1)[-1] for w in empty.weights] == [
      w.name.split("/", 1)[-1] for w in plain.weights]
  for a, b in zip(empty.get_weights(), plain.get_weights()):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("sizes,message", [
    ({"genres": 3}, "genres"), ({"maturity": 0}, ">= 1 value ids"),
    ({"a b": 2, "a_b": 2}, "collide")])
def test_bad_extra_features_are_errors(sizes, message):
  with pytest.raises(ValueError, match=message):
    content_embedding.ContentEmbedding(num_items=10, num_genres=5, num_year_buckets=3,
                                       feature_sizes=sizes)


def test_extra_features_serialization_and_saved_model_round_trip(tmp_path):
  layer = _featured_layer()
  restored = tf.keras.utils.deserialize_keras_object(tf.keras.utils.serialize_keras_object(layer))
  assert restored.get_config() == layer.get_config()
  assert restored.get_config()["feature_sizes"] == {"maturity": 4, "studio": 3}
  inputs = {"item": tf.keras.Input([3], dtype=tf.int32),
            "genres": tf.keras.Input([3, 2], dtype=tf.int32),
            "year_bucket": tf.keras.Input([3], dtype=tf.int32),
            "maturity": tf.keras.Input([3], dtype=tf.int32),
            "studio": tf.keras.Input([3], dtype=tf.int32)}
  model = tf.keras.Model(inputs, layer(inputs))
  expected = model(_featured_inputs()).numpy()
  model.save(str(tmp_path / "model"))
  loaded = tf.keras.models.load_model(str(tmp_path / "model"))
  np.testing.assert_allclose(loaded(_featured_inputs()).numpy(), expected, rtol=1e-6)
