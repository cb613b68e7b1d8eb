"""Tests of the MovieLens file parsers on tiny hand-written files of each format."""

import logging
import os
import re

import numpy as np
import pytest

from tfrs_smoe.data import line_parsing
from tfrs_smoe.data import movielens_files
from tfrs_smoe.data import schema


def _write(directory, name, text, encoding="utf-8"):
  with open(os.path.join(directory, name), "wb") as f:
    f.write(text.encode(encoding))


def _flags(*on, num_genres=19):
  return "|".join("1" if i in on else "0" for i in range(num_genres))


def _write_100k(directory, with_users=True):
  # Genre flag 8 is Drama, 5 Comedy, 0 "unknown" in the standard list.
  _write(directory, "u.item",
         f"10|Café Society (1995)|01-Jan-1995||http://x|{_flags(5, 8)}\n"
         f"20|unknown||||{_flags(0)}\n", encoding="latin-1")
  _write(directory, "u.data", "1\t10\t5\t881250949\n2\t20\t1\t881250950\n1\t20\t3\t881250951\n")
  if with_users:
    _write(directory, "u.user", "1|24|M|technician|85711\n2|53|F|other|94043\n")
  return str(directory)


def _write_1m(directory):
  _write(directory, "movies.dat",
         "1::Toy Story (1995)::Animation|Children's|Comedy\n2::Amélie (2001)::Comedy|Romance\n",
         encoding="latin-1")
  _write(directory, "users.dat", "1::F::1::10::48067\n2::M::56::16::70072\n")
  _write(directory, "ratings.dat", "1::1::5::978300760\n2::2::2::978300761\n")
  return str(directory)


def _write_latest_small(directory, ratings_rows=("1,1,4.0,964982703", "1,11,0.5,964982224",
                                                 "2,99,2.5,964983000")):
  _write(directory, "movies.csv",
         "movieId,title,genres\n"
         "1,Toy Story (1995),Adventure|Animation\n"
         '11,"American President, The (1995)",Comedy|Drama|Romance\n'
         "99,No Year Here,(no genres listed)\n")
  _write(directory, "ratings.csv", "userId,movieId,rating,timestamp\n" + "\n".join(ratings_rows)
         + "\n")
  return str(directory)


def _assert_columns(columns, expected):
  assert sorted(columns) == sorted(expected)
  for name, values in expected.items():
    values = np.asarray(values)
    assert columns[name].dtype.kind == values.dtype.kind == "U" or (
        columns[name].dtype == values.dtype), name
    np.testing.assert_array_equal(columns[name], values, err_msg=name)


def test_100k_parses_ratings_latin1_items_genre_flags_and_users(tmp_path):
  result = movielens_files.read_movielens(_write_100k(tmp_path), "100k")
  _assert_columns(result.columns, {
      "user_id": ["1", "2", "1"],
      "item_id": ["10", "20", "20"],
      "timestamp": np.array([881250949, 881250950, 881250951], np.int64),
      "rating": np.array([5, 1, 3], np.float32),
      "engagement": np.array([1.0, 0.2, 0.6], np.float32),
      "item_title": ["Café Society (1995)", "unknown", "unknown"],
      "item_genres": ["Comedy|Drama", "", ""],  # The genre "unknown" means none.
      "item_year": np.array([1995, 0, 0], np.int32),
      "item_runtime_seconds": np.zeros(3, np.float32),
      "user_age": np.array([24, 53, 24], np.int32),
      "user_gender": ["M", "F", "M"],
      "user_occupation": ["technician", "other", "technician"],
      "user_zip": ["85711", "94043", "85711"],
  })
  assert result.skipped == {"u.item": 0, "u.user": 0, "u.data": 0}


def test_100k_genre_names_come_from_u_genre(tmp_path):
  directory = _write_100k(tmp_path)
  _write(directory, "u.genre", "unknown|0\nNoir|1\nSatire|2\n\n")
  _write(directory, "u.item", "10|A (1990)||||0|1|1\n20|B (1991)||||0|0|1\n")
  columns = movielens_files.read_movielens(directory, "100k").columns
  np.testing.assert_array_equal(columns["item_genres"], ["Noir|Satire", "Satire", "Satire"])


