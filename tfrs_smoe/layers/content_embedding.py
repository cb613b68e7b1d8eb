"""Item content vectors: item id embedding concatenated with item feature embeddings."""

import re
from typing import Dict, Optional

import numpy as np
import tensorflow as tf

# Input keys of the genre and year parts; an extra categorical feature cannot take them.
RESERVED_INPUTS = ("item", "genres", "year_bucket")


def layer_name(feature: str) -> str:
  """A variable- and layer-safe name for feature `feature` (its name may be any column name)."""
  return "feature_" + re.sub(r"[^A-Za-z0-9_]", "_", feature)


def checked_sizes(sizes: Optional[Dict[str, int]], what: str) -> Dict[str, int]:
  """`sizes` (feature name -> values + 1) as a dict sorted by name; ValueError naming `what`."""
  sizes = dict(sorted((str(name), int(size)) for name, size in (sizes or {}).items()))
  bad = {name: size for name, size in sizes.items() if size < 1}
  if bad:
    raise ValueError(f"{what}: every feature needs >= 1 value ids (id 0 = unknown), got {bad}.")
  names = [layer_name(name) for name in sizes]
  if len(set(names)) != len(names):
    raise ValueError(f"{what}: feature names {list(sizes)} collide once made variable-safe "
                     f"({names}); rename a column.")
  return sizes



def checked_id_tables(tables: Optional[Dict[str, np.ndarray]], size: int, kind: str
                      ) -> Dict[str, np.ndarray]:
  """[size] int32 value-id tables of categorical features, checked and sorted by name.

  Args:
    tables: feature name -> [size] int value ids, 0 = unknown; None = none.
    size: rows each table must have (the item or user vocabulary size).
    kind: what the features are, for the errors ("item feature", "user feature").

  Raises:
    ValueError: a table has another shape or holds a negative id (naming the feature).
  """
  checked = {}
  for name, values in sorted((tables or {}).items()):
    values = np.asarray(values)
    if values.shape != (size,) or not np.issubdtype(values.dtype, np.integer):
      raise ValueError(f"{kind} {name!r} must be an int table of shape [{size}], "
                       f"got {values.dtype} {list(values.shape)}.")
    if values.size and values.min() < 0:
      raise ValueError(f"{kind} {name!r} holds negative value ids; 0 is unknown.")
    checked[name] = values.astype(np.int32)
  return checked

