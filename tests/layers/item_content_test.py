"""Tests of ItemContent: gathering from its tables, checks, serialization, SavedModel."""

import numpy as np
import pytest
import tensorflow as tf

from tfrs_smoe.layers import item_content

# Items 0 (padding) and 1 (out-of-vocabulary) have no features; 2 and 3 have genres and a year.
TABLES = {"genres": np.array([[0, 0], [0, 0], [2, 3], [4, 0]]),
          "year_bucket": np.array([0, 0, 1, 2])}
ITEMS = tf.constant([[0, 2, 3], [3, 3, 1]])


def _layer():
  return item_content.ItemContent.from_tables(TABLES, num_items=4, item_dim=4, genre_dim=3,
                                              year_dim=2)


def test_content_is_the_embedding_of_each_items_table_rows():
  layer = _layer()
  output = layer(ITEMS).numpy()
  assert output.shape == (2, 3, 9) and layer.output_dim == 9
  expected = layer.embedding({"item": ITEMS, "genres": tf.gather(TABLES["genres"], ITEMS),
                              "year_bucket": tf.gather(TABLES["year_bucket"], ITEMS)}).numpy()
  np.testing.assert_allclose(output, expected, rtol=1e-6)
  np.testing.assert_array_equal(output[0, 0], np.zeros(9))  # Padding.
  items, genres, years = layer.embedding.get_weights()
  np.testing.assert_allclose(output[0, 1], np.concatenate(
      [items[2], (genres[2] + genres[3]) / 2, years[1]]), rtol=1e-6)


def test_tables_are_sized_from_their_largest_ids_and_not_trained():
  layer = _layer()
  layer(ITEMS)
  config = layer.get_config()
  assert (config["num_genres"], config["num_year_buckets"], config["max_genres"]) == (5, 3, 2)
  assert {w.name.split("/")[-1].split(":")[0] for w in layer.non_trainable_weights} == {
      "genres", "year_bucket"}
  np.testing.assert_array_equal(layer.genres.numpy(), TABLES["genres"])
  assert all(w.dtype.is_floating for w in layer.trainable_weights)


def test_feature_tables_are_checked_int32_rows():
  genres, years = item_content.feature_tables(
      {"genres": [[0, 0], [1, 2], [3, 0]], "year_bucket": np.array([0, 4, 1], np.int64)}, 3)
  assert genres.dtype == np.int32 and years.dtype == np.int32
  np.testing.assert_array_equal(genres, [[0, 0], [1, 2], [3, 0]])
  np.testing.assert_array_equal(years, [0, 4, 1])


@pytest.mark.parametrize("item_features,num_items,message", [
    ({"genres": [[0], [1], [2]]}, 3, "lacks"),
    ({"genres": [[0], [1]], "year_bucket": [0, 1, 2]}, 3, "genres"),
    ({"genres": [0, 1, 2], "year_bucket": [0, 1, 2]}, 3, "max_genres"),
    ({"genres": [[0], [1], [-1]], "year_bucket": [0, 1, 2]}, 3, ">= 0"),
    ({"genres": np.zeros([0, 1]), "year_bucket": []}, 0, "num_items"),
])
def test_bad_feature_tables_are_errors(item_features, num_items, message):
  with pytest.raises(ValueError, match=message):
    item_content.feature_tables(item_features, num_items)


def test_tables_of_another_shape_than_the_config_are_an_error():
  with pytest.raises(ValueError, match=r"genres table must have shape \[4, 2\]"):
    item_content.ItemContent(4, 2, 5, 3, genres=np.zeros([4, 3]))
  with pytest.raises(ValueError, match="max_genres"):
    item_content.ItemContent(4, 0, 5, 3)


def test_serialization_round_trip_restores_tables_with_the_weights():
  layer = _layer()
  expected = layer(ITEMS).numpy()
  restored = tf.keras.utils.deserialize_keras_object(tf.keras.utils.serialize_keras_object(layer))
  assert restored.get_config() == layer.get_config()
  restored(ITEMS)
  assert not restored.genres.numpy().any()  # Tables are state: zeros until weights load.
  restored.set_weights(layer.get_weights())
  np.testing.assert_allclose(restored(ITEMS).numpy(), expected, rtol=1e-6)


