"""End-to-end test of the experiment binaries, run as a user runs them, on the tiny log."""

import json
import os
import subprocess
import sys

import yaml

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(script, *args):
  result = subprocess.run([sys.executable, os.path.join(_ROOT, "experiments", script), *args],
                          capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stdout + result.stderr
  return result.stdout


def test_train_then_evaluate_write_their_artifacts(tmp_path):
  model_dir, tfds_dir = str(tmp_path / "run"), str(tmp_path / "tfds")
  common = [f"--model_dir={model_dir}", f"--tfds_data_dir={tfds_dir}"]
  output = _run("train.py", "--dataset=streaming_logs/tiny", "--seed=3",
                "--params_override=data: {max_len: 20}\neval: {phns: {num_candidates: 30}}",
                *common)
  assert "Validation metrics of popularity" in output and "full_ranking" in output
  with open(os.path.join(model_dir, "params.yaml"), encoding="utf-8") as f:
    params = yaml.safe_load(f)
  assert params["data"]["dataset"] == "streaming_logs/tiny"
  assert params["data"]["max_len"] == 20 and params["seed"] == 3
  assert params["eval"]["phns"]["num_candidates"] == 30
  with open(os.path.join(model_dir, "metrics_validation.json"), encoding="utf-8") as f:
    validation = json.load(f)
  assert set(validation) == {"full_ranking", "phns_test"}
  assert os.listdir(os.path.join(model_dir, "logs", "validation"))

  output = _run("evaluate.py", *common)
  assert "Test metrics of popularity on streaming_logs/tiny" in output
  with open(os.path.join(model_dir, "metrics_test.json"), encoding="utf-8") as f:
    test = json.load(f)
  # Same split as in training (one test per validation user), and the printed table shows the
  # JSON's numbers.
  assert test["full_ranking"]["num_examples"] == validation["full_ranking"]["num_examples"]
  assert f"{test['full_ranking']['ndcg@10']:.4f}" in output
