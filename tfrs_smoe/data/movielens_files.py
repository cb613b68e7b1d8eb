"""Parsers for the three public MovieLens file formats, read from a local directory.

The formats (GroupLens, https://grouplens.org/datasets/movielens/) and the files each needs:

  "100k"          u.data   user<TAB>item<TAB>rating<TAB>timestamp
                  u.item   item|title|release date|video release date|IMDb URL|19 genre flags
                  u.genre  optional, genre|index: the names of the flag columns (else the
                           standard 19)
                  u.user   optional, user|age|gender|occupation|zip
  "1m"            ratings.dat  UserID::MovieID::Rating::Timestamp
                  movies.dat   MovieID::Title::Genres (genres joined by "|")
                  users.dat    UserID::Gender::Age::Occupation::Zip-code (age and occupation are
                               the numeric codes of the data set's README)
  "latest-small"  ratings.csv  userId,movieId,rating,timestamp (header row)
                  movies.csv   movieId,title,genres (header row, CSV quoting)

The "100k" and "1m" files are read as UTF-8 when the whole file decodes as UTF-8 (a copy
re-saved by a text editor) and as latin-1 otherwise (as GroupLens ships them); the
"latest-small" files are UTF-8.

Ratings are 1..5 in whole stars for "100k" and "1m", 0.5..5 in half stars for "latest-small".
`read_movielens` returns one row per rating in the record layout of `tfrs_smoe.data.records`,
with the item (and user) metadata denormalised into each row:

  user_id, item_id        [n] str, the raw numeric ids
  timestamp               [n] int64, seconds since the epoch
  rating                  [n] float32
  engagement              [n] float32, rating / MAX_RATING (the engagement proxy)
  item_title              [n] str, e.g. "Toy Story (1995)"
  item_genres             [n] str, joined by "|"; "" when none ("(no genres listed)" and the 100k
                          genre "unknown" mean none)
  item_year               [n] int32, from the "(1995)" suffix of the title, 0 when absent
  item_runtime_seconds    [n] float32, all 0 (MovieLens has no runtimes)
  user_age                [n] int32           } only with a user file
  user_gender, user_occupation, user_zip  [n] str  }

Bad input: a missing file raises `schema.DataError` naming the file, the directory and the
format, and so does an item or user file that lists nothing (empty, or a header only). A
malformed line (wrong field count, non-numeric id, timestamp or rating, a timestamp beyond int64
or an age beyond int32, a rating that is NaN or off the format's scale, a duplicate id, a rating
of an item missing from the item file or of a user missing from the user file, undecodable
bytes) raises `schema.DataError` naming `file:line` and showing the line. With
`skip_bad_lines=True` such lines are skipped instead, counted per file, logged as a warning with
the first few `file:line` examples, and returned in `ParseResult.skipped`. Empty lines carry no
data and are ignored. A csv header that differs from the expected one always raises: it means
the file is not in the format at all.

A rating row that repeats the (user, item, timestamp) of an earlier one is always dropped (the
first is kept, whatever the ratings), counted in `ParseResult.duplicate_rows` and reported in a
warning, as the watch_log reader does (`watch_log_files`): counted twice, a repeated rating
would be a training positive and the held-out target at once.
"""

import dataclasses
import hashlib
import os
import re
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple, Union

from absl import logging
import numpy as np

from tfrs_smoe.data import line_parsing
from tfrs_smoe.data import schema

MAX_RATING = 5.0
# The engagement proxy calls a rating <= 2 stars an abandonment (engagement <= 2 / 5 = 0.4):
# the user started the title and did not like it enough to count as a positive. Builders and
# loaders take it as an overridable argument.
DEFAULT_ABANDONMENT_RATING = 2.0

# Format name -> the files it needs, ratings first.
FORMATS: Dict[str, Tuple[str, ...]] = {
    "100k": ("u.data", "u.item"),
    "1m": ("ratings.dat", "movies.dat", "users.dat"),
    "latest-small": ("ratings.csv", "movies.csv"),
}
# Format name -> files read when present.
OPTIONAL_FILES: Dict[str, Tuple[str, ...]] = {
    "100k": ("u.genre", "u.user"),
    "1m": (),
    "latest-small": (),
}
# The user features of the user files, in the order of `_User`.
USER_FIELDS = ("age", "gender", "occupation", "zip")

