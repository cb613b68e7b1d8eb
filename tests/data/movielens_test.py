"""Tests of the MovieLens TFDS builder and loader, prepared offline from tiny files."""

import logging
import os
import socket

import numpy as np
import pytest
from tensorflow_datasets.core.utils import gcs_utils

from tfrs_smoe.data import movielens
from tfrs_smoe.data import schema


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
  """Fails any test whose preparation looks for the data on GCS or opens a connection."""
  def refuse(*args, **kwargs):
    raise AssertionError(f"MovieLens tried to use the network: {args}")
  # TFDS reaches GCS through TensorFlow's file system, not Python sockets, so both are blocked.
  monkeypatch.setattr(gcs_utils, "is_dataset_on_gcs", refuse)
  monkeypatch.setattr(gcs_utils, "download_gcs_dataset", refuse)
  monkeypatch.setattr(socket.socket, "connect", refuse)
  monkeypatch.setattr(socket, "create_connection", refuse)


def _write(directory, files):
  directory.mkdir(parents=True, exist_ok=True)
  for name, text in files.items():
    (directory / name).write_bytes(text.encode("latin-1" if name in ("u.item", "movies.dat")
                                               else "utf-8"))
  return str(directory)


def _flags(*on):
  return "|".join("1" if i in on else "0" for i in range(19))


_100K = {
    "u.item": f"10|Café Society (1995)|01-Jan-1995||http://x|{_flags(5, 8)}\n"
              f"20|unknown||||{_flags(0)}\n",
    "u.data": "1\t20\t3\t881250951\n2\t20\t1\t881250950\n1\t10\t5\t881250949\n",
    "u.user": "1|24|M|technician|85711\n2|53|F|other|94043\n",
}
_1M = {
    "movies.dat": "1::Toy Story (1995)::Animation|Comedy\n2::Amélie (2001)::Comedy|Romance\n",
    "users.dat": "1::F::1::10::48067\n2::M::56::16::70072\n",
    "ratings.dat": "2::2::2::978300761\n1::1::5::978300760\n",
}
_LATEST_SMALL = {
    "movies.csv": "movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n"
                  '11,"American President, The (1995)",(no genres listed)\n',
    "ratings.csv": "userId,movieId,rating,timestamp\n1,11,0.5,964982224\n2,1,4.0,964982703\n"
                   "1,1,3.5,964982800\n",
}


@pytest.mark.parametrize("format_name, files, expected", [
    ("100k", _100K, {
        "user_id": ["1", "2", "1"], "item_id": ["10", "20", "20"],
        "timestamp": [881250949, 881250950, 881250951], "engagement": [1.0, 0.2, 0.6],
        "items": (["10", "20"], ["Café Society (1995)", "unknown"], ["Comedy|Drama", ""],
                  [1995, 0]),
        "users": (["1", "2"], {"age": [24, 53], "gender": ["M", "F"],
                               "occupation": ["technician", "other"], "zip": ["85711", "94043"]}),
    }),
    ("1m", _1M, {
        "user_id": ["1", "2"], "item_id": ["1", "2"], "timestamp": [978300760, 978300761],
        "engagement": [1.0, 0.4],
        "items": (["1", "2"], ["Toy Story (1995)", "Amélie (2001)"],
                  ["Animation|Comedy", "Comedy|Romance"], [1995, 2001]),
        "users": (["1", "2"], {"age": [1, 56], "gender": ["F", "M"], "occupation": ["10", "16"],
                               "zip": ["48067", "70072"]}),
    }),
    ("latest-small", _LATEST_SMALL, {
        "user_id": ["1", "2", "1"], "item_id": ["11", "1", "1"],
        "timestamp": [964982224, 964982703, 964982800], "engagement": [0.1, 0.8, 0.7],
        "items": (["1", "11"], ["Toy Story (1995)", "American President, The (1995)"],
                  ["Adventure|Animation", ""], [1995, 1995]),
        "users": None,
    }),
])
def test_prepares_offline_and_loads_the_watch_log(tmp_path, format_name, files, expected):
  manual_dir = _write(tmp_path / "raw", files)
  log = movielens.load_movielens(manual_dir, format_name, data_dir=str(tmp_path / "tfds"))
  assert log.name == f"movielens/{format_name}"
  assert log.abandonment_threshold == pytest.approx(0.4)
  interactions = log.interactions
  np.testing.assert_array_equal(interactions.user_id, expected["user_id"])
  np.testing.assert_array_equal(interactions.item_id, expected["item_id"])
  np.testing.assert_array_equal(interactions.timestamp, expected["timestamp"])
  np.testing.assert_allclose(interactions.engagement, expected["engagement"], rtol=1e-6)
  np.testing.assert_allclose(interactions.rating, np.array(expected["engagement"]) * 5, rtol=1e-6)
  item_id, title, genres, year = expected["items"]
  np.testing.assert_array_equal(log.items.item_id, item_id)
  np.testing.assert_array_equal(log.items.title, title)
  np.testing.assert_array_equal(log.items.genres, genres)
  np.testing.assert_array_equal(log.items.year, year)
  np.testing.assert_array_equal(log.items.runtime_seconds, [0.0] * len(item_id))
  if expected["users"] is None:
    assert log.users is None
  else:
    user_id, features = expected["users"]
    np.testing.assert_array_equal(log.users.user_id, user_id)
    assert sorted(log.users.features) == sorted(features)
    for name, values in features.items():
      np.testing.assert_array_equal(log.users.features[name], values, err_msg=name)

  reloaded = movielens.MovieLens(config=format_name, data_dir=str(tmp_path / "tfds"))
  assert reloaded.is_prepared()
  assert reloaded.info.metadata["skipped_lines"] == {name: 0 for name in files}
  assert sorted(reloaded.info.metadata["source_files"]) == sorted(files)
  assert reloaded.info.metadata["abandonment_threshold"] == pytest.approx(0.4)
  assert reloaded.info.metadata["max_rating"] == 5.0


