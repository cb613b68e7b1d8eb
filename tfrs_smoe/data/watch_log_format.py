"""How to read a user's watch-log folder: column mapping, genre separator, extra features.

Kept apart from the reader (`tfrs_smoe.data.watch_log_files`) so that the config can check these
settings without importing pyarrow.
"""

import dataclasses
from typing import Dict, Sequence, Tuple

from tfrs_smoe.data import schema


@dataclasses.dataclass(frozen=True)
class WatchLogFormat:
  """How to read a watch-log folder.

  Attributes:
    columns: default column name (`schema.FILE_COLUMNS`) -> the files' name for it.
    genre_separator: splits a text genres column into genres.
    item_features: extra categorical columns of the items file to carry (ItemCatalog.features).
    user_features: categorical columns of the users file to carry (UserTable.features).
    skip_bad_lines: skip and count bad rows instead of raising at the first.
  """

  columns: Dict[str, str] = dataclasses.field(default_factory=dict)
  genre_separator: str = "|"
  item_features: Tuple[str, ...] = ()
  user_features: Tuple[str, ...] = ()
  skip_bad_lines: bool = False

  def __post_init__(self):
    check_format(self.columns, self.genre_separator, self.item_features, self.user_features)

  def column(self, name: str) -> str:
    """The files' name of default column `name`."""
    return self.columns.get(name, name)


def check_format(columns: Dict[str, str], genre_separator: str, item_features: Sequence[str],
                 user_features: Sequence[str], prefix: str = "") -> None:
  """Raises ValueError, naming the key (`prefix` + name), for an invalid reading format."""
  known = sorted({name for names in schema.FILE_COLUMNS.values() for name in names})
  for key, value in columns.items():
    if key not in known:
      raise ValueError(f"{prefix}columns: unknown column {key!r}; the mapped names are "
                       f"{', '.join(known)}.")
    if not isinstance(value, str) or not value:
      raise ValueError(f"{prefix}columns.{key}: expected a column name, got {value!r}.")
  if not genre_separator:
    raise ValueError(f"{prefix}genre_separator must not be empty.")
  for key, names in (("item_features", item_features), ("user_features", user_features)):
    if len(set(names)) != len(names) or any(not name for name in names):
      raise ValueError(f"{prefix}{key}: expected distinct column names, got {list(names)}.")
  standard = {columns.get(n, n) for n in schema.FILE_COLUMNS["items"]}
  clash = sorted(standard & set(item_features))
  if clash:
    raise ValueError(f"{prefix}item_features: {clash} are standard item columns, read already.")
  if columns.get("user_id", "user_id") in user_features:
    raise ValueError(f"{prefix}user_features: the user id column is not a feature.")
