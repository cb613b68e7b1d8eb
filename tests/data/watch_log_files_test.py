"""Tests of reading a user's watch-log folder: formats, mapping, and every bad-input case."""

import gzip
import logging

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tfrs_smoe import config as config_lib
from tfrs_smoe.data import schema
from tfrs_smoe.data import watch_log_files

_INTERACTIONS = ("user_id,item_id,timestamp,watch_seconds,runtime_seconds\n"
                 "acct-b,tt-2,2024-01-01T00:00:10Z,30,60\n"
                 "acct-a,tt-1,2024-01-01T00:00:00Z,90,60\n"
                 "acct-a,tt-2,1704067205,3,60\n")
_ITEMS = ("item_id,title,genres,year,runtime_seconds,studio\n"
          "tt-1,\"One, the film\",Drama|Comedy,1999,60,A24\n"
          "tt-2,Two,,,0,\n"
          "tt-9,Never watched,Horror,2001,60,Neon\n")
_USERS = "user_id,plan\nacct-a,premium\nacct-b,basic\n"


def _write(directory, files):
  directory.mkdir(parents=True, exist_ok=True)
  for name, text in files.items():
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith(".gz"):
      with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(text)
    else:
      path.write_text(text, encoding="utf-8")
  return str(directory)


def _read(directory, **format_args):
  return watch_log_files.WatchLogFiles(
      directory, watch_log_files.WatchLogFormat(**format_args)).read()


def _csv_folder(tmp_path, **extra):
  return _write(tmp_path / "csv", {"interactions.csv": _INTERACTIONS, "items.csv": _ITEMS,
                                   "users.csv": _USERS, **extra})


def test_csv_log_keeps_string_ids_and_reads_items_and_users(tmp_path):
  log = _read(_csv_folder(tmp_path), item_features=("studio",), user_features=("plan",))
  interactions = log.interactions
  # (timestamp, user, item) order; ISO 8601 and integer seconds read alike.
  np.testing.assert_array_equal(interactions.user_id, ["acct-a", "acct-a", "acct-b"])
  np.testing.assert_array_equal(interactions.item_id, ["tt-1", "tt-2", "tt-2"])
  np.testing.assert_array_equal(interactions.timestamp, [1704067200, 1704067205, 1704067210])
  # watch / runtime, capped at 1 (90 seconds of a 60-second title).
  np.testing.assert_allclose(interactions.engagement, [1.0, 0.05, 0.5])
  assert log.metadata["capped_completions"] == 1
  items = log.items  # The log's items only: tt-9 was never watched.
  np.testing.assert_array_equal(items.item_id, ["tt-1", "tt-2"])
  np.testing.assert_array_equal(items.title, ["One, the film", "Two"])
  np.testing.assert_array_equal(items.genres, ["Drama|Comedy", ""])
  np.testing.assert_array_equal(items.year, [1999, 0])
  np.testing.assert_array_equal(items.runtime_seconds, [60, 60])  # tt-2's 0 = the log's 60.
  np.testing.assert_array_equal(items.features["studio"], ["A24", ""])
  np.testing.assert_array_equal(log.users.user_id, ["acct-a", "acct-b"])
  np.testing.assert_array_equal(log.users.features["plan"], ["premium", "basic"])
  assert log.name == "watch_log" and log.abandonment_threshold == 0.05
  assert set(log.metadata["source_files"]) == {"interactions.csv", "items.csv", "users.csv"}
  assert log.metadata["skipped_rows"] == {"interactions.csv": 0, "items.csv": 0,
                                          "users.csv": 0}