def test_100k_without_u_user_has_no_user_columns(tmp_path):
  result = movielens_files.read_movielens(_write_100k(tmp_path, with_users=False), "100k")
  assert not [name for name in result.columns if name.startswith("user_") and name != "user_id"]
  assert result.skipped == {"u.item": 0, "u.data": 0}


def test_1m_parses_latin1_titles_genres_and_user_codes(tmp_path):
  result = movielens_files.read_movielens(_write_1m(tmp_path), "1m")
  _assert_columns(result.columns, {
      "user_id": ["1", "2"],
      "item_id": ["1", "2"],
      "timestamp": np.array([978300760, 978300761], np.int64),
      "rating": np.array([5, 2], np.float32),
      "engagement": np.array([1.0, 0.4], np.float32),
      "item_title": ["Toy Story (1995)", "Amélie (2001)"],
      "item_genres": ["Animation|Children's|Comedy", "Comedy|Romance"],
      "item_year": np.array([1995, 2001], np.int32),
      "item_runtime_seconds": np.zeros(2, np.float32),
      "user_age": np.array([1, 56], np.int32),
      "user_gender": ["F", "M"],
      "user_occupation": ["10", "16"],
      "user_zip": ["48067", "70072"],
  })


def test_latest_small_parses_csv_quoting_half_stars_and_no_genres(tmp_path):
  result = movielens_files.read_movielens(_write_latest_small(tmp_path), "latest-small")
  _assert_columns(result.columns, {
      "user_id": ["1", "1", "2"],
      "item_id": ["1", "11", "99"],
      "timestamp": np.array([964982703, 964982224, 964983000], np.int64),
      "rating": np.array([4.0, 0.5, 2.5], np.float32),
      "engagement": np.array([0.8, 0.1, 0.5], np.float32),
      "item_title": ["Toy Story (1995)", "American President, The (1995)", "No Year Here"],
      "item_genres": ["Adventure|Animation", "Comedy|Drama|Romance", ""],
      "item_year": np.array([1995, 1995, 0], np.int32),
      "item_runtime_seconds": np.zeros(3, np.float32),
  })
  assert result.skipped == {"movies.csv": 0, "ratings.csv": 0}


def test_missing_file_names_the_file_the_directory_and_the_format(tmp_path):
  directory = _write_1m(tmp_path)
  os.remove(os.path.join(directory, "users.dat"))
  with pytest.raises(schema.DataError, match=r"'1m'.*" + re.escape(directory) + ".*users.dat"):
    movielens_files.read_movielens(directory, "1m")


def test_unknown_format_is_rejected(tmp_path):
  with pytest.raises(ValueError, match="Unknown MovieLens format '10m'"):
    movielens_files.read_movielens(str(tmp_path), "10m")


@pytest.mark.parametrize("row, reason", [
    ("1,1,4.0", "expected 4 fields, found 3"),
    ("1,x1,4.0,964982703", "movie id 'x1' is not a non-negative integer"),
    ("1,1,4.0,soon", "timestamp 'soon' is not a non-negative integer"),
    ("1,1,good,964982703", "rating 'good' is not a number"),
    ("1,1,nan,964982703", "rating 'nan' is not one of 0.5, 1, ..., 5"),
    ("1,1,5.5,964982703", "rating '5.5' is not one of"),
    ("1,1,0,964982703", "rating '0' is not one of"),
    ("1,1,3.25,964982703", "rating '3.25' is not one of"),
    ("1,7,4.0,964982703", "movie id 7 is not in the item file"),
])
def test_malformed_rating_line_names_file_line_and_shows_it(tmp_path, row, reason):
  directory = _write_latest_small(tmp_path, ratings_rows=("1,1,4.0,964982703", row))
  where = os.path.join(directory, "ratings.csv") + ":3"
  with pytest.raises(schema.DataError) as error:
    movielens_files.read_movielens(directory, "latest-small")
  assert str(error.value).startswith(f"{where}: {reason}")
  assert repr(row) in str(error.value)


