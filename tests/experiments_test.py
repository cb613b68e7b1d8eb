"""End-to-end test of the experiment binaries, run as a user runs them, on the tiny log."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import yaml

from tfrs_smoe import reporting

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(script, *args):
  result = subprocess.run([sys.executable, os.path.join(_ROOT, "experiments", script), *args],
                          capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stdout + result.stderr
  return result.stdout


def test_train_then_evaluate_write_their_artifacts(tmp_path, tiny_tfds_dir):
  model_dir, tfds_dir = str(tmp_path / "run"), tiny_tfds_dir
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
  assert set(validation) == {"full_ranking", "phns_test", "next_k"}
  assert os.listdir(os.path.join(model_dir, "logs", "validation"))

  output = _run("evaluate.py", *common)
  assert "Test metrics of popularity on streaming_logs/tiny" in output
  with open(os.path.join(model_dir, "metrics_test.json"), encoding="utf-8") as f:
    test = json.load(f)
  # Same split as in training (one test per validation user), and the printed table shows the
  # JSON's numbers.
  assert test["full_ranking"]["num_examples"] == validation["full_ranking"]["num_examples"]
  assert f"{test['full_ranking']['ndcg@10']:.4f}" in output


def test_train_smoe_bst_then_evaluate_restores_it(tmp_path, tiny_tfds_dir, retrieval_comparison):
  model_dir, tfds_dir = str(tmp_path / "run"), tiny_tfds_dir
  common = [f"--model_dir={model_dir}", f"--tfds_data_dir={tfds_dir}"]
  small = ("model: {encoder: {item_dim: 8, genre_dim: 4, year_dim: 4, expert_windows: [3, 0], "
           "num_blocks: 1, feed_forward_dim: 16}}\ndata: {max_len: 10}\ntrain: {epochs: 1}\n"
           "eval: {phns_test: false}")
  # (train.py's own --export_dir, and its printed serving instructions, are tested by
  # test_train_with_a_mirrored_strategy_on_two_logical_cpus: one export fewer here.)
  output = _run("train.py", "--dataset=streaming_logs/tiny", "--model=smoe_bst",
                f"--params_override={small}", *common)
  assert "Validation metrics of smoe_bst" in output and "gate_weight_0" in output
  with open(os.path.join(model_dir, "params.yaml"), encoding="utf-8") as f:
    params = yaml.safe_load(f)
  assert params["model"]["name"] == "smoe_bst"
  assert params["model"]["encoder"]["expert_windows"] == [3, 0]
  with open(os.path.join(model_dir, "metrics_validation.json"), encoding="utf-8") as f:
    trained = json.load(f)
  output = _run("evaluate.py", "--split=validation", *common)
  assert "Validation metrics of smoe_bst on streaming_logs/tiny" in output
  with open(os.path.join(model_dir, "metrics_validation.json"), encoding="utf-8") as f:
    assert json.load(f) == trained  # The checkpoint restores the trained model exactly.

  # Two stages: a two-tower retriever trained on the same data (the streaming-corrected run of
  # the retrieval comparison, max_len 10 too), re-ranked by smoe_bst.
  retrieval_dir = str(retrieval_comparison / "streaming_logs_tiny" / "streaming_engagement_seed0")
  output = _run("export.py", *common, f"--export_dir={tmp_path / 'exports'}", "--k=5",
                f"--retrieval_model_dir={retrieval_dir}", "--num_candidates=20")
  assert f"Exported a servable model to {tmp_path / 'exports' / '1'}" in output
  loaded = tf.saved_model.load(str(tmp_path / "exports" / "1"))
  answer = loaded.signatures["recommend"](history=tf.constant([["no such item"]]))
  assert answer["item_ids"].shape == (1, 5) and answer["scores"].shape == (1, 5)
  assert hasattr(loaded, "retriever")  # The export holds both stages.
  # A known history: 5 distinct re-ranked items, none of them already watched.
  history = answer["item_ids"].numpy()[:, :2]
  reranked = loaded.signatures["recommend"](history=tf.constant(history))["item_ids"].numpy()[0]
  assert len(set(reranked)) == 5 and not set(reranked) & set(history[0])


def test_model_comparison_writes_a_table_over_seeds(tmp_path, tiny_tfds_dir):
  output_dir = tmp_path / "comparison"
  tiny = ("data: {dataset: streaming_logs/tiny, max_len: 10}\ntrain: {epochs: 1}\n"
          "model: {encoder: {item_dim: 8, genre_dim: 4, year_dim: 4, num_blocks: 1, "
          "feed_forward_dim: 16}}\neval: {phns: {num_candidates: 30}}")
  output = _run("model_comparison.py", f"--output_dir={output_dir}",
                f"--tfds_data_dir={tiny_tfds_dir}", "--datasets=streaming_logs",
                "--models=popularity,bst", "--seeds=0,1", "--protocols=default,implicit",
                f"--params_override={tiny}")
  assert "Written to" in output
  with open(output_dir / "model_comparison.json", encoding="utf-8") as f:
    runs = json.load(f)
  assert [len(runs[f"streaming_logs/tiny/{protocol}/{model}"])
          for protocol in ("engagement", "implicit") for model in ("popularity", "bst")] == [
              1, 2, 1, 2]
  bst_ndcg = [run["results"]["full_ranking"]["ndcg@10"]
              for run in runs["streaming_logs/tiny/engagement/bst"]]
  table = (output_dir / "model_comparison.md").read_text(encoding="utf-8")
  rows = [line for line in table.splitlines() if "| bst | full ranking |" in line]
  assert len(rows) == 2 and "| engagement |" in rows[0]
  assert f"{np.mean(bst_ndcg):.4f} ± {np.std(bst_ndcg):.4f}" in rows[0]


@pytest.fixture(scope="module", name="retrieval_comparison")
def _retrieval_comparison(tmp_path_factory, tiny_tfds_dir):
  """experiments/retrieval_comparison.py run once: its output_dir, after checking its output.

  Its streaming-corrected two-tower run (max_len 10) is also the first stage of
  `test_train_smoe_bst_then_evaluate_restores_it`, which only reads it.
  """
  output_dir = tmp_path_factory.mktemp("retrieval_comparison") / "retrieval"
  tiny = ("data: {dataset: streaming_logs/tiny, max_len: 10}\ntrain: {epochs: 1, batch_size: 64}\n"
          "model: {encoder: {item_dim: 8, genre_dim: 4, year_dim: 4}, two_tower: "
          "{query_hidden_units: [16], candidate_hidden_units: [16], num_buckets: 1000}}")
  output = _run("retrieval_comparison.py", f"--output_dir={output_dir}",
                f"--tfds_data_dir={tiny_tfds_dir}", "--datasets=streaming_logs",
                "--corrections=none,streaming", "--seeds=0", f"--params_override={tiny}")
  assert "Written to" in output
  return output_dir


def test_retrieval_comparison_writes_a_table_per_correction(retrieval_comparison):
  output_dir = retrieval_comparison
  with open(output_dir / "retrieval_comparison.json", encoding="utf-8") as f:
    runs = json.load(f)
  assert sorted(runs) == ["streaming_logs/tiny/engagement/none",
                          "streaming_logs/tiny/engagement/streaming"]
  recall_at_100 = runs["streaming_logs/tiny/engagement/streaming"][0]["results"][
      "full_ranking"]["recall@100"]
  table = (output_dir / "retrieval_comparison.md").read_text(encoding="utf-8")
  assert "| recall@10 | recall@50 | recall@100 | ndcg@10 |" in table
  row = [line for line in table.splitlines() if "| streaming | full ranking |" in line]
  assert len(row) == 1 and f"{recall_at_100:.4f} ± 0.0000" in row[0]
  with open(output_dir / "streaming_logs_tiny" / "streaming_engagement_seed0" / "params.yaml",
            encoding="utf-8") as f:
    params = yaml.safe_load(f)
  assert params["model"]["two_tower"]["correction"] == "streaming"
  assert params["train"]["monitor"] == "recall@10" and params["eval"]["ks"][-1] == 100


def test_report_writes_tables_plots_and_cost_per_epoch(tmp_path, tiny_tfds_dir):
  output_dir = tmp_path / "report"
  tiny = ("data: {dataset: streaming_logs/tiny, max_len: 10}\ntrain: {epochs: 2}\n"
          "model: {encoder: {item_dim: 8, genre_dim: 4, year_dim: 4, expert_windows: [3, 0], "
          "num_blocks: 1, feed_forward_dim: 16}, two_tower: {query_hidden_units: [16], "
          "candidate_hidden_units: [16], num_buckets: 1000}}\neval: {phns: {num_candidates: 30}}")
  readme = tmp_path / "docs" / "results.md"  # The page of the published results.
  readme.parent.mkdir()
  movielens_section = ("<!-- begin experiments/report.py movielens -->\nMovieLens results.\n"
                       "<!-- end experiments/report.py movielens -->")
  readme.write_text("# Results\n<!-- begin experiments/report.py streaming_logs -->\n"
                    f"<!-- end experiments/report.py streaming_logs -->\n{movielens_section}\n"
                    "Hand-written.\n", encoding="utf-8")
  flags = [f"--output_dir={output_dir}", f"--tfds_data_dir={tiny_tfds_dir}",
           "--datasets=streaming_logs,movielens", f"--movielens_dir={tmp_path / 'absent'}",
           "--variants=popularity,two_tower_streaming,smoe_bst_next_k_3",
           "--seeds=1", f"--params_override={tiny}", f"--readme={readme}",
           "--dataset_params_override={streaming_logs: {model: {encoder: {dropout: 0.3}}, "
           "data: {next_k: 2, soft_labels: [1.0, 0.5]}}}"]
  output = _run("report.py", *flags)
  assert "Skipping MovieLens" in output
  table = (output_dir / "report_streaming_logs.md").read_text(encoding="utf-8")
  section = reporting.generated_section(str(readme), "experiments/report.py streaming_logs")
  assert section.startswith(table.strip()) and "![Gate weight" in section
  # The skipped data set's section and the hand-written text stay as they were.
  assert readme.read_text(encoding="utf-8").endswith(f"-->\n{movielens_section}\nHand-written.\n")
  assert f"; {reporting.machine_description()}; command: " in table  # Where it trained.
  assert "--datasets=streaming_logs --variants=" in table and "| s/epoch |" in table
  with open(output_dir / "report_streaming_logs.json", encoding="utf-8") as f:
    runs = json.load(f)
  for variant in ("popularity", "two_tower_streaming", "smoe_bst_next_k_3"):
    for evaluation in ("full ranking", "phns test"):
      assert f"| streaming_logs/tiny | {variant} | {evaluation} |" in table
  smoe = runs["streaming_logs/tiny/smoe_bst_next_k_3"][0]
  row = [line for line in table.splitlines()
         if "| smoe_bst_next_k_3 | full ranking |" in line][0]
  assert smoe["epochs_run"] == smoe["epochs"]  # Not resumed: every epoch timed.
  assert f"{smoe['train_seconds'] / smoe['epochs']:.1f} |" in row
  params = yaml.safe_load((output_dir / "streaming_logs_tiny" / "smoe_bst_next_k_3_seed1" /
                           "params.yaml").read_text(encoding="utf-8"))
  assert params["seed"] == 1 and params["train"]["phns"]["seed"] == 1
  # The variant's switch wins over the data set's next_k; the data set's dropout stays.
  assert params["data"]["next_k"] == 3 and params["data"]["soft_labels"] == [1.0, 0.6, 0.3]
  assert params["model"]["encoder"]["dropout"] == 0.3
  two_tower = yaml.safe_load((output_dir / "streaming_logs_tiny" / "two_tower_streaming_seed1" /
                              "params.yaml").read_text(encoding="utf-8"))
  assert two_tower["train"]["batch_size"] == 512 and two_tower["train"]["epochs"] == 2
  plots = [f"report_streaming_logs_{name}.png" for name in ("metrics", "gates", "curves")]
  for plot in plots:
    assert (output_dir / plot).stat().st_size > 0
    assert f"]({plot})" in section and (tmp_path / "docs" / plot).stat().st_size > 0
  with np.load(output_dir / "streaming_logs_tiny" / "smoe_bst_next_k_3_seed1" /
               "test_gate_weights.npz") as gates:
    weights = gates["weights"]
  assert weights.shape == (smoe["results"]["full_ranking"]["num_examples"],
                           len(params["model"]["encoder"]["expert_windows"]))
  np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)

  # The runs' records alone rebuild the same report and plots, without training.
  records = {"params.yaml", "outcome.json", "history.json", "test_gate_weights.npz"}
  for path in sorted(output_dir.rglob("*"), reverse=True):
    if path.is_file() and path.name not in records:
      path.unlink()
    elif path.is_dir() and not any(path.iterdir()):
      path.rmdir()
  assert not list(output_dir.rglob("checkpoint"))
  _run("report.py", *flags, "--resume")
  assert (output_dir / "report_streaming_logs.md").read_text(encoding="utf-8") == table
  for plot in plots:
    assert (output_dir / plot).stat().st_size > 0

  # Runs recorded on two machines: each variant's machine is named, as times compare only
  # within one machine.
  outcome_path = output_dir / "streaming_logs_tiny" / "two_tower_streaming_seed1" / "outcome.json"
  outcome = json.loads(outcome_path.read_text(encoding="utf-8"))
  outcome["machine"] = "Zilog Z80, 1 cores, TensorFlow 2.21.0"
  outcome_path.write_text(json.dumps(outcome), encoding="utf-8")
  _run("report.py", *flags, "--resume")
  mixed = (output_dir / "report_streaming_logs.md").read_text(encoding="utf-8")
  here = reporting.machine_description()
  machines = sorted([here, outcome["machine"]])
  assert (f"; A = {machines[0]}; B = {machines[1]}; s/epoch compares runs of one machine only; "
          "command: ") in mixed
  assert "| train s/run | s/epoch | machine |" in mixed
  letter = dict(zip(machines, "AB"))
  for variant in ("popularity", "two_tower_streaming", "smoe_bst_next_k_3"):
    machine = letter[outcome["machine"] if variant == "two_tower_streaming" else here]
    rows = [line for line in mixed.splitlines() if f"| {variant} |" in line]
    assert len(rows) == 2 and all(row.endswith(f" | {machine} |") for row in rows)


def test_train_with_a_mirrored_strategy_on_two_logical_cpus(tmp_path, tiny_tfds_dir):
  model_dir = tmp_path / "run"
  small = ("model: {encoder: {item_dim: 8, genre_dim: 4, year_dim: 4, expert_windows: [3, 0], "
           "num_blocks: 1, feed_forward_dim: 16}}\ndata: {max_len: 10}\ntrain: {epochs: 2}\n"
           "eval: {phns_test: false}")
  output = _run("train.py", "--dataset=streaming_logs/tiny", "--model=smoe_bst",
                "--strategy=mirrored", "--num_cpu_devices=2", f"--params_override={small}",
                f"--model_dir={model_dir}", f"--tfds_data_dir={tiny_tfds_dir}",
                f"--export_dir={tmp_path / 'exports'}")
  assert "Validation metrics of smoe_bst" in output
  assert os.path.exists(tmp_path / "exports" / "1" / "saved_model.pb")
  assert f"Exported a servable model to {tmp_path / 'exports' / '1'}" in output
  assert "saved_model_cli show" in output and ":predict" in output
  with open(model_dir / "params.yaml", encoding="utf-8") as f:
    assert yaml.safe_load(f)["distribute"] == {"strategy": "mirrored", "num_cpu_devices": 2,
                                               "ps_min_shard_bytes": 256 << 10}
  with open(model_dir / "history.json", encoding="utf-8") as f:
    history = json.load(f)
  assert len(history["loss_softmax"]) == 2 and len(history["val_ndcg@10"]) == 2
  assert history["loss_softmax"][1] < history["loss_softmax"][0]


@pytest.fixture(scope="module", name="example_log")
def _example_log(tmp_path_factory):
  """The folders experiments/write_example_watch_log.py writes (csv/, parquet/, dirty/) for 40
  accounts and 50 titles, written once; the tests read them (prepared copies go to their own
  --tfds_data_dir)."""
  log = tmp_path_factory.mktemp("example_log") / "log"
  _run("write_example_watch_log.py", f"--output_dir={log}", "--num_users=40", "--num_titles=50")
  return log


def test_own_watch_log_trains_evaluates_and_exports_with_its_string_ids(tmp_path, example_log):
  """The README's "Your own data": the example script's Parquet log, with no code."""
  model_dir, tfds_dir = str(tmp_path / "run"), str(tmp_path / "tfds")
  common = [f"--model_dir={model_dir}", f"--tfds_data_dir={tfds_dir}"]
  tiny = ("data: {max_len: 10, columns: {user_id: account, item_id: title_id}}\n"
          "model: {sasrec: {dim: 8, num_blocks: 1, feed_forward_dim: 8}}\ntrain: {epochs: 1}\n"
          "eval: {phns_test: false}")
  output = _run("train.py", "--dataset=watch_log", f"--data_dir={example_log / 'parquet'}",
                "--model=sasrec", f"--params_override={tiny}",
                f"--export_dir={tmp_path / 'exports'}", *common)
  assert "Data watch_log" in output and "40 users" in output
  with open(os.path.join(model_dir, "params.yaml"), encoding="utf-8") as f:
    params = yaml.safe_load(f)
  assert params["data"]["data_dir"] == str(example_log / "parquet")
  assert params["data"]["columns"] == {"user_id": "account", "item_id": "title_id"}
  with open(os.path.join(model_dir, "vocabularies", "data.json"), encoding="utf-8") as f:
    recorded = json.load(f)
  assert sorted(recorded["source_files"]) == [
      "interactions/part-00000.parquet", "interactions/part-00001.parquet", "items.parquet",
      "users.parquet"]
  # evaluate.py and export.py rebuild the data from params.yaml alone.
  assert "Test metrics of sasrec on watch_log" in _run("evaluate.py", *common)
  _run("export.py", *common, f"--export_dir={tmp_path / 'exports'}", "--k=4")
  with open(os.path.join(model_dir, "vocabularies", "item_ids.txt"), encoding="utf-8") as f:
    item_ids = f.read().split()
  assert all(item_id.startswith("title-") for item_id in item_ids)
  loaded = tf.saved_model.load(str(tmp_path / "exports" / "2"))
  answer = loaded.signatures["recommend"](history=tf.constant([item_ids[:2]]))
  served = [i.decode("utf-8") for i in answer["item_ids"].numpy()[0]]
  assert len(served) == 4 and set(served) <= set(item_ids) - set(item_ids[:2])


def test_a_dirty_watch_log_names_the_bad_row(tmp_path, example_log):
  result = subprocess.run(
      [sys.executable, os.path.join(_ROOT, "experiments", "train.py"), "--dataset=watch_log",
       f"--data_dir={example_log / 'dirty'}", f"--model_dir={tmp_path / 'run'}",
       f"--tfds_data_dir={tmp_path / 'tfds'}"],
      capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode != 0
  assert ("dirty/interactions.csv: line " in result.stderr and
          "expected 5 fields, found 4: 'acct-broken" in result.stderr and
          "data.skip_bad_lines: true" in result.stderr), result.stderr[-2000:]


def test_named_item_and_user_columns_are_embedded_through_train_evaluate_and_export(
    tmp_path, example_log):
  """data.item_features / data.user_features of the example CSV log reach the model's weights."""
  model_dir, tfds_dir = str(tmp_path / "run"), str(tmp_path / "tfds")
  common = [f"--model_dir={model_dir}", f"--tfds_data_dir={tfds_dir}"]
  tiny = ("data: {max_len: 8, item_features: [maturity], user_features: [plan, country]}\n"
          "model: {encoder: {item_dim: 8, genre_dim: 4, year_dim: 4, user_dim: 0, "
          "feature_dim: 3, expert_windows: [2, 0], num_blocks: 1, feed_forward_dim: 8}}\n"
          "train: {epochs: 1}\neval: {phns_test: false}")
  output = _run("train.py", "--dataset=watch_log", f"--data_dir={example_log / 'csv'}",
                "--model=smoe_bst", f"--params_override={tiny}",
                f"--export_dir={tmp_path / 'exports'}", *common)
  assert "Validation metrics of smoe_bst" in output
  variables = [name for name, _ in tf.train.list_variables(
      os.path.join(model_dir, "checkpoints", "model"))]
  for name in ("maturity", "plan", "country"):
    assert any(name in v for v in variables), (name, variables)
  assert "Test metrics of smoe_bst on watch_log" in _run("evaluate.py", *common)
  loaded = tf.saved_model.load(str(tmp_path / "exports" / "1"))
  with open(os.path.join(model_dir, "vocabularies", "item_ids.txt"), encoding="utf-8") as f:
    item_ids = f.read().split()
  with open(os.path.join(model_dir, "vocabularies", "user_ids.txt"), encoding="utf-8") as f:
    user_ids = f.read().split()
  answer = loaded.signatures["recommend_for_user"](history=tf.constant([item_ids[:2]] * 2),
                                                   user_id=tf.constant(user_ids[:2]))
  assert answer["item_ids"].shape[0] == 2
