"""Item feature tables indexed by item vocabulary index, for pipelines and models.

Row i of every table describes the item with vocabulary index i; rows 0 (padding) and 1
(out-of-vocabulary) hold the "unknown" value 0, so gathering a padded history gives zeros there.
"""

import dataclasses
from typing import Dict, Tuple

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
    categorical: the catalogue's extra categorical features (`ItemCatalog.features`, from
      `data.item_features`) by name -> [num_items] int32 value ids, 0 = unknown; id v >= 1 is
      categorical_vocabularies[name][v - 1]. Not part of `as_dict()`.
    categorical_vocabularies: name -> [num_values] str, the sorted distinct known values.

  Example:
    >>> catalog = schema.ItemCatalog(
    ...     item_id=np.array(["m1", "m2"]), title=np.array(["Heat", "Up"]),
    ...     genres=np.array(["Action|Crime", "Animation"]), year=np.array([1995, 2009]),
    ...     runtime_seconds=np.array([10200.0, 5760.0]))
    >>> tables = ItemFeatureTables.from_catalog(catalog, vocabulary_lib.IdVocabulary(["m1", "m2"]))
    >>> tables.genre_vocabulary
    array(['Action', 'Animation', 'Crime'], dtype='<U9')
    >>> tables.genres  # Rows by item index: padding, OOV, m1, m2.
    array([[0, 0, 0, 0],
           [0, 0, 0, 0],
           [1, 3, 0, 0],
           [2, 0, 0, 0]], dtype=int32)
    >>> sorted(tables.as_dict())  # The tables `SequencePipeline(item_features=...)` gathers.
    ['genres', 'year_bucket']
  """

  genres: np.ndarray
  year_bucket: np.ndarray
  genre_vocabulary: np.ndarray
  first_year: int
  categorical: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
  categorical_vocabularies: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

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
    categorical, vocabularies = {}, {}
    for name, values in catalog.features.items():
      categorical[name], vocabularies[name] = categorical_table(values[rows], vocabulary.size)
    return cls(genres=genres, year_bucket=year_bucket.astype(np.int32),
               genre_vocabulary=genre_vocabulary, first_year=first_year,
               categorical=categorical, categorical_vocabularies=vocabularies)

  def as_dict(self) -> Dict[str, np.ndarray]:
    """The genre and year tables by feature name, for `SequencePipeline(item_features=...)`
    and the models; the extra categorical tables are in `categorical`."""
    return {"genres": self.genres, "year_bucket": self.year_bucket}


def categorical_table(values: np.ndarray, size: int) -> Tuple[np.ndarray, np.ndarray]:
  """Value ids of one categorical feature, laid out by vocabulary index.

  Args:
    values: [size - 2] str, the feature of the known ids in index order; "" is unknown.
    size: the vocabulary size (reserved indices included).

  Returns:
    (table [size] int32 with 0 at the reserved indices and for unknown values, vocabulary
    [num_values] str of the sorted distinct known values; id v >= 1 is vocabulary[v - 1]).
  """
  values = np.asarray(values).astype(str)
  known = np.unique(values[values != ""])
  table = np.zeros([size], np.int32)
  ids = np.searchsorted(known, values) + 1
  table[vocabulary_lib.NUM_RESERVED:] = np.where(values == "", 0, ids)
  return table, known