@pytest.mark.parametrize("ratings, reason", [
    ("1::1::6::978300760\n", "rating '6' is not one of 1, 2, ..., 5"),
    ("1::1::4.5::978300760\n", "rating '4.5' is not one of 1, 2, ..., 5"),
    ("3::1::4::978300760\n", "user id 3 is not in the user file"),
    ("1::1::4::978300760::x\n", "expected 4 fields, found 5"),
])
def test_1m_rating_scale_and_user_file_are_checked(tmp_path, ratings, reason):
  directory = _write_1m(tmp_path)
  _write(directory, "ratings.dat", ratings)
  with pytest.raises(schema.DataError,
                     match=re.escape(os.path.join(directory, "ratings.dat") + ":1: " + reason)):
    movielens_files.read_movielens(directory, "1m")


def test_malformed_item_lines_are_reported(tmp_path):
  directory = _write_100k(tmp_path)
  _write(directory, "u.item", f"10|A (1990)||||{_flags(1)}\n10|B||||{_flags(2)}\n",
         encoding="latin-1")
  with pytest.raises(schema.DataError,
                     match=re.escape(os.path.join(directory, "u.item") + ":2: movie id 10 is "
                                     "listed twice")):
    movielens_files.read_movielens(directory, "100k")
  _write(directory, "u.item", f"10|A (1990)||||{_flags(1)}|0\n")
  with pytest.raises(schema.DataError, match=r"u\.item:1: expected 24 fields, found 25"):
    movielens_files.read_movielens(directory, "100k")


def test_a_wrong_csv_header_always_raises(tmp_path):
  directory = _write_latest_small(tmp_path)
  _write(directory, "ratings.csv", "user,movie,rating,timestamp\n1,1,4.0,964982703\n")
  with pytest.raises(schema.DataError, match=r"ratings\.csv:1: expected the header"):
    movielens_files.read_movielens(directory, "latest-small", skip_bad_lines=True)


def test_skip_bad_lines_counts_reports_and_keeps_the_good_rows(tmp_path, caplog):
  directory = _write_latest_small(tmp_path, ratings_rows=(
      "1,1,4.0,964982703", "1,1,nan,964982704", "1,11,0.5,964982224", "2,7,3.0,964983001",
      "2,99,9,964983002", "2,99,2.5,964983000"))
  with open(os.path.join(directory, "movies.csv"), "ab") as f:
    f.write(b"12,Bad \xff Bytes (1999),Drama\n")
  with caplog.at_level(logging.WARNING):
    result = movielens_files.read_movielens(directory, "latest-small", skip_bad_lines=True)
  assert result.skipped == {"movies.csv": 1, "ratings.csv": 3}
  np.testing.assert_array_equal(result.columns["item_id"], ["1", "11", "99"])
  np.testing.assert_array_equal(result.columns["rating"], [4.0, 0.5, 2.5])
  ratings_path = os.path.join(directory, "ratings.csv")
  warnings = "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
  assert f"Skipped 3 malformed line(s) of {ratings_path}" in warnings
  for line in (3, 5, 6):
    assert f"{ratings_path}:{line}:" in warnings
  assert f"{os.path.join(directory, 'movies.csv')}:5: not valid utf-8" in warnings


def test_only_bad_lines_leave_no_ratings_and_raise(tmp_path):
  directory = _write_latest_small(tmp_path, ratings_rows=("1,1,nan,964982703",))
  with pytest.raises(schema.DataError, match=r"no ratings were read .*'ratings.csv': 1"):
    movielens_files.read_movielens(directory, "latest-small", skip_bad_lines=True)


