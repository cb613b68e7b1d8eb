"""Line-by-line parsing of delimited text files, with accounting for malformed lines.

`parse_lines` reads a file one line at a time, splits each line into fields and hands them to a
callback that raises `BadLine` when they are malformed. A `BadLines` collects those lines: it
raises `schema.DataError` at the first one, naming `file:line` and showing the line, or, when
skipping, counts them and keeps the first few as examples for a warning. The field parsers raise
`BadLine` with a message naming the field. `file_encoding` picks a file's encoding among
candidates (UTF-8, else latin-1) before it is parsed.
"""

import codecs
import csv
from typing import Callable, List, Optional, Sequence, Union

from tfrs_smoe.data import schema

# How many skipped lines per file the warning quotes.
_NUM_EXAMPLES = 3
# The largest values of the integer columns that parsed counts go into.
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
_BLOCK_BYTES = 1 << 20


class BadLine(Exception):
  """A line does not parse; the message says why."""


class BadLines:
  """Raises at the first malformed line of one file, or counts them when skipping.

  Attributes:
    path: the file.
    skip: count malformed lines instead of raising.
    count: the number of malformed lines counted so far.
    examples: up to `_NUM_EXAMPLES` of them, as "file:line: reason: line".
  """

  def __init__(self, path: str, skip: bool):
    self.path = path
    self.skip = skip
    self.count = 0
    self.examples: List[str] = []

  def add(self, number: int, line: Union[str, bytes], reason: str) -> None:
    """Records a malformed line.

    Args:
      number: its 1-based line number.
      line: its text, or its raw bytes when it does not decode.
      reason: why it is malformed.

    Raises:
      schema.DataError: unless skipping.
    """
    where = f"{self.path}:{number}"
    if not self.skip:
      raise schema.DataError(f"{where}: {reason}. The line: {line!r}")
    self.count += 1
    if len(self.examples) < _NUM_EXAMPLES:
      self.examples.append(f"{where}: {reason}: {line!r}")


def file_encoding(path: str, encodings: Sequence[str]) -> str:
  """The first of `encodings` that decodes the whole of `path`.

  A whole file, not line by line, so that one file is never read in two encodings.

  Args:
    path: the file.
    encodings: candidate text encodings, in order of preference, e.g. ("utf-8", "latin-1").

  Returns:
    The first candidate that decodes every byte of the file, or the last candidate when none
    does (its undecodable lines are then malformed lines of `parse_lines`).

  Example (ml-1m/movies.dat, as GroupLens ships it, is Latin-1):
    >>> with open("movies.dat", "wb") as f:
    ...   _ = f.write("1::Am\\xe9lie (2001)::Comedy|Romance\\n".encode("latin-1"))
    >>> file_encoding("movies.dat", ("utf-8", "latin-1"))
    'latin-1'
  """
  for encoding in encodings[:-1]:
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
      with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK_BYTES), b""):
          decoder.decode(block)
      decoder.decode(b"", final=True)
    except UnicodeDecodeError:
      continue
    return encoding
  return encodings[-1]


def parse_lines(path: str, encoding: str, split: Callable[[str], List[str]],
                num_fields: int, parse_fields: Callable[[List[str]], None],
                bad_lines: BadLines, header: Optional[Sequence[str]] = None) -> None:
  """Splits each line of `path` into fields and hands them to `parse_fields`.

  Args:
    path: the file.
    encoding: its text encoding.
    split: line -> fields.
    num_fields: the number of fields a line must have.
    parse_fields: stores a line's values; raises `BadLine` (before storing anything) when they
      are malformed.
    bad_lines: where malformed lines go.
    header: the fields the first line must have, for files with a header row.

  Raises:
    schema.DataError: the header differs from `header`, or a line is malformed and `bad_lines`
      does not skip.
  """
  with open(path, "rb") as f:
    for number, raw in enumerate(f, start=1):
      raw = raw.rstrip(b"\r\n")
      if number == 1:
        # Tolerate a byte order mark, as spreadsheet programs write one.
        raw = raw.removeprefix(codecs.BOM_UTF8)
      try:
        # Decoding line by line keeps an undecodable byte a malformed line like any other.
        line = raw.decode(encoding)
      except UnicodeDecodeError as error:
        bad_lines.add(number, raw, f"not valid {encoding} ({error.reason})")
        continue
      if number == 1 and header is not None:
        if split(line) != list(header):
          # The only caller with headers reads MovieLens csv files, hence the wording.
          raise schema.DataError(f"{path}:1: expected the header {','.join(header)!r}, found "
                                 f"{line!r}; the file is not in this MovieLens format.")
        continue
      if not line:
        continue
      try:
        fields = split(line)
        if len(fields) != num_fields:
          raise BadLine(f"expected {num_fields} fields, found {len(fields)}")
        parse_fields(fields)
      except BadLine as error:
        bad_lines.add(number, line, str(error))


def split_csv(line: str) -> List[str]:
  """The fields of one csv line.

  Args:
    line: the line, without its line break.

  Returns:
    The fields, unquoted.

  Raises:
    BadLine: the quoting is malformed.
  """
  try:
    return next(csv.reader([line], strict=True))
  except csv.Error as error:
    raise BadLine(f"bad csv quoting ({error})") from error


def parse_count(text: str, what: str, maximum: Optional[int] = None) -> int:
  """A non-negative integer written in ASCII digits (ids, timestamps, ages).

  Args:
    text: the field, surrounding whitespace allowed.
    what: the field's name, for the error message.
    maximum: the largest value allowed, e.g. `INT64_MAX` for a value stored as int64; None
      for no limit (ids, which are kept as text).

  Returns:
    The integer.

  Raises:
    BadLine: `text` is not such an integer, or is above `maximum`.
  """
  stripped = text.strip()
  if not (stripped.isascii() and stripped.isdigit()):
    raise BadLine(f"{what} {text!r} is not a non-negative integer")
  value = int(stripped)
  if maximum is not None and value > maximum:
    raise BadLine(f"{what} {text!r} is too large (at most {maximum})")
  return value


def parse_id(text: str, what: str) -> str:
  """A numeric id in canonical digits.

  Canonical, so that "007" in one file and "7" in another name the same item.

  Args:
    text: the field.
    what: the id's name, for the error message.

  Returns:
    The id's decimal digits without leading zeros.

  Raises:
    BadLine: `text` is not a non-negative integer.
  """
  return str(parse_count(text, what))