# The flag columns of u.item when there is no u.genre (the order of the ml-100k README).
_STANDARD_100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western")
# Genre names that mean "no genre": the 100k flag "unknown" and the csv marker.
_NO_GENRE = frozenset({"unknown", "(no genres listed)"})
_YEAR_SUFFIX = re.compile(r"\((\d{4})\)\s*$")
# The encodings of the "100k" and "1m" files, in order of preference (see the module docstring).
_LEGACY_ENCODINGS = ("utf-8", "latin-1")


@dataclasses.dataclass(frozen=True)
class _Scale:
  """The rating scale of a format: low, low + step, ..., MAX_RATING."""
  low: float
  step: float


_SCALES = {"100k": _Scale(1.0, 1.0), "1m": _Scale(1.0, 1.0), "latest-small": _Scale(0.5, 0.5)}


@dataclasses.dataclass
class ParseResult:
  """What `read_movielens` read.

  Attributes:
    columns: record field name -> [num_ratings] array (see the module docstring).
    skipped: file name (e.g. "u.data") -> number of malformed lines skipped, for every file
      read; all 0 unless `skip_bad_lines=True`.
    duplicate_rows: rating rows dropped because an earlier row has the same user, item and
      timestamp.
  """

  columns: Dict[str, np.ndarray]
  skipped: Dict[str, int]
  duplicate_rows: int = 0


@dataclasses.dataclass(frozen=True)
class _Item:
  title: str
  genres: str
  year: int


@dataclasses.dataclass(frozen=True)
class _User:
  age: int
  gender: str
  occupation: str
  zip: str


def _parse_rating(text: str, scale: _Scale) -> float:
  try:
    rating = float(text)
  except ValueError as error:
    raise line_parsing.BadLine(f"rating {text!r} is not a number") from error
  if not (scale.low <= rating <= MAX_RATING and (rating / scale.step).is_integer()):
    # NaN fails every comparison and lands here too.
    raise line_parsing.BadLine(f"rating {text!r} is not one of {scale.low:g}, "
                               f"{scale.low + scale.step:g}, ..., {MAX_RATING:g}")
  return rating


def _year_of(title: str) -> int:
  match = _YEAR_SUFFIX.search(title)
  return int(match.group(1)) if match else 0


def _join_genres(names: Sequence[str]) -> str:
  return "|".join(name for name in names if name and name not in _NO_GENRE)