def test_parquet_shards_with_mapped_columns_read_as_the_csv_log(tmp_path):
  csv_log = _read(_csv_folder(tmp_path), item_features=("studio",), user_features=("plan",))
  folder = tmp_path / "parquet"
  (folder / "interactions").mkdir(parents=True)
  shard = {"account": ["acct-b", "acct-a"], "title_id": ["tt-2", "tt-1"],
           "timestamp": pa.array([1704067210, 1704067200], pa.int64()),
           "watch_seconds": [30.0, 90.0], "runtime_seconds": [60, 60]}
  pq.write_table(pa.table(shard), folder / "interactions" / "part-0.parquet")
  pq.write_table(pa.table({"account": ["acct-a"], "title_id": ["tt-2"],
                           "timestamp": pa.array([1704067205], pa.int64()),
                           "watch_seconds": [3.0], "runtime_seconds": [60]}),
                 folder / "interactions" / "part-1.parquet")
  pq.write_table(pa.table({
      "title_id": ["tt-1", "tt-2"], "title": ["One, the film", "Two"],
      "genres": pa.array([["Drama", "Comedy"], []], pa.list_(pa.string())),
      "year": pa.array([1999, None], pa.int32()), "studio": ["A24", None]}),
                 folder / "items.parquet")
  pq.write_table(pa.table({"account": ["acct-b", "acct-a"],
                           "plan": pa.array(["basic", "premium"]).dictionary_encode()}),
                 folder / "users.parquet")
  log = _read(str(folder), columns={"user_id": "account", "item_id": "title_id"},
              item_features=("studio",), user_features=("plan",))
  for name, values in csv_log.interactions.columns().items():
    np.testing.assert_array_equal(getattr(log.interactions, name), values, err_msg=name)
  for name in ("item_id", "title", "genres", "year", "runtime_seconds"):
    np.testing.assert_array_equal(getattr(log.items, name), getattr(csv_log.items, name))
  np.testing.assert_array_equal(log.items.features["studio"], ["A24", ""])
  np.testing.assert_array_equal(log.users.features["plan"], ["premium", "basic"])
  assert sorted(log.metadata["source_files"]) == [
      "interactions/part-0.parquet", "interactions/part-1.parquet", "items.parquet",
      "users.parquet"]


def test_gzip_tsv_with_an_engagement_column_and_a_genre_separator(tmp_path):
  folder = _write(tmp_path, {
      "interactions.tsv.gz": "user\titem_id\ttimestamp\tengagement\n"
                             "u1\ti2\t2024-03-01T22:15:00+01:00\t0\n"
                             "u1\ti1\t2024-03-01 20:15:00\t0.75\n",
      "items.tsv": "item_id\tgenres\ni1\tDrama; Crime\ni2\t\n"})
  log = _read(folder, columns={"user_id": "user"}, genre_separator=";")
  # A time without a zone is UTC; 22:15 at +01:00 is 21:15 UTC.
  np.testing.assert_array_equal(log.interactions.timestamp, [1709324100, 1709327700])
  np.testing.assert_allclose(log.interactions.engagement, [0.75, 0.0])
  assert log.interactions.watch_seconds is None
  np.testing.assert_array_equal(log.items.genres, ["Drama|Crime", ""])


@pytest.mark.parametrize("files, format_args, match", [
    ({"interactions.csv": "user_id,item_id,time,engagement\nu,i,1,1\n"}, {},
     r"interactions.csv: the interactions file has no column 'timestamp'; its columns are "
     r"\['user_id', 'item_id', 'time', 'engagement'\]"),
    ({"interactions.csv": "user_id,item_id,timestamp,watch_seconds\nu,i,1,1\n"}, {},
     r"interactions.csv: the interactions file has no column 'runtime_seconds'.*'engagement'"
     r".*its columns are \['user_id', 'item_id', 'timestamp', 'watch_seconds'\]"),
    ({"interactions.csv": "account,item_id,timestamp,engagement\nu,i,1,1\n"},
     {"columns": {"user_id": "acct"}}, r"no column 'acct'; its columns are \['account'"),
    ({"interactions.csv": "user_id,item_id,timestamp,engagement\nu,i,1,1\n",
      "items.csv": "id,title\ni,x\n"}, {},
     r"items.csv: the items file has no column 'item_id'; its columns are \['id', 'title'\]"),
    ({"interactions.csv": "user_id,item_id,timestamp,engagement\nu,i,1,1\n",
      "users.csv": "user_id,plan\nu,x\n"}, {"user_features": ("country",)},
     r"users.csv: the users file has no column 'country'; its columns are \['user_id', "
     r"'plan'\]"),
])
def test_a_missing_column_names_the_file_and_the_columns_it_has(tmp_path, files, format_args,
                                                                 match):
  with pytest.raises(schema.DataError, match=match):
    _read(_write(tmp_path, files), **format_args)


