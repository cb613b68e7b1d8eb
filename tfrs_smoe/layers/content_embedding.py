"""Item content vectors: item id embedding concatenated with item feature embeddings."""

import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="tfrs_smoe")
class ContentEmbedding(tf.keras.layers.Layer):
  """[e_id(i); mean_g e_genre(g); e_year(y)] for item i with genres g and year bucket y.

  Index 0 is padding everywhere (item 0, genre 0, year bucket 0 = unknown): padding items embed
  to zeros, and genre slots holding 0 take no part in the genre mean. The inputs are the item
  indices and the feature tables' rows for them (`tfrs_smoe.data.item_features`), as the
  sequence pipeline delivers them in `history`, `history_genres`, `history_year_bucket`;
  `ItemContent` gathers them from the tables it holds, for models that take item indices only.

  Args:
    num_items: item vocabulary size (reserved indices included).
    num_genres: genre ids + 1 (id 0 is "none").
    num_year_buckets: year buckets + 1 (bucket 0 is "unknown").
    item_dim: size of the item id embedding.
    genre_dim: size of the genre embedding; 0 leaves genres out.
    year_dim: size of the year embedding; 0 leaves years out.

  Call args:
    inputs: dict with "item" [...] int, and "genres" [..., max_genres] int when genre_dim > 0,
      "year_bucket" [...] int when year_dim > 0.

  Returns:
    [..., item_dim + genre_dim + year_dim] float32, zeros where item == 0.

  Example:
    >>> embedding = ContentEmbedding(num_items=100, num_genres=19, num_year_buckets=30)
    >>> embedding({"item": tf.constant([[0, 5]]), "genres": tf.constant([[[0, 0], [3, 4]]]),
    ...            "year_bucket": tf.constant([[0, 7]])}).shape
    TensorShape([1, 2, 64])
  """

  def __init__(self, num_items: int, num_genres: int = 0, num_year_buckets: int = 0,
               item_dim: int = 48, genre_dim: int = 8, year_dim: int = 8, **kwargs):
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
    return content * tf.cast(item > 0, content.dtype)[..., tf.newaxis]

  def get_config(self):
    config = super().get_config()
    config.update({
        "num_items": self.num_items, "num_genres": self.num_genres,
        "num_year_buckets": self.num_year_buckets, "item_dim": self.item_dim,
        "genre_dim": self.genre_dim, "year_dim": self.year_dim,
    })
    return config
