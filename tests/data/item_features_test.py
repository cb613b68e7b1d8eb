"""Tests of item feature tables against a hand-built catalogue."""

import numpy as np
import pytest

from tfrs_smoe.data import item_features
from tfrs_smoe.data import schema
from tfrs_smoe.data import vocabulary


def _catalog():
  return schema.ItemCatalog(
      item_id=["m1", "m2", "m3"], title=["A", "B", "C"],
      genres=["Drama|Comedy|Horror", "", "Comedy"], year=[1990, 0, 2001],
      runtime_seconds=[0, 0, 0])


def test_tables_are_aligned_with_the_vocabulary():
  vocab = vocabulary.IdVocabulary(["m3", "m1", "m2"])  # Indices: m1 -> 2, m2 -> 3, m3 -> 4.
  tables = item_features.ItemFeatureTables.from_catalog(_catalog(), vocab, max_genres=2,
                                                        year_bucket_size=5)
  np.testing.assert_array_equal(tables.genre_vocabulary, ["Comedy", "Drama", "Horror"])
  # m1 keeps its first two genres (Drama = 2, Comedy = 1); m2 has none; m3 is Comedy.
  np.testing.assert_array_equal(tables.genres, [[0, 0], [0, 0], [2, 1], [0, 0], [1, 0]])
  # 1990 is the first year: bucket 1; 2001 is 11 years later: bucket 11 // 5 + 1 = 3.
  np.testing.assert_array_equal(tables.year_bucket, [0, 0, 1, 0, 3])
  assert tables.first_year == 1990
  assert set(tables.as_dict()) == {"genres", "year_bucket"}


def test_vocabulary_items_missing_from_the_catalogue_are_an_error():
  with pytest.raises(schema.DataError, match="not in the catalogue"):
    item_features.ItemFeatureTables.from_catalog(_catalog(), vocabulary.IdVocabulary(["m9"]))


def test_extra_categorical_item_features_get_tables_of_value_ids():
  catalog = _catalog()
  catalog = schema.ItemCatalog(item_id=catalog.item_id, title=catalog.title,
                               genres=catalog.genres, year=catalog.year,
                               runtime_seconds=catalog.runtime_seconds,
                               features={"studio": ["Neon", "", "A24"]})
  vocab = vocabulary.IdVocabulary(["m3", "m1", "m2"])
  tables = item_features.ItemFeatureTables.from_catalog(catalog, vocab)
  np.testing.assert_array_equal(tables.categorical_vocabularies["studio"], ["A24", "Neon"])
  # Reserved rows and the unknown value are 0; m1 = Neon (2), m2 unknown, m3 = A24 (1).
  np.testing.assert_array_equal(tables.categorical["studio"], [0, 0, 2, 0, 1])
  assert set(tables.as_dict()) == {"genres", "year_bucket"}  # What the models take, unchanged.


def test_a_feature_of_another_length_is_an_error():
  with pytest.raises(schema.DataError, match="feature 'studio' has 1 rows, expected 2"):
    schema.ItemCatalog(item_id=["a", "b"], title=["", ""], genres=["", ""], year=[0, 0],
                       runtime_seconds=[0, 0], features={"studio": ["x"]})