@pytest.mark.parametrize("row, match", [
    ("u2,i1,yesterday,10,60", r"interactions.csv: row 2, column 'timestamp': 'yesterday' is "
                              "not a time"),
    ("u2,i1,5,ten,60", r"row 2, column 'watch_seconds': 'ten' is NaN or not a non-negative"),
    ("u2,i1,5,10,0", r"row 2, column 'runtime_seconds': '0' is NaN or not a positive"),
    (",i1,5,10,60", r"row 2, column 'user_id': '' is not an id"),
    ("u2,i1,5,10", r"interactions.csv: line 3: expected 5 fields, found 4: 'u2,i1,5,10'"),
])
def test_an_unparsable_value_names_file_row_column_and_value(tmp_path, row, match):
  folder = _write(tmp_path, {"interactions.csv": "user_id,item_id,timestamp,watch_seconds,"
                                                 f"runtime_seconds\nu1,i1,1,10,60\n{row}\n"})
  with pytest.raises(schema.DataError, match=match + ".*skip_bad_lines"):
    _read(folder)


def test_an_unparsable_year_names_the_items_file(tmp_path):
  folder = _write(tmp_path, {"interactions.csv": "user_id,item_id,timestamp,engagement\n"
                                                 "u,i1,1,1\n",
                             "items.csv": "item_id,year\ni1,1999\ni2,nineteen\n"})
  with pytest.raises(schema.DataError,
                     match=r"items.csv: row 2, column 'year': 'nineteen' is not a whole number"):
    _read(folder)


@pytest.mark.parametrize("value", ["NaN", "1.5", "-0.1", "nan"])
def test_nan_or_out_of_range_engagement_is_rejected_when_read(tmp_path, value):
  folder = _write(tmp_path, {"interactions.csv": "user_id,item_id,timestamp,engagement\n"
                                                 f"u,i1,1,0.5\nu,i2,2,{value}\n"})
  with pytest.raises(schema.DataError,
                     match=rf"row 2, column 'engagement': '{value}' is NaN or outside \[0, 1\]"):
    _read(folder)


def test_nan_engagement_in_parquet_is_rejected(tmp_path):
  tmp_path.mkdir(exist_ok=True)
  pq.write_table(pa.table({"user_id": ["u", "u"], "item_id": ["a", "b"], "timestamp": [1, 2],
                           "engagement": [0.5, float("nan")]}), tmp_path / "interactions.parquet")
  with pytest.raises(schema.DataError, match=r"row 2, column 'engagement': nan is NaN"):
    _read(str(tmp_path))


def test_skip_bad_lines_counts_the_skipped_rows_per_file(tmp_path, caplog):
  folder = _write(tmp_path, {
      "interactions.csv": "user_id,item_id,timestamp,engagement\n"
                          "u1,i1,1,0.5\n"
                          "u1,i2,2\n"  # too few fields
                          "u1,i2,yesterday,0.5\n"
                          "u1,i2,3,NaN\n"
                          "u1,i2,4,2\n"  # out of range
                          "u1,i2,5,0.9\n",
      "items.csv": "item_id,title\ni1,One\ni1,One again\ni2,Two\n"})
  with caplog.at_level(logging.WARNING):
    log = _read(folder, skip_bad_lines=True)
  assert log.metadata["skipped_rows"] == {"interactions.csv": 4, "items.csv": 1}
  np.testing.assert_array_equal(log.interactions.timestamp, [1, 5])
  np.testing.assert_array_equal(log.items.title, ["One", "Two"])  # The first row is kept.
  assert "Skipped 4 bad row(s)" in caplog.text and "line 3: expected 4 fields" in caplog.text
  # Row numbers count the skipped malformed row: 'yesterday' is the file's third data row.
  assert "row 3, column 'timestamp': 'yesterday'" in caplog.text
  assert "Skipped 1 bad row(s)" in caplog.text and "is listed twice" in caplog.text


