"""One CSV, TSV or Parquet file read as Arrow record batches, with accounting for bad rows.

`TableFile` opens `.parquet`, `.csv` or `.tsv` files (text optionally gzip-compressed:
`.csv.gz`, `.tsv.gz`) through pyarrow (`pyarrow.parquet.ParquetFile.iter_batches`,
`pyarrow.csv.open_csv`), never a hand-written parser, and yields record batches of the columns
asked for, so that no reader holds one Python object per row. Text files need a header row;
their values come as strings (empty fields as "", never null), so that every value is parsed by
`tfrs_smoe.data.column_values` and a bad one can be named; Parquet values keep their types.

Bad rows: a row of a text file with the wrong number of fields, or a row whose value does not
parse (`reject`), raises `schema.DataError` naming the file, the row and the column and showing
the value; with `skip_bad_rows` it is counted instead, and the first few are kept as examples
for the warning. Row numbers are 1-based and count the data rows of the file (the header not
included), so row n of a text file without quoted line breaks is its line n + 1.
"""

import os
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from tfrs_smoe.data import schema

# File name endings -> format; gzip is accepted for text only.
SUFFIXES = {".parquet": "parquet", ".csv": "csv", ".csv.gz": "csv", ".tsv": "tsv",
            ".tsv.gz": "tsv"}
_DELIMITERS = {"csv": ",", "tsv": "\t"}
# How many bad rows per file the warning quotes.
_NUM_EXAMPLES = 3


def file_format(path: str) -> Optional[str]:
  """"parquet", "csv" or "tsv" from the name of `path`, None for other files."""
  name = os.path.basename(path).lower()
  for suffix in sorted(SUFFIXES, key=len, reverse=True):
    if name.endswith(suffix):
      return SUFFIXES[suffix]
  return None


