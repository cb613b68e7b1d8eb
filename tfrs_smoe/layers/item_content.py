"""Item indices -> content vectors, from the catalogue's feature tables held as weights."""

from typing import Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

from tfrs_smoe.layers import content_embedding


def feature_tables(item_features: Dict[str, np.ndarray],
                   num_items: int) -> Tuple[np.ndarray, np.ndarray]:
  """The checked int32 tables `ItemContent` gathers `ContentEmbedding`'s feature inputs from.

  Args:
    item_features: "genres" [num_items, max_genres] and "year_bucket" [num_items] int, one row
      per item index (`ItemFeatureTables.as_dict()`).
    num_items: item vocabulary size, reserved indices included.

  Returns:
    (genres [num_items, max_genres], year_bucket [num_items]) as int32 arrays.

  Raises:
    ValueError: num_items < 2, or a table is missing, has another shape, or holds a negative
      id.
  """
  if num_items < 2:
    raise ValueError(f"num_items must be >= 2 (padding and out-of-vocabulary are reserved), "
                     f"got {num_items}.")
  missing = sorted({"genres", "year_bucket"} - set(item_features))
  if missing:
    raise ValueError(f"item_features lacks {missing}; it needs 'genres' [num_items, "
                     "max_genres] and 'year_bucket' [num_items] (ItemFeatureTables.as_dict()).")
  genres = np.asarray(item_features["genres"], np.int32)
  years = np.asarray(item_features["year_bucket"], np.int32)
  if genres.ndim != 2 or genres.shape[0] != num_items or genres.shape[1] < 1 or (
      years.shape != (num_items,)):
    raise ValueError(f"item feature tables must be genres [{num_items}, max_genres] and "
                     f"year_bucket [{num_items}], got {list(genres.shape)} and "
                     f"{list(years.shape)}.")
  if genres.min() < 0 or years.min() < 0:
    raise ValueError("genre ids and year buckets must be >= 0 (0 = none / unknown).")
  return genres, years


def categorical_tables(categorical: Optional[Dict[str, np.ndarray]], num_items: int
                       ) -> Dict[str, np.ndarray]:
  """The checked [num_items] int32 tables of extra categorical item features, sorted by name.

  Args:
    categorical: feature name -> [num_items] int value ids, 0 = unknown
      (`ItemFeatureTables.categorical`); None = none.
    num_items: item vocabulary size, reserved indices included.

  Raises:
    ValueError: a table has another shape or holds a negative id (naming the feature).
  """
  return content_embedding.checked_id_tables(categorical, num_items, "item feature")


