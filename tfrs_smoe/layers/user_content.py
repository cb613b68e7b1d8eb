"""User indices -> concatenated embeddings of the user's categorical features, held as weights."""

from typing import Dict, Optional

import numpy as np
import tensorflow as tf

from tfrs_smoe.layers import content_embedding


def user_feature_tables(user_features: Optional[Dict[str, np.ndarray]], num_users: int
                        ) -> Dict[str, np.ndarray]:
  """The checked [num_users] int32 tables of categorical user features, sorted by name.

  Args:
    user_features: feature name -> [num_users] int value ids, 0 = unknown
      (`UserFeatureTables.tables`); None = none.
    num_users: user vocabulary size, reserved indices included.

  Raises:
    ValueError: a table has another shape or holds a negative id (naming the feature).
  """
  return content_embedding.checked_id_tables(user_features, num_users, "user feature")


@tf.keras.utils.register_keras_serializable(package="tfrs_smoe")
class UserContent(tf.keras.layers.Layer):
  """[e_1(v_1); ...; e_F(v_F)] [..., F * feature_dim] of user indices [...], v_f the user's
  value of categorical feature f (features in name order).

  Holds the feature tables (`UserFeatureTables.tables`, from `data.user_features`) as
  non-trainable int32 weights, so that a model, its checkpoints and its exports need the user
  index only: a user the export does not know (the out-of-vocabulary index 1), padding (0) and
  a user without the value all read value 0, which embeds to zeros. As `ItemContent`, the
  config holds the tables' sizes and `from_config` makes zero tables that loading the weights
  fills. Build one from the tables with `from_tables`.

  Args:
    num_users: user vocabulary size (reserved indices included).
    feature_sizes: feature name -> its value ids + 1 (id 0 = unknown); at least one.
    feature_dim: size of each feature's embedding.
    tables: feature name -> [num_users] initial value-id table; a missing one is zeros.

  Call args:
    users: [...] int user indices.

  Returns:
    [..., len(feature_sizes) * feature_dim] float32.

  Example:
    >>> features = UserContent.from_tables({"plan": [0, 0, 1, 2, 1]}, num_users=5,
    ...                                    feature_dim=8)
    >>> features(tf.constant([2, 1])).shape
    TensorShape([2, 8])
  """

  def __init__(self, num_users: int, feature_sizes: Dict[str, int], feature_dim: int = 8,
               tables: Optional[Dict[str, np.ndarray]] = None, **kwargs):
    super().__init__(**kwargs)
    if num_users < 1 or feature_dim < 1:
      raise ValueError(f"num_users and feature_dim must be >= 1, got {num_users} and "
                       f"{feature_dim}.")
    self.feature_sizes = content_embedding.checked_sizes(feature_sizes, "user feature_sizes")
    if not self.feature_sizes:
      raise ValueError("UserContent needs at least one user feature (feature_sizes is empty).")
    tables = dict(tables or {})
    unknown = sorted(set(tables) - set(self.feature_sizes))
    if unknown:
      raise ValueError(f"user feature tables {unknown} have no entry in feature_sizes "
                       f"{dict(self.feature_sizes)}.")
    self.num_users = num_users
    self.feature_dim = feature_dim
    self.tables = {}
    self.embeddings = []
    for name, size in self.feature_sizes.items():
      values = tables.get(name)
      if values is not None and np.shape(values) != (num_users,):
        raise ValueError(f"user feature {name!r} table must have shape [{num_users}], got "
                         f"{list(np.shape(values))}.")
      values = (np.zeros([num_users], np.int32) if values is None
                else np.asarray(values, np.int32))
      self.tables[name] = tf.Variable(values, trainable=False,
                                      name=content_embedding.layer_name(name))
      self.embeddings.append(tf.keras.layers.Embedding(
          size, feature_dim, name=content_embedding.layer_name(name)))

  @classmethod
  def from_tables(cls, user_features: Dict[str, np.ndarray], num_users: int,
                  feature_dim: int = 8, **kwargs) -> "UserContent":
    """A `UserContent` over checked tables (`user_feature_tables`), sized to their largest ids."""
    tables = user_feature_tables(user_features, num_users)
    sizes = {name: int(table.max(initial=0)) + 1 for name, table in tables.items()}
    return cls(num_users, sizes, feature_dim, tables=tables, **kwargs)

  @property
  def output_dim(self) -> int:
    return len(self.feature_sizes) * self.feature_dim

  def build(self, input_shape):
    for embedding in self.embeddings:
      embedding.build([None])
    super().build(input_shape)

  def call(self, users):
    users = tf.cast(users, tf.int32)
    parts = []
    for name, embedding in zip(self.feature_sizes, self.embeddings):
      value = tf.nn.embedding_lookup(self.tables[name], users)
      parts.append(embedding(value) * tf.cast(value > 0, tf.float32)[..., tf.newaxis])
    return tf.concat(parts, axis=-1)

  def get_config(self):
    config = super().get_config()
    config.update({"num_users": self.num_users, "feature_sizes": dict(self.feature_sizes),
                   "feature_dim": self.feature_dim})
    return config
