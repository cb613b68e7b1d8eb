"""Training, evaluation and PHNS from prepared shards give the in-memory path's answers.

The shards are read round-robin in user order (`shard_stream`), so the streamed examples are the
in-memory examples in the same order; with the same seed `EpochStream` shuffles them alike, the
PHNS negatives (from each example's own pools) are drawn alike, and a model trained from either
path ends with the same weights and the same validation and test metrics. Tiny logs only.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfrs_smoe import config as config_lib
from tfrs_smoe import experiment as experiment_lib
from tfrs_smoe.data import epoch_stream
from tfrs_smoe.data import hard_negatives
from tfrs_smoe.data import prepared_split
from tfrs_smoe.data import sequences
from tfrs_smoe.data import shard_stream
from tfrs_smoe.data import splits
from tfrs_smoe.data import synthetic
from tfrs_smoe.data.preparation import config as preparation_config
from tfrs_smoe.data.preparation import pipeline
from tfrs_smoe.tasks import engagement_multitask

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TINY = synthetic.SyntheticConfig(num_users=30, num_titles=40)
_ENCODER = {"item_dim": 8, "genre_dim": 4, "year_dim": 4, "user_dim": 4,
            "expert_windows": [2, 0], "num_blocks": 1, "feed_forward_dim": 16}


def _prepare(output_dir, data=None, num_shards=3):
  pipeline.PreparationPipeline(preparation_config.PreparationConfig(
      data or config_lib.DataConfig(), str(output_dir), num_shards=num_shards,
      synthetic=_TINY)).run()
  return str(output_dir)


@pytest.fixture(scope="module")
def log():
  return synthetic.generate_watch_log(_TINY)[0]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  return _prepare(tmp_path_factory.mktemp("prepared") / "out")


def _batches(dataset):
  return [{name: value.numpy() for name, value in batch.items()} for batch in dataset]


def _assert_batches_equal(actual, expected):
  assert len(actual) == len(expected)
  for got, want in zip(actual, expected):
    assert sorted(got) == sorted(want)
    for name in want:
      np.testing.assert_array_equal(got[name], want[name], err_msg=name)


@pytest.mark.parametrize("split_name", ["leave_one_out", "time"])
def test_streamed_batches_and_negatives_equal_the_in_memory_ones(tmp_path, log, split_name):
  data = config_lib.DataConfig(split=split_name)
  directory = _prepare(tmp_path / "out", data, num_shards=4)
  split = (splits.leave_one_out(log) if split_name == "leave_one_out" else splits.time_split(log))
  prepared_data = prepared_split.PreparedSplit(directory, data)
  phns = hard_negatives.PHNSConfig(preset="hard")
  sampler = hard_negatives.HardNegativeSampler.from_pools(prepared_data.pools(phns), phns)
  reference = hard_negatives.HardNegativeSampler.from_log(split.train, split.item_vocabulary.size,
                                                          phns)
  pipe = sequences.SequencePipeline(max_len=6)
  streamed = pipe.sequences_of_users(prepared_data.train_stream(sampler.user_pools).users(),
                                     all_chunks=True)
  in_memory = pipe.sequences(split.train, all_chunks=True).cache()
  # The seeded epoch order and its exact resumption (start_step) are the in-memory stream's.
  streams = [epoch_stream.EpochStream(examples, 8, seed=3, transform=negatives.add_negatives)
             for examples, negatives in ((streamed, sampler), (in_memory, reference))]
  assert streams[0].steps_per_epoch == streams[1].steps_per_epoch
  for start_step in (0, streams[0].steps_per_epoch + 1):
    _assert_batches_equal(_batches(streams[0].dataset(2, start_step)),
                          _batches(streams[1].dataset(2, start_step)))
  assert not prepared_data.train_loaded  # Streamed: the training log was never read whole.


def _config(name="smoe_bst", **overrides):
  return config_lib.apply_overrides(config_lib.ExperimentConfig(), {
      # The paper's multitask loss: its CTR and hinge terms read the PHNS negatives.
      "model": {"name": name, "encoder": _ENCODER,
                "task": dict(engagement_multitask.PAPER_MULTITASK)}, "data": {"max_len": 8},
      "train": {"epochs": 2, "batch_size": 8, "early_stopping_patience": 0,
                "phns": {"preset": "medium"}},
      "eval": {"ks": [1, 5, 10], "phns": {"num_candidates": 10}}, **overrides})


def test_smoe_bst_trained_from_shards_gets_the_in_memory_metrics(tmp_path, log, prepared):
  config = _config()
  in_memory = experiment_lib.Experiment(config, str(tmp_path / "in_memory"))
  memory_split = in_memory.prepare_data(log)
  memory_model = in_memory.fit(memory_split)
  config_prepared = config_lib.apply_overrides(config, {"data": {"data_dir": prepared}})
  streamed = experiment_lib.Experiment(config_prepared, str(tmp_path / "prepared"))
  split = streamed.prepare_data()
  assert isinstance(split, prepared_split.PreparedSplit)
  model = streamed.fit(split)
  for mine, theirs in zip(model.trainable_variables, memory_model.trainable_variables):
    np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(model.history.history["loss"],
                             memory_model.history.history["loss"], rtol=1e-5)
  for subset in ("validation", "test"):
    results = streamed.evaluate(model, split, subset)
    expected = in_memory.evaluate(memory_model, memory_split, subset)
    assert set(results) == set(expected)
    for protocol, metrics in expected.items():
      for metric, value in metrics.items():
        assert results[protocol][metric] == pytest.approx(value, abs=1e-6), (protocol, metric)
  assert not split.train_loaded
  # The run records the real data set: the in-memory run evaluates on the prepared copy.
  restored = experiment_lib.Experiment(config_prepared, str(tmp_path / "in_memory")).restore(split)
  assert restored is not None


def test_popularity_and_two_tower_train_from_shards(tmp_path, log, prepared):
  data = {"data": {"data_dir": prepared, "max_len": 8}}
  for name in ("popularity", "two_tower"):
    config = config_lib.apply_overrides(_config(name), data)
    experiment = experiment_lib.Experiment(config, str(tmp_path / name))
    split = experiment.prepare_data()
    model = experiment.fit(split)
    results = experiment.evaluate(model, split, "test")
    memory = experiment_lib.Experiment(config_lib.apply_overrides(_config(name), {
        "data": {"max_len": 8}}), str(tmp_path / f"{name}_memory"))
    memory_split = memory.prepare_data(log)
    expected = memory.evaluate(memory.fit(memory_split), memory_split, "test")
    assert results["full_ranking"]["ndcg@10"] == pytest.approx(
        expected["full_ranking"]["ndcg@10"], abs=1e-6), name
    assert not split.train_loaded


def test_shard_stream_sharding(prepared):
  files = prepared_split.PreparedSplit(prepared, config_lib.DataConfig()).train_stream().files
  stream = shard_stream.ShardStream(files)
  everyone = [int(user["user_index"]) for user in stream.users()]
  shares = [[int(user["user_index"]) for user in stream.users(tf.distribute.InputContext(2, i))]
            for i in range(2)]
  assert sorted(shares[0] + shares[1]) == everyone and not set(shares[0]) & set(shares[1])
  policy = shard_stream.ShardStream.file_sharded(stream.users()).options()
  assert (policy.experimental_distribute.auto_shard_policy ==
          tf.data.experimental.AutoShardPolicy.FILE)
  with pytest.raises(ValueError, match="cannot be shared by 4 workers"):
    stream.users(tf.distribute.InputContext(4, 0))


def test_bad_prepared_directories_are_one_line_errors(tmp_path, prepared):
  with pytest.raises(ValueError, match=r"data.split: .* was prepared with split 'leave_one_out'"):
    experiment_lib.check_data_source(config_lib.DataConfig(data_dir=prepared, split="time"))
  with pytest.raises(ValueError, match="data.dataset: .* was prepared from 'streaming_logs'"):
    experiment_lib.check_data_source(config_lib.DataConfig(dataset="movielens/100k",
                                                           data_dir=prepared))
  incomplete = _prepare(tmp_path / "incomplete", num_shards=1)
  os.remove(os.path.join(incomplete, "statistics.json"))
  with pytest.raises(ValueError, match="holds an incomplete preparation"):
    experiment_lib.Experiment(config_lib.apply_overrides(_config(), {
        "data": {"data_dir": incomplete}}), str(tmp_path / "run")).prepare_data()
  with pytest.raises(ValueError, match="holds no prepared data"):
    prepared_split.data_overrides(str(tmp_path))
  with pytest.raises(ValueError, match="trending_window_fraction 0.2 differs"):
    prepared_split.PreparedSplit(prepared, config_lib.DataConfig()).pools(
        hard_negatives.PHNSConfig(preset="easy", trending_window_fraction=0.2))


def _run(binary, *args):
  result = subprocess.run([sys.executable, os.path.join(_ROOT, "experiments", binary), *args],
                          capture_output=True, text=True, timeout=600, check=False,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


def test_train_and_evaluate_binaries_read_a_prepared_directory(tmp_path):
  output_dir, model_dir = str(tmp_path / "prepared"), str(tmp_path / "run")
  _run("prepare.py", "--dataset=streaming_logs/tiny", f"--output_dir={output_dir}",
       "--num_shards=2", "--beam_pipeline_options=--direct_num_workers=1")
  tiny = ("data: {max_len: 8}\ntrain: {epochs: 1, batch_size: 64}\n"
          "model: {encoder: {item_dim: 8, genre_dim: 4, year_dim: 4, expert_windows: [2, 0], "
          "num_blocks: 1, feed_forward_dim: 8}}\neval: {phns: {num_candidates: 20}}")
  output = _run("train.py", "--dataset=prepared", f"--data_dir={output_dir}", "--model=smoe_bst",
                f"--model_dir={model_dir}", f"--params_override={tiny}")
  assert "Data streaming_logs/tiny (leave_one_out, engagement protocol): 300 users" in output
  assert "Validation metrics of smoe_bst" in output
  with open(os.path.join(model_dir, "vocabularies", "data.json"), encoding="utf-8") as f:
    assert json.load(f)["dataset"] == "streaming_logs/tiny"
  output = _run("evaluate.py", f"--model_dir={model_dir}")
  assert "Test metrics of smoe_bst on streaming_logs/tiny" in output
  with open(os.path.join(model_dir, "metrics_test.json"), encoding="utf-8") as f:
    assert set(json.load(f)) == {"full_ranking", "phns_test"}
