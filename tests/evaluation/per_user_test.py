"""Tests for tfrs_smoe.evaluation.per_user: the table, its CSV file and its errors."""

import os

import numpy as np
import pytest

from tfrs_smoe.evaluation.per_user import PerUserMetrics


def test_csv_round_trip_is_exact_and_atomic(tmp_path):
  rows = PerUserMetrics(user_id=np.array(["u1", "a,b", 'q"uote']),
                        metrics={"ndcg@10": np.float32([0.1, 1.0, 0.0]),
                                 "mrr@10": [1 / 3, 0.5, 0.0]})
  path = rows.write_csv(str(tmp_path / "run" / PerUserMetrics.file_name("test")))
  assert path.endswith("per_user_test.csv")
  assert os.listdir(tmp_path / "run") == ["per_user_test.csv"]  # No temporary left behind.
  with open(path, encoding="utf-8") as f:
    assert f.readline() == "user_id,ndcg@10,mrr@10\n"
  read = PerUserMetrics.read_csv(path)
  assert read == rows and read.source == path
  assert list(read.metrics) == ["ndcg@10", "mrr@10"]
  # float32 values survive exactly, so the file's mean is the protocol's mean.
  np.testing.assert_array_equal(read.metrics["ndcg@10"], np.float32([0.1, 1.0, 0.0]))
  assert read.mean() == pytest.approx({"ndcg@10": (float(np.float32(0.1)) + 1) / 3,
                                       "mrr@10": (1 / 3 + 0.5) / 3}, abs=1e-15)


def test_file_names():
  assert PerUserMetrics.file_name("validation") == "per_user_validation.csv"
  assert PerUserMetrics.file_name("test", "phns_test") == "per_user_test_phns_test.csv"


def test_from_mapping():
  rows = PerUserMetrics.from_mapping({"u1": {"ndcg@1": 1.0}, "u2": {"ndcg@1": 0.0}})
  assert rows.user_id.tolist() == ["u1", "u2"] and rows.mean() == {"ndcg@1": 0.5}
  with pytest.raises(ValueError, match="same metrics"):
    PerUserMetrics.from_mapping({"u1": {"ndcg@1": 1.0}, "u2": {"ndcg@5": 0.0}})


def test_bad_tables_and_files_raise(tmp_path):
  with pytest.raises(ValueError, match="shape"):
    PerUserMetrics(user_id=np.array(["u1"]), metrics={"ndcg@1": [1.0, 0.0]})
  with pytest.raises(ValueError, match="id column"):
    PerUserMetrics(user_id=np.array(["u1"]), metrics={"user_id": [1.0]})
  path = tmp_path / "bad.csv"
  path.write_text("user,ndcg@1\nu1,1.0\n", encoding="utf-8")
  with pytest.raises(ValueError, match="header"):
    PerUserMetrics.read_csv(str(path))
  path.write_text("user_id,ndcg@1\nu1,1.0,2.0\n", encoding="utf-8")
  with pytest.raises(ValueError, match=r"bad.csv:2: 3 fields"):
    PerUserMetrics.read_csv(str(path))
  path.write_text("user_id,ndcg@1\nu1,high\n", encoding="utf-8")
  with pytest.raises(ValueError, match=r"bad.csv:2"):
    PerUserMetrics.read_csv(str(path))
  with pytest.raises(FileNotFoundError):
    PerUserMetrics.read_csv(str(tmp_path / "missing.csv"))