@tf.keras.utils.register_keras_serializable(package="tfrs_smoe")
class ItemContent(tf.keras.layers.Layer):
  """Content vectors [..., dim] of item indices [...], gathering each item's features itself.

  Holds the catalogue's genre and year-bucket tables, and any extra categorical feature tables
  (`ItemFeatureTables.categorical`), as non-trainable int32 weights and feeds their rows, with
  the indices, to a `ContentEmbedding` (which adds one full-size embedding per extra feature to
  the content vector), so that a model, its checkpoints and its exports need item indices
  only. The tables are state, like an embedding's matrix: the
  config holds their shapes, and `from_config` makes zero tables that loading the weights (a
  checkpoint or SavedModel) fills. Build one from the tables with `from_tables`.

  Args:
    num_items: item vocabulary size (reserved indices included).
    max_genres: genre slots per item (the genres table's width).
    num_genres: genre ids + 1 (id 0 is "none").
    num_year_buckets: year buckets + 1 (bucket 0 is "unknown").
    item_dim, genre_dim, year_dim: sizes of the content vector's parts (`ContentEmbedding`).
    genres: [num_items, max_genres] initial genre table; None = zeros.
    year_buckets: [num_items] initial year-bucket table; None = zeros.
    feature_sizes: extra categorical feature name -> value ids + 1; None or {} = none.
    categorical: feature name -> [num_items] initial value-id table (0 = unknown), for the
      names of feature_sizes; a missing one is zeros.

  Call args:
    items: [...] int item indices.

  Returns:
    [..., item_dim + genre_dim + year_dim] float32, zeros where the item is 0 (padding).

  Example:
    >>> content = ItemContent.from_tables(
    ...     {"genres": [[0, 0], [0, 0], [1, 2]], "year_bucket": [0, 0, 3]}, num_items=3)
    >>> content(tf.constant([[0, 2]])).shape
    TensorShape([1, 2, 64])
  """

  def __init__(self, num_items: int, max_genres: int, num_genres: int, num_year_buckets: int,
               item_dim: int = 48, genre_dim: int = 8, year_dim: int = 8,
               genres: Optional[np.ndarray] = None, year_buckets: Optional[np.ndarray] = None,
               feature_sizes: Optional[Dict[str, int]] = None,
               categorical: Optional[Dict[str, np.ndarray]] = None, **kwargs):
    super().__init__(**kwargs)
    if max_genres < 1:
      raise ValueError(f"max_genres must be >= 1, got {max_genres}.")
    self.num_items = num_items
    self.max_genres = max_genres
    self.embedding = content_embedding.ContentEmbedding(
        num_items, num_genres, num_year_buckets, item_dim, genre_dim, year_dim,
        feature_sizes=feature_sizes, name="embedding")
    self.genres = self._table("genres", [num_items, max_genres], genres)
    self.year_buckets = self._table("year_bucket", [num_items], year_buckets)
    categorical = dict(categorical or {})
    unknown = sorted(set(categorical) - set(self.embedding.feature_sizes))
    if unknown:
      raise ValueError(f"categorical tables {unknown} have no entry in feature_sizes "
                       f"{dict(self.embedding.feature_sizes)}.")
    # Made only when there are features: without them the layer's weights are today's.
    if self.embedding.feature_sizes:
      self.categorical = {
          name: self._table(content_embedding.layer_name(name), [num_items],
                            categorical.get(name))
          for name in self.embedding.feature_sizes}

  @classmethod
  def from_tables(cls, item_features: Dict[str, np.ndarray], num_items: int,
                  item_dim: int = 48, genre_dim: int = 8, year_dim: int = 8,
                  categorical: Optional[Dict[str, np.ndarray]] = None,
                  **kwargs) -> "ItemContent":
    """An `ItemContent` over checked tables (`feature_tables`, `categorical_tables`), sized to
    their largest ids.

    Args:
      item_features: the genre and year tables (`ItemFeatureTables.as_dict()`).
      num_items: item vocabulary size.
      item_dim, genre_dim, year_dim: sizes of the content vector's parts.
      categorical: extra categorical feature name -> [num_items] value ids
        (`ItemFeatureTables.categorical`); None = none.
    """
    genres, years = feature_tables(item_features, num_items)
    tables = categorical_tables(categorical, num_items)
    sizes = {name: int(table.max(initial=0)) + 1 for name, table in tables.items()}
    return cls(num_items, genres.shape[1], int(genres.max()) + 1, int(years.max()) + 1,
               item_dim, genre_dim, year_dim, genres=genres, year_buckets=years,
               feature_sizes=sizes, categorical=tables, **kwargs)

  @staticmethod
  def _table(name, shape, values):
    # A variable made from its value: under a variable partitioner (parameter-server training)
    # TensorFlow splits that value into shards, where an initializer would have to make each
    # shard from the whole table.
    if values is not None and tuple(np.shape(values)) != tuple(shape):
      raise ValueError(f"{name} table must have shape {shape}, got {list(np.shape(values))}.")
    values = np.zeros(shape, np.int32) if values is None else np.asarray(values, np.int32)
    return tf.Variable(values, trainable=False, name=name)

  @property
  def output_dim(self) -> int:
    return self.embedding.output_dim

  def call(self, items):
    items = tf.cast(items, tf.int32)
    inputs = {"item": items,
              "genres": tf.nn.embedding_lookup(self.genres, items),
              "year_bucket": tf.nn.embedding_lookup(self.year_buckets, items)}
    for name, table in getattr(self, "categorical", {}).items():
      inputs[name] = tf.nn.embedding_lookup(table, items)
    return self.embedding(inputs)

  def get_config(self):
    config = super().get_config()
    embedding = self.embedding
    config.update({
        "num_items": self.num_items, "max_genres": self.max_genres,
        "num_genres": embedding.num_genres, "num_year_buckets": embedding.num_year_buckets,
        "item_dim": embedding.item_dim, "genre_dim": embedding.genre_dim,
        "year_dim": embedding.year_dim, "feature_sizes": dict(embedding.feature_sizes),
    })
    return config