class _Reader:
  """Reads the files of one format into items, users and ratings."""

  def __init__(self, directory: str, format_name: str, skip_bad_lines: bool):
    self.directory = directory
    self.skip_bad_lines = skip_bad_lines
    self.scale = _SCALES[format_name]
    self.bad_lines: Dict[str, line_parsing.BadLines] = {}
    self.items: Dict[str, _Item] = {}
    self.users: Optional[Dict[str, _User]] = None
    # Rows of (user id, item id, timestamp, rating), in file order, without duplicates.
    self.ratings: List[Tuple[str, str, int, float]] = []
    # The (user id, item id, timestamp) of the rows so far, and the first one seen again.
    self.rating_keys: Set[Tuple[str, str, int]] = set()
    self.duplicate_rows = 0
    self.first_duplicate: Optional[Tuple[str, str, int]] = None

  def path(self, name: str) -> str:
    return os.path.join(self.directory, name)

  def parse(self, name: str, encoding: Union[str, Tuple[str, ...]],
            split: Callable[[str], List[str]], num_fields: int,
            parse_fields: Callable[[List[str]], None],
            header: Optional[Sequence[str]] = None) -> None:
    """Parses the file `name`; `encoding` may be candidates (`line_parsing.file_encoding`)."""
    if not isinstance(encoding, str):
      encoding = line_parsing.file_encoding(self.path(name), encoding)
    bad_lines = line_parsing.BadLines(self.path(name), self.skip_bad_lines)
    self.bad_lines[name] = bad_lines
    line_parsing.parse_lines(self.path(name), encoding, split, num_fields, parse_fields,
                             bad_lines, header)

  def require_rows(self, name: str, count: int, kind: str, what: str) -> None:
    """Raises a DataError when the file `name` (the `kind` file, listing `what`) gave no rows,
    so that a rating is never blamed for an item or user file that lists nothing."""
    if count:
      return
    bad_lines = self.bad_lines[name]
    if bad_lines.count:
      raise schema.DataError(
          f"{bad_lines.path}: no {what} were read from the {kind} file: its {bad_lines.count} "
          f"line(s) are all malformed and were skipped, e.g. {bad_lines.examples[0]}")
    raise schema.DataError(f"{bad_lines.path}: the {kind} file is empty: it lists no {what}.")

  def add_item(self, item_id: str, title: str, genres: str) -> None:
    if item_id in self.items:
      raise line_parsing.BadLine(f"movie id {item_id} is listed twice")
    title = title.strip()
    self.items[item_id] = _Item(title=title, genres=genres, year=_year_of(title))

  def add_user(self, user_id: str, user: _User) -> None:
    if user_id in self.users:
      raise line_parsing.BadLine(f"user id {user_id} is listed twice")
    self.users[user_id] = user

  def add_rating(self, fields: List[str]) -> None:
    user_id = line_parsing.parse_id(fields[0], "user id")
    item_id = line_parsing.parse_id(fields[1], "movie id")
    rating = _parse_rating(fields[2], self.scale)
    timestamp = line_parsing.parse_count(fields[3], "timestamp", line_parsing.INT64_MAX)
    if item_id not in self.items:
      raise line_parsing.BadLine(f"movie id {item_id} is not in the item file")
    if self.users is not None and user_id not in self.users:
      raise line_parsing.BadLine(f"user id {user_id} is not in the user file")
    key = (user_id, item_id, timestamp)
    if key in self.rating_keys:
      self.duplicate_rows += 1
      self.first_duplicate = self.first_duplicate or key
      return
    self.rating_keys.add(key)
    self.ratings.append((user_id, item_id, timestamp, rating))

  def parse_user(self, user_id: str, age: str, gender: str, occupation: str,
                 zip_code: str) -> None:
    self.add_user(line_parsing.parse_id(user_id, "user id"), _User(
        age=line_parsing.parse_count(age, "age", line_parsing.INT32_MAX), gender=gender,
        occupation=occupation, zip=zip_code))

  def read_100k(self) -> None:
    genres = _STANDARD_100K_GENRES
    if os.path.exists(self.path("u.genre")):
      genres = self.read_100k_genres()

    def parse_item(fields):
      flags = fields[5:]
      if any(flag not in ("0", "1") for flag in flags):
        raise line_parsing.BadLine("genre flags must be 0 or 1")
      self.add_item(line_parsing.parse_id(fields[0], "movie id"), fields[1],
                    _join_genres([g for g, flag in zip(genres, flags) if flag == "1"]))

    self.parse("u.item", _LEGACY_ENCODINGS, lambda line: line.split("|"), 5 + len(genres),
               parse_item)
    self.require_rows("u.item", len(self.items), "item", "movies")
    if os.path.exists(self.path("u.user")):
      self.users = {}
      self.parse("u.user", _LEGACY_ENCODINGS, lambda line: line.split("|"), 5,
                 lambda f: self.parse_user(f[0], f[1], f[2], f[3], f[4]))
      self.require_rows("u.user", len(self.users), "user", "users")
    self.parse("u.data", _LEGACY_ENCODINGS, lambda line: line.split("\t"), 4, self.add_rating)

  def read_100k_genres(self) -> Tuple[str, ...]:
    names: List[str] = []

    def parse_genre(fields):
      index = line_parsing.parse_count(fields[1], "genre index")
      if index != len(names):
        raise line_parsing.BadLine(f"genre index {index} is out of order, expected {len(names)}")
      names.append(fields[0])

    self.parse("u.genre", _LEGACY_ENCODINGS, lambda line: line.split("|"), 2, parse_genre)
    if not names:
      raise schema.DataError(f"{self.path('u.genre')}: lists no genres.")
    return tuple(names)

  def read_1m(self) -> None:
    split = lambda line: line.split("::")
    self.parse("movies.dat", _LEGACY_ENCODINGS, split, 3, lambda f: self.add_item(
        line_parsing.parse_id(f[0], "movie id"), f[1], _join_genres(f[2].split("|"))))
    self.require_rows("movies.dat", len(self.items), "item", "movies")
    self.users = {}
    self.parse("users.dat", _LEGACY_ENCODINGS, split, 5,
               lambda f: self.parse_user(f[0], f[2], f[1], f[3], f[4]))
    self.require_rows("users.dat", len(self.users), "user", "users")
    self.parse("ratings.dat", _LEGACY_ENCODINGS, split, 4, self.add_rating)

  def read_latest_small(self) -> None:
    self.parse("movies.csv", "utf-8", line_parsing.split_csv, 3, lambda f: self.add_item(
        line_parsing.parse_id(f[0], "movie id"), f[1], _join_genres(f[2].split("|"))),
               header=("movieId", "title", "genres"))
    self.require_rows("movies.csv", len(self.items), "item", "movies")
    self.parse("ratings.csv", "utf-8", line_parsing.split_csv, 4, self.add_rating,
               header=("userId", "movieId", "rating", "timestamp"))

  def columns(self) -> Dict[str, np.ndarray]:
    user_ids, item_ids, timestamps, ratings = zip(*self.ratings)
    rating = np.array(ratings, dtype=np.float64)
    items = [self.items[item_id] for item_id in item_ids]
    columns = {
        "user_id": np.array(user_ids, dtype=str),
        "item_id": np.array(item_ids, dtype=str),
        "timestamp": np.array(timestamps, dtype=np.int64),
        "rating": rating.astype(np.float32),
        "engagement": (rating / MAX_RATING).astype(np.float32),
        "item_title": np.array([item.title for item in items], dtype=str),
        "item_genres": np.array([item.genres for item in items], dtype=str),
        "item_year": np.array([item.year for item in items], dtype=np.int32),
        "item_runtime_seconds": np.zeros([len(items)], dtype=np.float32),
    }
    if self.users is not None:
      users = [self.users[user_id] for user_id in user_ids]
      columns["user_age"] = np.array([user.age for user in users], dtype=np.int32)
      for name in USER_FIELDS[1:]:
        columns[f"user_{name}"] = np.array([getattr(user, name) for user in users], dtype=str)
    return columns


