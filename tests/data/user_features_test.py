"""Tests of user feature tables against a hand-built user table."""

import numpy as np

from tfrs_smoe.data import schema
from tfrs_smoe.data import user_features
from tfrs_smoe.data import vocabulary


def test_tables_are_aligned_with_the_user_vocabulary():
  users = schema.UserTable(user_id=["u3", "u1"],
                           features={"plan": np.array(["basic", "premium"]),
                                     "age": np.array([24, 53])})
  vocab = vocabulary.IdVocabulary(["u1", "u2", "u3"])  # u1 -> 2, u2 -> 3, u3 -> 4.
  tables = user_features.UserFeatureTables.from_table(users, vocab)
  np.testing.assert_array_equal(tables.vocabularies["plan"], ["basic", "premium"])
  # u2 is not in the table: unknown (0), like the reserved rows.
  np.testing.assert_array_equal(tables.tables["plan"], [0, 0, 2, 0, 1])
  np.testing.assert_array_equal(tables.vocabularies["age"], ["24", "53"])  # Numbers as text.
  np.testing.assert_array_equal(tables.tables["age"], [0, 0, 2, 0, 1])


def test_no_user_table_gives_no_tables():
  vocab = vocabulary.IdVocabulary(["u1"])
  assert not user_features.UserFeatureTables.from_table(None, vocab).tables
  empty = schema.UserTable(user_id=["u1"], features={})
  assert not user_features.UserFeatureTables.from_table(empty, vocab).tables