def test_saved_model_round_trip(tmp_path):
  items = tf.keras.Input([3], dtype=tf.int32)
  model = tf.keras.Model(items, _layer()(items))
  expected = model(ITEMS).numpy()
  model.save(str(tmp_path / "model"))
  loaded = tf.keras.models.load_model(str(tmp_path / "model"))
  np.testing.assert_allclose(loaded(ITEMS).numpy(), expected, rtol=1e-6)


CATEGORICAL = {"studio": np.array([0, 0, 2, 1]), "maturity": np.array([0, 0, 0, 3])}


def _featured_layer():
  return item_content.ItemContent.from_tables(TABLES, num_items=4, item_dim=4, genre_dim=3,
                                              year_dim=2, categorical=CATEGORICAL)


def test_extra_categorical_tables_are_gathered_and_added():
  layer = _featured_layer()
  output = layer(ITEMS).numpy()
  assert output.shape == (2, 3, 9)
  assert layer.get_config()["feature_sizes"] == {"maturity": 4, "studio": 3}
  expected = layer.embedding({
      "item": ITEMS, "genres": tf.gather(TABLES["genres"], ITEMS),
      "year_bucket": tf.gather(TABLES["year_bucket"], ITEMS),
      **{name: tf.gather(table, ITEMS) for name, table in CATEGORICAL.items()}}).numpy()
  np.testing.assert_allclose(output, expected, rtol=1e-6)
  plain = layer.embedding({"item": ITEMS, "genres": tf.gather(TABLES["genres"], ITEMS),
                           "year_bucket": tf.gather(TABLES["year_bucket"], ITEMS),
                           "studio": tf.zeros_like(ITEMS), "maturity": tf.zeros_like(ITEMS)})
  assert not np.allclose(output, plain.numpy())  # The features take part.
  assert {w.name.split("/")[-1].split(":")[0] for w in layer.non_trainable_weights} == {
      "genres", "year_bucket", "feature_studio", "feature_maturity"}
  np.testing.assert_array_equal(layer.categorical["studio"].numpy(), CATEGORICAL["studio"])


def test_no_extra_tables_is_bit_identical_to_today():
  tf.keras.utils.set_random_seed(5)
  plain = _layer()
  expected = plain(ITEMS).numpy()
  tf.keras.utils.set_random_seed(5)
  empty = item_content.ItemContent.from_tables(TABLES, num_items=4, item_dim=4, genre_dim=3,
                                               year_dim=2, categorical={})
  np.testing.assert_array_equal(empty(ITEMS).numpy(), expected)
  assert [w.name.split("/", 1)[-1] for w in empty.weights] == [
      w.name.split("/", 1)[-1] for w in plain.weights]
  for a, b in zip(empty.get_weights(), plain.get_weights()):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("categorical,message", [
    ({"studio": [0, 1, 2]}, r"'studio' must be an int table of shape \[4\]"),
    ({"studio": [0, 0, -1, 1]}, "negative"),
    ({"studio": [0.0, 0.0, 1.0, 1.0]}, "int table")])
def test_bad_extra_tables_are_errors(categorical, message):
  with pytest.raises(ValueError, match=message):
    item_content.ItemContent.from_tables(TABLES, num_items=4, categorical=categorical)


def test_extra_tables_serialization_and_saved_model_round_trip(tmp_path):
  layer = _featured_layer()
  expected = layer(ITEMS).numpy()
  restored = tf.keras.utils.deserialize_keras_object(tf.keras.utils.serialize_keras_object(layer))
  assert restored.get_config() == layer.get_config()
  restored(ITEMS)
  assert not restored.categorical["studio"].numpy().any()  # State: zeros until weights load.
  restored.set_weights(layer.get_weights())
  np.testing.assert_allclose(restored(ITEMS).numpy(), expected, rtol=1e-6)
  items = tf.keras.Input([3], dtype=tf.int32)
  model = tf.keras.Model(items, _featured_layer()(items))
  expected = model(ITEMS).numpy()
  model.save(str(tmp_path / "model"))
  loaded = tf.keras.models.load_model(str(tmp_path / "model"))
  np.testing.assert_allclose(loaded(ITEMS).numpy(), expected, rtol=1e-6)