class TableFile:
  """Record batches of one table file, and its bad rows.

  Args:
    path: a `.parquet`, `.csv`, `.tsv`, `.csv.gz` or `.tsv.gz` file with a header row (text).
    skip_bad_rows: count bad rows instead of raising at the first.
    batch_size: rows per Parquet batch (text files come in blocks of about 1 MiB).

  Attributes:
    path: the file.
    format: "parquet", "csv" or "tsv".
    columns: the file's column names, in file order.
    skipped: the number of bad rows skipped so far.
    examples: up to 3 of them, as "file: row n: reason".

  Example:
    >>> with open("interactions.csv", "w", encoding="utf-8") as f:
    ...   _ = f.write("user_id,item_id,timestamp\\nu1,m1,1704100000\\nu2,m1,1704200000\\n")
    >>> table = TableFile("interactions.csv", skip_bad_rows=False)
    >>> table.format, table.columns
    ('csv', ['user_id', 'item_id', 'timestamp'])
    >>> table.require(["user_id", "item_id"], "interactions")
    >>> for first_row, batch in table.batches(["user_id", "item_id"]):
    ...   print(first_row, batch.column("user_id").to_pylist())  # Row first_row + i of the file.
    1 ['u1', 'u2']
  """

  def __init__(self, path: str, skip_bad_rows: bool, batch_size: int = 65_536):
    self.path = os.fspath(path)
    self.format = file_format(self.path)
    if self.format is None:
      raise schema.DataError(f"{self.path}: not a table file; use one of "
                             f"{', '.join(sorted(SUFFIXES))}.")
    if batch_size < 1:
      raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    self.skip_bad_rows = skip_bad_rows
    self.batch_size = batch_size
    self.skipped = 0
    self.examples: List[str] = []
    self._skipped_rows: List[int] = []
    self._invalid: Optional[str] = None
    try:
      if self.format == "parquet":
        self.columns = list(pq.ParquetFile(self.path).schema_arrow.names)
      else:
        with self._open_text(None) as reader:
          self.columns = list(reader.schema.names)
    except (pa.ArrowException, OSError) as error:
      raise schema.DataError(f"{self.path}: cannot be read as {self.format} ({error}).") from None
    duplicated = sorted({name for name in self.columns if self.columns.count(name) > 1})
    if duplicated:
      raise schema.DataError(f"{self.path}: the header names {duplicated} more than once.")

  def _open_text(self, names: Optional[Sequence[str]]) -> pa_csv.CSVStreamingReader:
    convert = pa_csv.ConvertOptions(strings_can_be_null=False)
    if names is not None:
      convert = pa_csv.ConvertOptions(include_columns=list(names), strings_can_be_null=False,
                                      column_types={name: pa.string() for name in names})
    # One thread, so that the bad-row handler sees the rows' line numbers.
    return pa_csv.open_csv(
        self.path, read_options=pa_csv.ReadOptions(use_threads=False),
        parse_options=pa_csv.ParseOptions(
            delimiter=_DELIMITERS[self.format],
            # Reading the header only (names None), the first rows are looked at later.
            invalid_row_handler=self._invalid_row if names is not None else lambda _: "skip"),
        convert_options=convert)

  def _invalid_row(self, row) -> str:
    where = f"line {row.number}" if row.number is not None else "a row"
    reason = (f"{where}: expected {row.expected_columns} fields, found {row.actual_columns}: "
              f"{row.text!r}")
    if not self.skip_bad_rows:
      self._invalid = reason
      return "error"  # pyarrow raises; `batches` names the file.
    if row.number is not None:
      self._skipped_rows.append(row.number - 1)  # The data row it would have been.
    self._count(reason)
    return "skip"

  def _row_number(self, row: int) -> int:
    """The file's data row number of the `row`-th row read, malformed rows skipped counted."""
    for skipped in sorted(self._skipped_rows):
      if skipped <= row:
        row += 1
    return row

  def _count(self, example: str) -> None:
    self.skipped += 1
    if len(self.examples) < _NUM_EXAMPLES:
      self.examples.append(f"{self.path}: {example}")

  def require(self, names: Sequence[str], what: str) -> None:
    """Raises `schema.DataError` naming the file and its columns unless it has all `names`.

    Args:
      names: the column names needed (after `data.columns` mapping).
      what: what the file is ("interactions", "items", "users"), for the message.
    """
    missing = [name for name in names if name not in self.columns]
    if missing:
      raise schema.DataError(
          f"{self.path}: the {what} file has no column {', '.join(map(repr, missing))}; its "
          f"columns are {self.columns}. Rename them, or map them with data.columns, e.g. "
          f"'data: {{columns: {{{missing[0]}: <your column>}}}}'.")

  def batches(self, names: Sequence[str]) -> Iterator[Tuple[int, pa.RecordBatch]]:
    """Yields (first row number, record batch of `names`) through the whole file.

    Args:
      names: columns of the file (see `require`).

    Raises:
      schema.DataError: the file does not parse (e.g. a row with the wrong field count, or
        bytes that are not UTF-8), naming the file and pyarrow's reason.
    """
    first_row = 1
    try:
      if self.format == "parquet":
        batches = pq.ParquetFile(self.path).iter_batches(batch_size=self.batch_size,
                                                         columns=list(names))
      else:
        batches = self._open_text(names)
      for batch in batches:
        yield first_row, batch
        first_row += batch.num_rows
    except pa.ArrowException as error:
      if self._invalid is not None:
        raise schema.DataError(f"{self.path}: {self._invalid}. Fix the file, or set "
                               "data.skip_bad_lines: true to skip and count such rows.") from None
      raise schema.DataError(f"{self.path}: after data row {first_row - 1}: {error}") from None

  def reject(self, first_row: int, bad: np.ndarray, column: str, values: pa.Array,
             reason: str) -> None:
    """Raises for (or counts) the rows of a batch whose value of `column` is bad.

    Args:
      first_row: the row number of the batch's first row.
      bad: [batch rows] bool, the rows to reject.
      column: the column's name in the file.
      values: [batch rows] the column's raw values, for the message.
      reason: what is wrong, e.g. "is not a number".

    Raises:
      schema.DataError: `bad` has a row and bad rows are not skipped.
    """
    rows = np.flatnonzero(bad)
    if rows.size:
      shown = values.take(pa.array(rows[:_NUM_EXAMPLES])).to_pylist()
      self.reject_rows(first_row + rows, column, shown, reason)

  def reject_rows(self, rows: np.ndarray, column: str, values: Sequence,
                  reason: str) -> None:
    """Raises for (or counts) the rows numbered `rows` whose value of `column` is bad.

    Args:
      rows: [n] row numbers.
      column: the column's name in the file.
      values: the raw values of at least the first min(n, 3) rows, for the message.
      reason: what is wrong.

    Raises:
      schema.DataError: `rows` is not empty and bad rows are not skipped.
    """
    if not len(rows):
      return
    message = lambda i: (f"row {self._row_number(int(rows[i]))}, column {column!r}: "
                         f"{values[i]!r} {reason}")
    if not self.skip_bad_rows:
      raise schema.DataError(f"{self.path}: {message(0)}. Fix the file, or set "
                             "data.skip_bad_lines: true to skip and count such rows.")
    for i in range(len(rows)):
      if len(self.examples) >= _NUM_EXAMPLES:
        self.skipped += len(rows) - i  # Counted without a message each.
        return
      self._count(message(i))