@tf.keras.utils.register_keras_serializable(package="tfrs_smoe")
class ContentEmbedding(tf.keras.layers.Layer):
  """[e_id(i); mean_g e_genre(g); e_year(y)] + sum_f e_f(v_f) for item i with genres g, year
  bucket y and extra categorical features v_f.

  Index 0 is padding everywhere (item 0, genre 0, year bucket 0 = unknown): padding items embed
  to zeros, and genre slots holding 0 take no part in the genre mean. The inputs are the item
  indices and the feature tables' rows for them (`tfrs_smoe.data.item_features`), as the
  sequence pipeline delivers them in `history`, `history_genres`, `history_year_bucket`;
  `ItemContent` gathers them from the tables it holds, for models that take item indices only.

  Extra categorical features (`data.item_features`, `ItemFeatureTables.categorical`): each gets
  an embedding of the content vector's full size (`output_dim`), added to the vector rather
  than concatenated, so that the model dimension (and its divisibility by the attention heads)
  does not depend on how many features a data set names; value 0 (unknown) embeds to zeros.
  Without them the layer is the concatenation alone, with the same weights in the same order.

  Args:
    num_items: item vocabulary size (reserved indices included).
    num_genres: genre ids + 1 (id 0 is "none").
    num_year_buckets: year buckets + 1 (bucket 0 is "unknown").
    item_dim: size of the item id embedding.
    genre_dim: size of the genre embedding; 0 leaves genres out.
    year_dim: size of the year embedding; 0 leaves years out.
    feature_sizes: extra categorical feature name -> its value ids + 1 (id 0 = unknown);
      None or {} = none. Names other than "item", "genres" and "year_bucket".

  Call args:
    inputs: dict with "item" [...] int, and "genres" [..., max_genres] int when genre_dim > 0,
      "year_bucket" [...] int when year_dim > 0, and one [...] int value id per name of
      feature_sizes.

  Returns:
    [..., item_dim + genre_dim + year_dim] float32, zeros where item == 0.

  Example:
    >>> embedding = ContentEmbedding(num_items=100, num_genres=19, num_year_buckets=30)
    >>> embedding({"item": tf.constant([[0, 5]]), "genres": tf.constant([[[0, 0], [3, 4]]]),
    ...            "year_bucket": tf.constant([[0, 7]])}).shape
    TensorShape([1, 2, 64])
  """

  def __init__(self, num_items: int, num_genres: int = 0, num_year_buckets: int = 0,
               item_dim: int = 48, genre_dim: int = 8, year_dim: int = 8,
               feature_sizes: Optional[Dict[str, int]] = None, **kwargs):
    super().__init__(**kwargs)
    if num_items < 2 or item_dim < 1 or genre_dim < 0 or year_dim < 0:
      raise ValueError("num_items must be >= 2, item_dim >= 1, genre_dim and year_dim >= 0.")
    if (genre_dim and num_genres < 1) or (year_dim and num_year_buckets < 1):
      raise ValueError("num_genres and num_year_buckets must be >= 1 when their dim is > 0.")
    self.num_items = num_items
    self.num_genres = num_genres
    self.num_year_buckets = num_year_buckets
    self.item_dim = item_dim
    self.genre_dim = genre_dim
    self.year_dim = year_dim
    self._item = tf.keras.layers.Embedding(num_items, item_dim, name="item")
    self._genre = (tf.keras.layers.Embedding(num_genres, genre_dim, name="genre")
                   if genre_dim else None)
    self._year = (tf.keras.layers.Embedding(num_year_buckets, year_dim, name="year")
                  if year_dim else None)
    self.feature_sizes = checked_sizes(feature_sizes, "feature_sizes")
    reserved = sorted(set(self.feature_sizes) & set(RESERVED_INPUTS))
    if reserved:
      raise ValueError(f"feature_sizes: {reserved} are the inputs of the id, genre and year "
                       "parts; name the feature otherwise.")
    # Created only when there are features: a layer without them has today's weights exactly.
    if self.feature_sizes:
      self._features = [tf.keras.layers.Embedding(size, self.output_dim, name=layer_name(name))
                        for name, size in self.feature_sizes.items()]

  @property
  def output_dim(self) -> int:
    return self.item_dim + self.genre_dim + self.year_dim

  def call(self, inputs):
    item = inputs["item"]
    parts = [self._item(item)]
    if self._genre is not None:
      genres = inputs["genres"]
      present = tf.cast(genres > 0, tf.float32)[..., tf.newaxis]
      genre_sum = tf.reduce_sum(self._genre(genres) * present, axis=-2)
      parts.append(genre_sum / tf.maximum(tf.reduce_sum(present, axis=-2), 1.0))
    if self._year is not None:
      year = inputs["year_bucket"]
      parts.append(self._year(year) * tf.cast(year > 0, tf.float32)[..., tf.newaxis])
    content = tf.concat(parts, axis=-1)
    for name, embedding in zip(self.feature_sizes, getattr(self, "_features", ())):
      value = inputs[name]
      content += embedding(value) * tf.cast(value > 0, content.dtype)[..., tf.newaxis]
    return content * tf.cast(item > 0, content.dtype)[..., tf.newaxis]

  def get_config(self):
    config = super().get_config()
    config.update({
        "num_items": self.num_items, "num_genres": self.num_genres,
        "num_year_buckets": self.num_year_buckets, "item_dim": self.item_dim,
        "genre_dim": self.genre_dim, "year_dim": self.year_dim,
        "feature_sizes": dict(self.feature_sizes),
    })
    return config