def test_detect_format(tmp_path):
  for name, write in (("100k", _write_100k), ("1m", _write_1m),
                      ("latest-small", _write_latest_small)):
    directory = tmp_path / name
    directory.mkdir()
    assert movielens_files.detect_format(write(directory)) == name
  _write_1m(tmp_path / "100k")
  with pytest.raises(schema.DataError, match="several MovieLens formats .*100k, 1m"):
    movielens_files.detect_format(tmp_path / "100k")
  with pytest.raises(schema.DataError,
                     match=re.escape(str(tmp_path)) + " holds the files of no MovieLens format"):
    movielens_files.detect_format(tmp_path)
  with pytest.raises(schema.DataError, match="is not a directory"):
    movielens_files.detect_format(tmp_path / "nowhere")


def test_source_fingerprint_follows_file_content(tmp_path):
  directory = _write_100k(tmp_path)
  before = movielens_files.source_fingerprint(directory, "100k")
  assert sorted(before) == ["u.data", "u.item", "u.user"]
  _write(directory, "u.data", "1\t10\t4\t881250949\n")
  after = movielens_files.source_fingerprint(directory, "100k")
  assert after["u.data"] != before["u.data"] and after["u.item"] == before["u.item"]


def test_duplicate_ratings_are_counted_dropped_and_reported(tmp_path, caplog):
  # Rows 2 and 5 repeat row 1 (row 5 with another rating: the first is kept); row 4 is the
  # same user and movie at another time, a rating of its own.
  directory = _write_latest_small(tmp_path, ratings_rows=(
      "1,1,4.0,964982703", "1,1,4.0,964982703", "1,11,0.5,964982224", "1,1,3.0,964990000",
      "1,1,2.0,964982703"))
  with caplog.at_level(logging.WARNING):
    result = movielens_files.read_movielens(directory, "latest-small")
  assert result.duplicate_rows == 2
  np.testing.assert_array_equal(result.columns["item_id"], ["1", "11", "1"])
  np.testing.assert_array_equal(result.columns["timestamp"], [964982703, 964982224, 964990000])
  np.testing.assert_array_equal(result.columns["rating"], [4.0, 0.5, 3.0])
  warnings = "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
  assert (f"{os.path.join(directory, 'ratings.csv')}: dropped 2 duplicate (user, item, "
          "timestamp) rating row(s), keeping the first of each, e.g. user 1, movie 1 at "
          "964982703.") in warnings


def test_1m_duplicates_are_dropped_too(tmp_path):
  directory = _write_1m(tmp_path)
  _write(directory, "ratings.dat", "1::1::5::978300760\n2::2::2::978300761\n1::1::5::978300760\n")
  result = movielens_files.read_movielens(directory, "1m")
  assert result.duplicate_rows == 1
  np.testing.assert_array_equal(result.columns["user_id"], ["1", "2"])


def test_no_duplicates_count_zero(tmp_path):
  assert movielens_files.read_movielens(_write_1m(tmp_path), "1m").duplicate_rows == 0


_BEYOND_INT64 = str(2**63)


def test_timestamp_beyond_int64_names_file_and_line(tmp_path):
  directory = _write_latest_small(tmp_path, ratings_rows=(
      "1,1,4.0,964982703", f"1,11,0.5,{_BEYOND_INT64}"))
  with pytest.raises(schema.DataError) as error:
    movielens_files.read_movielens(directory, "latest-small")
  assert str(error.value).startswith(
      f"{os.path.join(directory, 'ratings.csv')}:3: timestamp '{_BEYOND_INT64}' is too large "
      f"(at most {2**63 - 1})")


def test_timestamp_beyond_int64_is_skipped_with_skip_bad_lines(tmp_path):
  directory = _write_latest_small(tmp_path, ratings_rows=(
      "1,1,4.0,964982703", f"1,11,0.5,{_BEYOND_INT64}", f"2,99,2.5,{2**63 - 1}"))
  result = movielens_files.read_movielens(directory, "latest-small", skip_bad_lines=True)
  assert result.skipped == {"movies.csv": 0, "ratings.csv": 1}
  np.testing.assert_array_equal(result.columns["timestamp"], [964982703, 2**63 - 1])


