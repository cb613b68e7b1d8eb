"""Item feature tables indexed by item vocabulary index, for pipelines and models.

Row i of every table describes the item with vocabulary index i; rows 0 (padding) and 1
(out-of-vocabulary) hold the "unknown" value 0, so gathering a padded history gives zeros there.
"""

import dataclasses
from typing import Dict

import numpy as np

from tfrs_smoe.data import schema
from tfrs_smoe.data import vocabulary as vocabulary_lib


@dataclasses.dataclass
class ItemFeatureTables:
  """Categorical item features aligned with an item vocabulary.

  Attributes:
    genres: [num_items, max_genres] int32 genre ids, 0 = none; id g >= 1 is
      genre_vocabulary[g - 1]. Items with more than max_genres genres keep the first ones.
    year_bucket: [num_items] int32, 0 = unknown year; bucket b >= 1 covers the years
      first_year + (b - 1) * year_bucket_size ... first_year + b * year_bucket_size - 1.
    genre_vocabulary: [num_genres] str genre names.
    first_year: the earliest known year of the catalogue.

  Example:
    >>> tables = ItemFeatureTables.from_catalog(split.items, split.item_vocabulary)
    >>> pipeline = SequencePipeline(item_features=tables.as_dict())
  """

  genres: np.ndarray
  year_bucket: np.ndarray
  genre_vocabulary: np.ndarray
  first_year: int

  @classmethod
  def from_catalog(cls, catalog: schema.ItemCatalog, vocabulary: vocabulary_lib.IdVocabulary,
                   max_genres: int = 4, year_bucket_size: int = 5) -> "ItemFeatureTables":
    """Builds the tables for every item of `vocabulary` from `catalog`.

    Args:
      catalog: item metadata; must hold every item of the vocabulary.
      vocabulary: the item vocabulary the tables are indexed by.
      max_genres: genre slots per item.
      year_bucket_size: years per year bucket.
    """
    if max_genres < 1 or year_bucket_size < 1:
      raise ValueError(f"max_genres and year_bucket_size must be >= 1, got {max_genres} and "
                       f"{year_bucket_size}.")
    row_of_id = {item_id: row for row, item_id in enumerate(catalog.item_id)}
    missing = [i for i in vocabulary.ids if i not in row_of_id]
    if missing:
      raise schema.DataError(f"{len(missing)} vocabulary item(s) are not in the catalogue, e.g. "
                             f"{missing[0]!r}.")
    rows = np.array([row_of_id[i] for i in vocabulary.ids], dtype=np.int64)
    genre_vocabulary = catalog.genre_vocabulary()
    genre_id = {name: g + 1 for g, name in enumerate(genre_vocabulary)}
    genres = np.zeros([vocabulary.size, max_genres], np.int32)
    for index, joined in enumerate(catalog.genres[rows], start=vocabulary_lib.NUM_RESERVED):
      ids = [genre_id[name] for name in joined.split("|") if name][:max_genres]
      genres[index, :len(ids)] = ids
    years = np.zeros([vocabulary.size], np.int64)
    years[vocabulary_lib.NUM_RESERVED:] = catalog.year[rows]
    known = years > 0
    first_year = int(years[known].min()) if known.any() else 0
    year_bucket = np.where(known, (years - first_year) // year_bucket_size + 1, 0)
    return cls(genres=genres, year_bucket=year_bucket.astype(np.int32),
               genre_vocabulary=genre_vocabulary, first_year=first_year)

  def as_dict(self) -> Dict[str, np.ndarray]:
    """The tables by feature name, for `SequencePipeline(item_features=...)`."""
    return {"genres": self.genres, "year_bucket": self.year_bucket}
