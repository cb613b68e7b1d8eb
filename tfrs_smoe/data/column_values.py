"""Arrow columns of a watch-log file -> numpy values, with the rows whose value does not parse.

Each parser takes one column of a record batch (`pyarrow.Array`, [rows]) as `TableFile` yields
it: strings for text files, the file's own types for Parquet. It returns the values as a numpy
array of shape [rows] and a [rows] bool mask of the rows whose value is bad (their value is a
placeholder); the caller hands the mask to `TableFile.reject` with the parser's `REASONS` entry.
Conversions run in pyarrow's compute kernels; only a batch that holds a bad value is looked at
value by value, to find it.
"""

from typing import Optional, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

Parsed = Tuple[np.ndarray, np.ndarray]

# Why a parser rejects a value, for `TableFile.reject`.
REASONS = {
    "id": "is not an id (empty, or with a line break)",
    "timestamp": "is not a time (integer seconds since the epoch, or ISO 8601 such as "
                 "2024-03-01T20:15:00Z)",
    "number": "is not a number",
    "integer": "is not a whole number",
    "genres": "is not a list of genres (a genre name may not contain '|')",
}
_DECIMAL = r"^-?\d+(\.\d*)?$"
# A zone designator after a time of day (a date alone, "2024-03-01", names no zone).
_ZONE = r"[T ]\d\d:\d\d[0-9:.,]*(Z|z|[+-]\d\d(:?\d\d)?)$"
_NANOSECONDS = 1_000_000_000


def _plain(array: pa.Array) -> pa.Array:
  """`array` without dictionary encoding (Parquet files written from categoricals have it)."""
  return array.dictionary_decode() if pa.types.is_dictionary(array.type) else array


def _is_text(array: pa.Array) -> bool:
  return pa.types.is_string(array.type) or pa.types.is_large_string(array.type)


def _cast(array: pa.Array, target: pa.DataType) -> Parsed:
  """(array cast to `target` as numpy, bad mask); a value that does not cast is bad (null)."""
  try:
    return array.cast(target), np.zeros(len(array), bool)
  except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
    pass
  values, bad = [], np.zeros(len(array), bool)
  for row in range(len(array)):  # Only a batch holding a bad value gets here.
    try:
      values.append(array.slice(row, 1).cast(target)[0].as_py())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
      values.append(None)
      bad[row] = True
  return pa.array(values, target), bad


def _nulls(array: pa.Array) -> np.ndarray:
  return np.asarray(array.is_null(), bool)


def strings(array: pa.Array) -> np.ndarray:
  """[rows] str of any column; nulls become "". Surrounding whitespace is stripped."""
  array = _plain(array)
  if not _is_text(array):
    array = array.cast(pa.string())
  array = pc.utf8_trim_whitespace(array).fill_null("")
  return np.asarray(array.to_numpy(zero_copy_only=False), dtype=str)


def ids(array: pa.Array) -> Parsed:
  """Raw ids as strings ([rows] str): integers in Parquet become their digits."""
  values = strings(array)
  bad = (values == "") | (np.char.find(values, "\n") >= 0) | (np.char.find(values, "\r") >= 0)
  return values, bad


def timestamps(array: pa.Array) -> Parsed:
  """[rows] int64 seconds since the epoch, from integer or decimal seconds, ISO 8601 text
  (UTC unless it names a zone; fractions of a second dropped), or Parquet timestamps / dates."""
  array = _plain(array)
  kind = array.type
  if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
    seconds = array.cast(pa.timestamp("s"), safe=False).cast(pa.int64())
    return np.asarray(seconds.fill_null(0), np.int64), _nulls(array)
  if pa.types.is_integer(kind):
    return np.asarray(array.cast(pa.int64()).fill_null(0), np.int64), _nulls(array)
  if pa.types.is_floating(kind):
    values = np.asarray(array.cast(pa.float64()).fill_null(np.nan), np.float64)
    bad = ~np.isfinite(values)
    return np.floor(np.where(bad, 0, values)).astype(np.int64), bad
  text = pc.utf8_trim_whitespace(_plain(array) if _is_text(array) else array.cast(pa.string()))
  text = text.fill_null("")
  result = np.zeros(len(text), np.int64)
  bad = np.zeros(len(text), bool)
  numeric = np.asarray(pc.match_substring_regex(text, _DECIMAL), bool)
  zoned = ~numeric & np.asarray(pc.match_substring_regex(text, _ZONE), bool)
  for rows, target in ((numeric, pa.float64()), (zoned, pa.timestamp("ns", tz="UTC")),
                       (~numeric & ~zoned, pa.timestamp("ns"))):
    if not rows.any():
      continue
    values, failed = _cast(text.filter(pa.array(rows)), target)
    if pa.types.is_timestamp(target):
      seconds = np.asarray(values.cast(pa.int64()).fill_null(0), np.int64) // _NANOSECONDS
    else:
      seconds = np.floor(np.asarray(values.fill_null(0), np.float64)).astype(np.int64)
    result[rows] = seconds
    bad[rows] = failed
  return result, bad


def numbers(array: pa.Array) -> Parsed:
  """[rows] float64; NaN and infinities parse (range checks are the caller's), "" is bad."""
  array = _plain(array)
  if _is_text(array):
    array = pc.utf8_trim_whitespace(array)
  values, bad = _cast(array, pa.float64())
  bad |= _nulls(values)
  return np.array(values.fill_null(0.0), np.float64), bad


def integers(array: pa.Array, missing: Optional[int] = None) -> Parsed:
  """[rows] int64 whole numbers ("1995", 1995, 1995.0); with `missing`, an empty or null value
  is `missing` instead of bad."""
  values, bad = numbers(array)
  if missing is not None:
    empty = _nulls(array) | (strings(array) == "")
    values[empty] = missing
    bad &= ~empty
  bad |= ~np.isfinite(values) | (np.floor(values) != values)
  return np.where(bad, 0, values).astype(np.int64), bad


def genres(array: pa.Array, separator: str) -> Parsed:
  """[rows] str, the genres of each row joined by "|" ("" for none): from a list column, or
  from text split on `separator`. Names are stripped; empty ones are dropped."""
  array = _plain(array)
  if not (pa.types.is_list(array.type) or pa.types.is_large_list(array.type)):
    text = strings(array)
    array = pc.split_pattern(pa.array(text, pa.string()), separator)
  names = array.flatten()
  if not _is_text(names):
    names = names.cast(pa.string())
  names = pc.utf8_trim_whitespace(names).fill_null("")
  parents = np.asarray(pc.list_parent_indices(array), np.int64)
  names_np = np.asarray(names.to_numpy(zero_copy_only=False), dtype=str)
  keep = names_np != ""
  bad = np.zeros(len(array), bool)
  bad[parents[np.char.find(names_np, "|") >= 0]] = True
  counts = np.bincount(parents[keep], minlength=len(array))
  offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
  kept = pa.ListArray.from_arrays(pa.array(offsets), pa.array(names_np[keep], pa.string()))
  joined = pc.binary_join(kept, "|").fill_null("")
  return np.asarray(joined.to_numpy(zero_copy_only=False), dtype=str), bad
