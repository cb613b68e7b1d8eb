"""Tests of UserContent: gathering from its tables, unknown users, checks, saving."""

import numpy as np
import pytest
import tensorflow as tf

from tfrs_smoe.layers import user_content

# Users 0 (padding) and 1 (out-of-vocabulary) have no features; user 4 has no country.
TABLES = {"plan": np.array([0, 0, 1, 2, 1]), "country": np.array([0, 0, 3, 1, 0])}
USERS = tf.constant([2, 3, 4, 1])


def _layer():
  tf.keras.utils.set_random_seed(0)
  return user_content.UserContent.from_tables(TABLES, num_users=5, feature_dim=3)


def test_features_are_concatenated_in_name_order_and_unknown_embeds_to_zero():
  layer = _layer()
  output = layer(USERS).numpy()
  assert output.shape == (4, 6) and layer.output_dim == 6
  assert layer.get_config()["feature_sizes"] == {"country": 4, "plan": 3}
  country = layer.embeddings[0].get_weights()[0]
  plan = layer.embeddings[1].get_weights()[0]
  np.testing.assert_allclose(output[0], np.concatenate([country[3], plan[1]]), rtol=1e-6)
  np.testing.assert_allclose(output[2], np.concatenate([np.zeros(3), plan[1]]), rtol=1e-6)
  np.testing.assert_array_equal(output[3], np.zeros(6))  # An unknown user.
  assert {w.name.split("/")[-1].split(":")[0] for w in layer.non_trainable_weights} == {
      "feature_plan", "feature_country"}
  assert all(w.dtype.is_floating for w in layer.trainable_weights)


@pytest.mark.parametrize("kwargs,message", [
    ({"feature_sizes": {}}, "at least one"), ({"feature_sizes": {"plan": 3}, "feature_dim": 0},
                                               "feature_dim"),
    ({"feature_sizes": {"plan": 3}, "tables": {"age": np.zeros(5)}}, "age"),
    ({"feature_sizes": {"plan": 3}, "tables": {"plan": np.zeros(4)}}, r"shape \[5\]")])
def test_bad_settings_are_errors(kwargs, message):
  with pytest.raises(ValueError, match=message):
    user_content.UserContent(num_users=5, **kwargs)


def test_bad_tables_name_the_feature():
  with pytest.raises(ValueError, match="'plan'.*negative"):
    user_content.user_feature_tables({"plan": np.array([0, 0, -1])}, 3)


def test_serialization_round_trip_restores_tables_with_the_weights():
  layer = _layer()
  expected = layer(USERS).numpy()
  restored = tf.keras.utils.deserialize_keras_object(tf.keras.utils.serialize_keras_object(layer))
  assert restored.get_config() == layer.get_config()
  restored(USERS)
  assert not restored.tables["plan"].numpy().any()  # Tables are state: zeros until loaded.
  restored.set_weights(layer.get_weights())
  np.testing.assert_allclose(restored(USERS).numpy(), expected, rtol=1e-6)


def test_saved_model_round_trip(tmp_path):
  users = tf.keras.Input([], dtype=tf.int32)
  model = tf.keras.Model(users, _layer()(users))
  expected = model(USERS).numpy()
  model.save(str(tmp_path / "model"))
  loaded = tf.keras.models.load_model(str(tmp_path / "model"))
  np.testing.assert_allclose(loaded(USERS).numpy(), expected, rtol=1e-6)
