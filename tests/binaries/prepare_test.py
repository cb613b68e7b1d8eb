"""tfrs-smoe-prepare end to end: the files and statistics it writes, and its one-line errors."""

import json
import os
import subprocess
import sys

import numpy as np

from tfrs_smoe.data import splits
from tfrs_smoe.data import watch_log_files
from tfrs_smoe.data.preparation import shards

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(*args):
  return subprocess.run([sys.executable, os.path.join(_ROOT, "experiments", "prepare.py"), *args],
                        capture_output=True, text=True, timeout=300, check=False,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


def _watch_log(directory):
  directory.mkdir()
  rows = [f"acct-{u},tt-{(u * 7 + e) % 9},{1_704_067_200 + 600 * e + u},{(e % 4) * 20 + 1},60"
          for u in range(4) for e in range(7)]
  rows.append("acct-0,tt-1,not a time,10,60")
  rows.append(rows[0])  # A duplicate.
  (directory / "interactions.csv").write_text(
      "account,item_id,timestamp,watch_seconds,runtime_seconds\n" + "\n".join(rows) + "\n")
  return str(directory)


def test_prepare_writes_the_shards_vocabularies_and_statistics(tmp_path):
  data_dir = _watch_log(tmp_path / "log")
  output_dir = tmp_path / "prepared"
  result = _run("--dataset=watch_log", f"--data_dir={data_dir}", f"--output_dir={output_dir}",
                "--num_shards=3", "--beam_pipeline_options=--runner=DirectRunner,"
                "--direct_num_workers=1", "--params_override=data: {skip_bad_lines: true, "
                "columns: {user_id: account}}")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  assert result.stdout.startswith(f"Prepared watch_log into {output_dir}: 4 users, 9 items, "
                                  "28 events (1 bad rows skipped, 1 duplicates dropped)")
  names = sorted(os.listdir(output_dir))
  assert names == sorted(
      ["items.parquet", "popularity.npz", "statistics.json", "vocabularies"] +
      [f"{s}-0000{i}-of-00003.tfrecord" for s in ("train", "validation", "test")
       for i in range(3)])
  assert sorted(os.listdir(output_dir / "vocabularies")) == ["item_ids.txt", "user_ids.txt"]
  statistics = json.loads((output_dir / "statistics.json").read_text())
  assert statistics["bad_rows"] == {"interactions.csv": 1}
  assert statistics["duplicate_rows"] == 1 and statistics["rows_read"] == 29
  assert (statistics["num_users"], statistics["num_items"], statistics["events"]) == (4, 9, 28)
  log = watch_log_files.WatchLogFiles(data_dir, watch_log_files.WatchLogFormat(
      columns={"user_id": "account"}, skip_bad_lines=True)).read()
  split = splits.leave_one_out(log)
  prepared = shards.PreparedShards(output_dir)
  assert prepared.user_vocabulary() == split.user_vocabulary
  np.testing.assert_array_equal(prepared.examples("test").target, split.test.target)
  assert statistics["splits"]["train"]["events"] == len(split.train)
  # A second run refuses the non-empty output unless --overwrite.
  again = _run("--dataset=watch_log", f"--data_dir={data_dir}", f"--output_dir={output_dir}",
               "--params_override=data: {skip_bad_lines: true, columns: {user_id: account}}")
  assert again.returncode == 1
  assert again.stderr.strip().splitlines()[-1] == (
      f"prepare.py: output_dir {output_dir} is not empty; choose another, or overwrite it "
      "(--overwrite).")


def test_bad_input_is_one_line_naming_the_culprit(tmp_path):
  cases = [
      (("--dataset=watch_log", f"--data_dir={tmp_path / 'absent'}"),
       f"prepare.py: data.data_dir (--data_dir): no such directory: {tmp_path / 'absent'}"),
      (("--dataset=nope",), "prepare.py: data.dataset: Unknown dataset 'nope'; use "
       "streaming_logs[/tiny|small|medium|large], movielens[/100k|1m|latest-small] (the format "
       "is detected without it) or watch_log."),
  ]
  for args, message in cases:
    result = _run(*args, f"--output_dir={tmp_path / 'out'}")
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stderr.strip().splitlines() == [message], result.stderr[-2000:]
  # A bad row, found while the pipeline runs, is the reader's one line too.
  data_dir = _watch_log(tmp_path / "log")
  result = _run("--dataset=watch_log", f"--data_dir={data_dir}", f"--output_dir={tmp_path / 'o'}",
                "--params_override=data: {columns: {user_id: account}}")
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [
      f"prepare.py: {data_dir}/interactions.csv: row 29, column 'timestamp': 'not a time' is "
      "not a time (integer seconds since the epoch, or ISO 8601 such as 2024-03-01T20:15:00Z). "
      "Fix the file, or set data.skip_bad_lines: true to skip and count such rows."]
  assert not os.path.exists(tmp_path / "out")


def test_help_lists_the_flags_and_the_cluster_examples():
  result = subprocess.run([sys.executable, os.path.join(_ROOT, "experiments", "prepare.py"),
                           "--help"], capture_output=True, text=True, timeout=300, check=False)
  assert result.stdout.startswith("Prepares a watch log out of core on Apache Beam"), (
      result.stderr[-2000:])
  for text in ("--dataset", "--data_dir", "--output_dir", "--num_shards",
               "--beam_pipeline_options", "--params_override", "--[no]overwrite",
               "--runner=DataflowRunner", "--runner=FlinkRunner"):
    assert text in result.stdout, text
  for noise in ("absl::InitializeLog", "cudart_stub", "apitools"):
    assert noise not in result.stderr, result.stderr[-2000:]
