"""User feature tables indexed by user vocabulary index, for models that embed user features.

Row u of every table describes the user with vocabulary index u; rows 0 (padding) and 1
(out-of-vocabulary) and users without the feature hold the "unknown" value 0.
"""

import dataclasses
from typing import Dict, Optional

import numpy as np

from tfrs_smoe.data import item_features
from tfrs_smoe.data import schema
from tfrs_smoe.data import vocabulary as vocabulary_lib


@dataclasses.dataclass
class UserFeatureTables:
  """Categorical user features aligned with a user vocabulary.

  Every feature of the `UserTable` is categorical: numbers (e.g. MovieLens' ages) are taken as
  their text, each distinct value one id.

  Attributes:
    tables: feature name -> [num_users] int32 value ids, 0 = unknown; id v >= 1 is
      vocabularies[name][v - 1].
    vocabularies: feature name -> [num_values] str, the sorted distinct known values.

  Example:
    >>> users = schema.UserTable(user_id=np.array(["bob", "alice"]),
    ...                          features={"plan": np.array(["premium", "basic"])})
    >>> tables = UserFeatureTables.from_table(users, vocabulary_lib.IdVocabulary(
    ...     ["alice", "bob", "carol"]))
    >>> tables.tables["plan"]  # By user index: padding, OOV, alice, bob, carol (unknown).
    array([0, 0, 1, 2, 0], dtype=int32)
    >>> tables.vocabularies["plan"]
    array(['basic', 'premium'], dtype='<U7')
  """

  tables: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
  vocabularies: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

  @classmethod
  def from_table(cls, users: Optional[schema.UserTable],
                 vocabulary: vocabulary_lib.IdVocabulary) -> "UserFeatureTables":
    """Builds the tables for every user of `vocabulary` from `users`.

    Args:
      users: user features (None or empty: no tables); users of the vocabulary missing from
        it get the unknown value.
      vocabulary: the user vocabulary the tables are indexed by.
    """
    if users is None or not users.features:
      return cls()
    order = np.argsort(users.user_id, kind="stable")
    found = np.zeros(len(vocabulary.ids), bool)
    position = np.zeros(len(vocabulary.ids), np.int64)
    if len(order):
      position = np.minimum(np.searchsorted(users.user_id[order], vocabulary.ids),
                            len(order) - 1)
      found = users.user_id[order][position] == vocabulary.ids
    tables, vocabularies = {}, {}
    for name, column in users.features.items():
      values = np.full(len(vocabulary.ids), "", dtype=object)
      values[found] = np.asarray(column).astype(str)[order[position[found]]]
      tables[name], vocabularies[name] = item_features.categorical_table(
          values.astype(str), vocabulary.size)
    return cls(tables=tables, vocabularies=vocabularies)