def test_skipped_lines_are_counted_persisted_and_kept_apart_from_strict_data(tmp_path):
  files = dict(_LATEST_SMALL,
               **{"ratings.csv": _LATEST_SMALL["ratings.csv"] + "2,11,nan,964982900\n"})
  manual_dir = _write(tmp_path / "raw", files)
  data_dir = str(tmp_path / "tfds")
  with pytest.raises(schema.DataError, match=r"ratings\.csv:5: rating 'nan'"):
    movielens.load_movielens(manual_dir, data_dir=data_dir)
  assert not movielens.MovieLens(config="latest-small", data_dir=data_dir).is_prepared()

  log = movielens.load_movielens(manual_dir, data_dir=data_dir, skip_bad_lines=True)
  assert len(log.interactions) == 3
  config = movielens.movielens_config("latest-small", skip_bad_lines=True)
  assert config.name == "latest-small-skip_bad_lines"
  reloaded = movielens.MovieLens(config=config, data_dir=data_dir)
  assert reloaded.info.metadata["skipped_lines"] == {"movies.csv": 0, "ratings.csv": 1}
  assert os.path.isdir(os.path.join(data_dir, "movielens", "latest-small-skip_bad_lines"))


def test_data_from_other_files_is_prepared_again(tmp_path):
  data_dir = str(tmp_path / "tfds")
  first = _write(tmp_path / "first", _LATEST_SMALL)
  second = _write(tmp_path / "second", dict(
      _LATEST_SMALL, **{"ratings.csv": "userId,movieId,rating,timestamp\n3,1,5.0,964990000\n"}))
  assert len(movielens.load_movielens(first, data_dir=data_dir).interactions) == 3
  log = movielens.load_movielens(second, data_dir=data_dir, abandonment_rating=3.0)
  np.testing.assert_array_equal(log.interactions.user_id, ["3"])
  assert log.abandonment_threshold == pytest.approx(0.6)
  assert len(movielens.load_movielens(first, data_dir=data_dir).interactions) == 3


def test_100k_needs_the_user_file_its_features_are_declared_for(tmp_path):
  files = {name: text for name, text in _100K.items() if name != "u.user"}
  manual_dir = _write(tmp_path / "raw", files)
  with pytest.raises(schema.DataError, match=r"missing from .*raw: u\.user"):
    movielens.load_movielens(manual_dir, "100k", data_dir=str(tmp_path / "tfds"))


def test_missing_files_fail_before_preparing(tmp_path):
  manual_dir = _write(tmp_path / "raw", {"ratings.csv": _LATEST_SMALL["ratings.csv"]})
  with pytest.raises(schema.DataError, match=r"'latest-small' files missing .*movies\.csv"):
    movielens.load_movielens(manual_dir, data_dir=str(tmp_path / "tfds"))


def test_configs():
  assert sorted(movielens.MovieLens.builder_configs) == ["100k", "1m", "latest-small"]
  assert movielens.MovieLens.DEFAULT_CONFIG_NAME == "latest-small"
  assert movielens.movielens_config("1m") is movielens.MovieLens.builder_configs["1m"]
  with pytest.raises(ValueError, match="Unknown MovieLens format"):
    movielens.MovieLensConfig(name="x", format="25m")
  with pytest.raises(ValueError, match="abandonment_rating"):
    movielens.MovieLensConfig(name="x", format="1m", abandonment_rating=5.0)


def test_duplicate_ratings_are_dropped_persisted_and_reported_on_reuse(tmp_path, caplog):
  files = dict(_LATEST_SMALL,
               **{"ratings.csv": _LATEST_SMALL["ratings.csv"] + "2,1,4.0,964982703\n"})
  manual_dir = _write(tmp_path / "raw", files)
  data_dir = str(tmp_path / "tfds")
  assert len(movielens.load_movielens(manual_dir, data_dir=data_dir).interactions) == 3
  reloaded = movielens.MovieLens(config="latest-small", data_dir=data_dir)
  assert reloaded.info.metadata["duplicate_rows"] == 1
  # Data prepared before duplicates were dropped (1.0.0) is never reused.
  assert os.path.isdir(os.path.join(data_dir, "movielens", "latest-small", "1.1.0"))
  with caplog.at_level(logging.WARNING):
    assert len(movielens.load_movielens(manual_dir, data_dir=data_dir).interactions) == 3
  assert "and 1 duplicate rating row(s) dropped" in caplog.text