def _check_format(format_name: str) -> None:
  if format_name not in FORMATS:
    raise ValueError(f"Unknown MovieLens format {format_name!r}; choose from {sorted(FORMATS)}.")


def _check_files(directory: str, format_name: str) -> None:
  missing = [name for name in FORMATS[format_name]
             if not os.path.isfile(os.path.join(directory, name))]
  if missing:
    raise schema.DataError(
        f"MovieLens {format_name!r} files missing from {directory}: {', '.join(missing)} "
        f"(the format needs {', '.join(FORMATS[format_name])}).")


def read_movielens(directory: str, format: str,  # pylint: disable=redefined-builtin
                   skip_bad_lines: bool = False) -> ParseResult:
  """Reads one MovieLens data set from the files in `directory`.

  Args:
    directory: the folder holding the format's files (see `FORMATS` and `OPTIONAL_FILES`).
    format: "100k", "1m" or "latest-small".
    skip_bad_lines: skip, count and report malformed lines instead of raising.

  Returns:
    The record columns, one row per rating in file order (without duplicate rows), the
    skipped line counts and the number of duplicate rows dropped.

  Raises:
    ValueError: `format` is not one of `FORMATS`.
    schema.DataError: a file is missing, a line is malformed (unless skipped), or no rating
      is left.

  Example (tiny files in the latest-small format):
    >>> os.makedirs("ml-latest-small", exist_ok=True)
    >>> with open("ml-latest-small/movies.csv", "w", encoding="utf-8") as f:
    ...   _ = f.write("movieId,title,genres\\n1,Toy Story (1995),Adventure|Animation\\n")
    >>> with open("ml-latest-small/ratings.csv", "w", encoding="utf-8") as f:
    ...   _ = f.write("userId,movieId,rating,timestamp\\n1,1,5.0,964982703\\n2,1,2.5,964983000\\n")
    >>> result = read_movielens("ml-latest-small", "latest-small")
    >>> result.skipped
    {'movies.csv': 0, 'ratings.csv': 0}
    >>> float(result.columns["engagement"].max())  # A 5-star rating.
    1.0
  """
  _check_format(format)
  directory = os.fspath(directory)
  _check_files(directory, format)
  reader = _Reader(directory, format, skip_bad_lines)
  {"100k": reader.read_100k, "1m": reader.read_1m,
   "latest-small": reader.read_latest_small}[format]()
  for bad_lines in reader.bad_lines.values():
    if bad_lines.count:
      logging.warning("Skipped %d malformed line(s) of %s, e.g. %s", bad_lines.count,
                      bad_lines.path, " | ".join(bad_lines.examples))
  skipped = {name: bad_lines.count for name, bad_lines in reader.bad_lines.items()}
  ratings_path = reader.path(FORMATS[format][0])
  if not reader.ratings:
    if not skipped[FORMATS[format][0]]:
      raise schema.DataError(f"{ratings_path}: the ratings file is empty: it holds no ratings.")
    raise schema.DataError(f"{ratings_path}: no ratings were read "
                           f"(skipped lines per file: {skipped}).")
  if reader.duplicate_rows:
    user_id, item_id, timestamp = reader.first_duplicate
    logging.warning("%s: dropped %d duplicate (user, item, timestamp) rating row(s), keeping the "
                    "first of each, e.g. user %s, movie %s at %d.", ratings_path,
                    reader.duplicate_rows, user_id, item_id, timestamp)
  return ParseResult(columns=reader.columns(), skipped=skipped,
                     duplicate_rows=reader.duplicate_rows)


