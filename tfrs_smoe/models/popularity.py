"""Most-popular baseline: every user gets the items with the most training positives."""

from typing import Dict, Optional

import numpy as np
import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="tfrs_smoe")
class PopularityModel(tf.keras.Model):
  """Scores item i by its number of positives in the training log, for every user.

  Counts are non-trainable state set by `fit_counts`, saved with checkpoints and SavedModels.

  Args:
    num_items: int. Item vocabulary size, reserved indices included.

  Call:
    features: dict with "history" [batch, max_len] int32 (only its batch size is used).
    Returns [batch, num_items] float32 scores.

  Example:
    >>> model = PopularityModel(num_items=5)
    >>> model.fit_counts(np.array([2, 3, 3]))
    >>> model({"history": tf.zeros([1, 4], tf.int32)}).numpy()
    array([[0., 0., 1., 2., 0.]], dtype=float32)
  """

  def __init__(self, num_items: int, **kwargs):
    super().__init__(**kwargs)
    if num_items < 1:
      raise ValueError(f"num_items must be positive, got {num_items}.")
    self.num_items = num_items
    self.counts = self.add_weight(name="counts", shape=[num_items], initializer="zeros",
                                  trainable=False, dtype=tf.float32)

  def fit_counts(self, items: np.ndarray, weights: Optional[np.ndarray] = None) -> None:
    """Sets the counts from the training positives' item indices ([n] int, optional [n] weights)."""
    items = np.asarray(items)
    if items.size and (items.min() < 0 or items.max() >= self.num_items):
      raise ValueError(f"item indices must be in [0, {self.num_items}), got "
                       f"[{items.min()}, {items.max()}].")
    counts = np.bincount(items, weights=weights, minlength=self.num_items).astype(np.float32)
    self.counts.assign(counts)

  def call(self, features: Dict[str, tf.Tensor]) -> tf.Tensor:
    batch_size = tf.shape(features["history"])[0]
    return tf.tile(self.counts[None, :], [batch_size, 1])

  def score_candidates(self, features: Dict[str, tf.Tensor], candidates: tf.Tensor) -> tf.Tensor:
    """[batch, num_candidates] scores of the item indices `candidates` ([batch, num_candidates])."""
    del features  # Popularity does not depend on the user.
    return tf.gather(self.counts, candidates)

  def get_config(self):
    # Layer's, not Model's: tf.keras.Model.get_config is empty for a subclassed model, and the
    # base config carries name, trainable and dtype.
    config = tf.keras.layers.Layer.get_config(self)
    config["num_items"] = self.num_items
    return config