def test_age_beyond_int32_names_file_and_line(tmp_path):
  directory = _write_1m(tmp_path)
  _write(directory, "users.dat", f"1::F::1::10::48067\n2::M::{2**31}::16::70072\n")
  with pytest.raises(schema.DataError, match=re.escape(
      os.path.join(directory, "users.dat") + f":2: age '{2**31}' is too large")):
    movielens_files.read_movielens(directory, "1m")


@pytest.mark.parametrize("write, name, text, kind, what", [
    (_write_latest_small, "movies.csv", "movieId,title,genres\n", "item", "movies"),
    (_write_latest_small, "movies.csv", "", "item", "movies"),
    (_write_1m, "movies.dat", "", "item", "movies"),
    (_write_1m, "users.dat", "\n", "user", "users"),
    (_write_100k, "u.item", "", "item", "movies"),
    (_write_100k, "u.user", "", "user", "users"),
])
def test_an_empty_item_or_user_file_is_named_as_empty(tmp_path, write, name, text, kind, what):
  directory = write(tmp_path)
  _write(directory, name, text)
  format_name = movielens_files.detect_format(directory)
  for skip_bad_lines in (False, True):
    with pytest.raises(schema.DataError) as error:
      movielens_files.read_movielens(directory, format_name, skip_bad_lines=skip_bad_lines)
    assert str(error.value) == (f"{os.path.join(directory, name)}: the {kind} file is empty: it "
                                f"lists no {what}.")


def test_an_item_file_of_bad_lines_only_says_so(tmp_path):
  directory = _write_1m(tmp_path)
  _write(directory, "movies.dat", "x::Toy Story (1995)::Animation\n")
  with pytest.raises(schema.DataError, match=re.escape(
      f"{os.path.join(directory, 'movies.dat')}: no movies were read from the item file: its 1 "
      "line(s) are all malformed and were skipped, e.g. ")):
    movielens_files.read_movielens(directory, "1m", skip_bad_lines=True)


def test_an_empty_ratings_file_is_named_as_empty(tmp_path):
  directory = _write_latest_small(tmp_path, ratings_rows=())
  with pytest.raises(schema.DataError, match=re.escape(
      f"{os.path.join(directory, 'ratings.csv')}: the ratings file is empty")):
    movielens_files.read_movielens(directory, "latest-small")


def test_utf8_item_and_user_files_are_decoded_as_utf8(tmp_path):
  directory = _write_1m(tmp_path)
  _write(directory, "movies.dat", "1::Toy Story (1995)::Animation\n2::Amélie (2001)::Comedy\n")
  _write(directory, "users.dat", "1::F::1::10::48067\n2::M::56::16::Zürich\n")
  columns = movielens_files.read_movielens(directory, "1m").columns
  np.testing.assert_array_equal(columns["item_title"], ["Toy Story (1995)", "Amélie (2001)"])
  np.testing.assert_array_equal(columns["user_zip"], ["48067", "Zürich"])
  (tmp_path / "100k").mkdir()
  directory = _write_100k(tmp_path / "100k")
  _write(directory, "u.item", f"10|Amélie (2001)||||{_flags(5)}\n20|Café (1990)||||{_flags(8)}\n")
  columns = movielens_files.read_movielens(directory, "100k").columns
  np.testing.assert_array_equal(columns["item_title"],
                                ["Amélie (2001)", "Café (1990)", "Café (1990)"])


def test_file_encoding_prefers_utf8_and_falls_back_to_latin1(tmp_path):
  path = tmp_path / "movies.dat"
  path.write_bytes("1::Amélie (2001)::Comedy\n".encode("utf-8"))
  assert line_parsing.file_encoding(str(path), ("utf-8", "latin-1")) == "utf-8"
  # One latin-1 byte anywhere makes the whole file latin-1, its UTF-8-looking bytes included.
  path.write_bytes("1::Amélie (2001)::Comedy\n".encode("utf-8") + "2::Café::Drama\n".encode(
      "latin-1"))
  assert line_parsing.file_encoding(str(path), ("utf-8", "latin-1")) == "latin-1"