def test_an_id_listed_twice_in_the_items_file_is_an_error(tmp_path):
  folder = _write(tmp_path, {"interactions.csv": "user_id,item_id,timestamp,engagement\n"
                                                 "u,i1,1,1\n",
                             "items.csv": "item_id,title\ni1,One\ni1,Again\n"})
  with pytest.raises(schema.DataError, match=r"items.csv: row 2, column 'item_id': 'i1' is "
                                             "listed twice"):
    _read(folder)


def test_duplicate_interactions_are_counted_and_dropped(tmp_path, caplog):
  folder = _write(tmp_path, {"interactions.csv": "user_id,item_id,timestamp,engagement\n"
                                                 "u,i1,1,0.25\nu,i1,1,0.75\nu,i1,2,1\n"
                                                 "v,i1,1,1\n"})
  with caplog.at_level(logging.WARNING):
    log = _read(folder)
  assert log.metadata["duplicate_rows"] == 1 and "dropped 1 duplicate" in caplog.text
  np.testing.assert_allclose(log.interactions.engagement, [0.25, 1.0, 1.0])  # First kept.


def test_log_items_and_users_missing_from_their_files_are_counted(tmp_path):
  folder = _write(tmp_path, {"interactions.csv": "user_id,item_id,timestamp,engagement\n"
                                                 "u,i1,1,1\nv,i2,2,1\n",
                             "items.csv": "item_id,title\ni1,One\n",
                             "users.csv": "user_id,plan\nu,basic\n"})
  log = _read(folder, user_features=("plan",))
  assert log.metadata["items_without_metadata"] == 1
  assert log.metadata["users_without_features"] == 1
  np.testing.assert_array_equal(log.items.title, ["One", ""])
  np.testing.assert_array_equal(log.users.features["plan"], ["basic", ""])


def test_missing_or_ambiguous_files_are_named(tmp_path):
  _write(tmp_path / "a", {"ratings.csv": "x\n"})
  with pytest.raises(schema.DataError, match=r"no interactions file.*it holds \['ratings.csv'\]"):
    _read(str(tmp_path / "a"))
  folder = _write(tmp_path / "b", {"interactions.csv": "x\n", "interactions.parquet": "x"})
  with pytest.raises(schema.DataError, match="several interactions tables"):
    _read(folder)
  with pytest.raises(schema.DataError, match="is not a directory"):
    _read(str(tmp_path / "nowhere"))
  folder = _write(tmp_path / "c", {"interactions.csv": "user_id,item_id,timestamp,engagement\n"})
  with pytest.raises(schema.DataError, match="hold no rows"):
    _read(folder)
  with pytest.raises(schema.DataError, match="no users file"):
    _read(folder, user_features=("plan",))


@pytest.mark.parametrize("data, match", [
    ({"columns": {"account": "user"}}, r"data.columns: unknown column 'account'"),
    ({"columns": {"user_id": ""}}, r"data.columns.user_id: expected a column name"),
    ({"genre_separator": ""}, "data.genre_separator must not be empty"),
    ({"item_features": ["title"]}, r"data.item_features: \['title'\] are standard"),
    ({"user_features": ["plan", "plan"]}, "data.user_features: expected distinct"),
    ({"columns": ["user_id"]}, "data.columns: expected a mapping"),
    ({"abandonment_threshold": 1.0}, r"data.abandonment_threshold must be in \[0, 1\)"),
])
def test_the_data_config_checks_the_watch_log_keys(data, match):
  with pytest.raises(ValueError, match=match):
    config_lib.apply_overrides(config_lib.ExperimentConfig(), {"data": data})


def test_the_data_config_takes_a_column_mapping():
  config = config_lib.override(config_lib.ExperimentConfig(),
                               "data: {dataset: watch_log, columns: {user_id: account}}")
  assert config.data.columns == {"user_id": "account"}
  assert config_lib.to_dict(config)["data"]["columns"] == {"user_id": "account"}
