"""Tests of the Arrow column parsers: values, and the rows whose value is bad."""

import numpy as np
import pyarrow as pa

from tfrs_smoe.data import column_values


def test_timestamps_from_seconds_iso_8601_and_parquet_types():
  values, bad = column_values.timestamps(pa.array([
      "1700000000", " 12.7", "2024-01-05T10:00:00Z", "2024-01-05", "2024-01-05T10:00:00+02:00",
      "2024-01-05 10:00:00.5", "yesterday", "", "2024-13-01"]))
  np.testing.assert_array_equal(values[:6], [1700000000, 12, 1704448800, 1704412800,
                                             1704441600, 1704448800])
  np.testing.assert_array_equal(bad, [False] * 6 + [True] * 3)
  values, bad = column_values.timestamps(pa.array([1, None], pa.int64()))
  np.testing.assert_array_equal(bad, [False, True])
  stamps = pa.array([1704448800_250], pa.timestamp("ms", tz="UTC"))
  np.testing.assert_array_equal(column_values.timestamps(stamps)[0], [1704448800])


def test_numbers_integers_ids_and_genres():
  values, bad = column_values.numbers(pa.array(["1.5", "nan", "x", ""]))
  np.testing.assert_array_equal(bad, [False, False, True, True])
  assert values[0] == 1.5 and np.isnan(values[1])
  values, bad = column_values.integers(pa.array(["1995", "", "1995.0", "19.5"]), missing=0)
  np.testing.assert_array_equal(values, [1995, 0, 1995, 0])
  np.testing.assert_array_equal(bad, [False, False, False, True])
  ids, bad = column_values.ids(pa.array(["a", "", " b ", "c\nd"]))
  np.testing.assert_array_equal(ids[[0, 2]], ["a", "b"])
  np.testing.assert_array_equal(bad, [False, True, False, True])
  np.testing.assert_array_equal(column_values.ids(pa.array([7, 8]))[0], ["7", "8"])
  genres, bad = column_values.genres(pa.array([" Action ; War", "a;;b", "", "x|y"]), ";")
  np.testing.assert_array_equal(genres[:3], ["Action|War", "a|b", ""])
  np.testing.assert_array_equal(bad, [False, False, False, True])
  genres, bad = column_values.genres(pa.array([["Drama", "Comedy"], [], None]), "|")
  np.testing.assert_array_equal(genres, ["Drama|Comedy", "", ""])
  assert not bad.any()