def detect_format(directory: str) -> str:
  """The MovieLens format whose files are in `directory`.

  Args:
    directory: a folder with the files of one format.

  Returns:
    The format name, a key of `FORMATS`.

  Raises:
    schema.DataError: the folder does not exist, holds no format's files, or holds the files
      of several formats.

  Example:
    >>> os.makedirs("ml-100k", exist_ok=True)
    >>> for name in ("u.data", "u.item", "u.user"):  # Only the names matter here.
    ...   open(os.path.join("ml-100k", name), "w").close()
    >>> detect_format("ml-100k")
    '100k'
  """
  directory = os.fspath(directory)
  if not os.path.isdir(directory):
    raise schema.DataError(f"{directory} is not a directory.")
  present = set(os.listdir(directory))
  matches = [name for name, files in FORMATS.items() if present.issuperset(files)]
  if len(matches) > 1:
    raise schema.DataError(f"{directory} holds the files of several MovieLens formats "
                           f"({', '.join(matches)}); name the format explicitly.")
  if not matches:
    expected = "; ".join(f"{name}: {', '.join(files)}" for name, files in FORMATS.items())
    shown = sorted(present)[:10]
    raise schema.DataError(f"{directory} holds the files of no MovieLens format (expected "
                           f"{expected}). It holds {shown}{' ...' if len(present) > 10 else ''}.")
  return matches[0]


def source_fingerprint(directory: str,
                       format: str) -> Dict[str, str]:  # pylint: disable=redefined-builtin
  """The SHA-256 of each of the format's files present in `directory`.

  Builders store it with prepared data so that data prepared from other files is not reused.

  Args:
    directory: the folder holding the format's files.
    format: a key of `FORMATS`.

  Returns:
    File name -> hex digest, for the required files and the optional ones present.

  Raises:
    ValueError: `format` is not one of `FORMATS`.
    schema.DataError: a required file is missing.

  Example:
    >>> os.makedirs("ml-latest-small", exist_ok=True)
    >>> for name in ("ratings.csv", "movies.csv"):  # Any content: only digested here.
    ...   with open(os.path.join("ml-latest-small", name), "w", encoding="utf-8") as f:
    ...     _ = f.write(name)
    >>> sorted(source_fingerprint("ml-latest-small", "latest-small"))
    ['movies.csv', 'ratings.csv']
  """
  _check_format(format)
  directory = os.fspath(directory)
  _check_files(directory, format)
  digests = {}
  for name in FORMATS[format] + OPTIONAL_FILES[format]:
    path = os.path.join(directory, name)
    if os.path.isfile(path):
      sha = hashlib.sha256()
      with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
          sha.update(block)
      digests[name] = sha.hexdigest()
  return digests
