"""Tests of typed configs, overrides, range checks and params.yaml round trips."""

import pathlib
import re

import pytest

from tfrs_smoe import config as config_lib


def test_inline_yaml_and_json_overrides_apply_with_types():
  config = config_lib.override(config_lib.ExperimentConfig(),
                               "data: {max_len: 20, next_k: 2, soft_labels: [1, 0.5]}\nseed: 3")
  assert config.data.max_len == 20
  assert config.data.soft_labels == (1.0, 0.5)
  assert config.seed == 3
  config = config_lib.override(config, '{"data": {"abandonment_threshold": 0.3}}')
  assert config.data.abandonment_threshold == 0.3 and config.data.max_len == 20


def test_override_from_file(tmp_path):
  path = tmp_path / "override.yaml"
  path.write_text("train:\n  epochs: 7\n")
  assert config_lib.override(config_lib.ExperimentConfig(), str(path)).train.epochs == 7


@pytest.mark.parametrize("text, message", [
    ("data: {max_lenn: 3}", "Unknown config key 'data.max_lenn'.*data.max_len"),
    ("data: {max_len: '3'}", "data.max_len: expected int"),
    ("data: {implicit: 1}", "data.implicit: expected bool"),
    ("data: 5", "data.: expected a mapping"),
    ("eval: {ks: 5}", "eval.ks: expected a list"),
    ("train: {early_stopping_start_epoch: -1}", "early_stopping_start_epoch must be >= 0"),
    ("train: {learning_rate_schedule: step}", "learning_rate_schedule must be one of"),
    ("train: {warmup_epochs: 2}", "warmup_epochs needs learning_rate_schedule: cosine"),
    ("train: {learning_rate_schedule: cosine, epochs: 4, warmup_epochs: 4}",
     r"warmup_epochs must be in \[0, epochs = 4\)"),
])
def test_bad_overrides_name_the_key(text, message):
  with pytest.raises(ValueError, match=message):
    config_lib.override(config_lib.ExperimentConfig(), text)


def test_params_yaml_round_trip(tmp_path):
  config = config_lib.override(
      config_lib.ExperimentConfig(),
      "data: {dataset: movielens/100k, implicit: true}\neval: {ks: [1, 3]}")
  config_lib.save_params(config, str(tmp_path))
  assert config_lib.load_params(str(tmp_path)) == config


def test_load_params_without_file_says_what_is_missing(tmp_path):
  with pytest.raises(FileNotFoundError, match="params.yaml"):
    config_lib.load_params(str(tmp_path))


def test_nested_phns_config_overrides_and_validates():
  config = config_lib.override(config_lib.ExperimentConfig(), "eval: {phns: {num_candidates: 20}}")
  assert config.eval.phns.num_candidates == 20
  with pytest.raises(ValueError, match="num_candidates"):
    config_lib.override(config_lib.ExperimentConfig(), "eval: {phns: {num_candidates: 1}}")


def _rejected(text):
  """The message of the ValueError that overriding the default config with `text` raises."""
  with pytest.raises(ValueError) as error:
    config_lib.override(config_lib.ExperimentConfig(), text)
  return str(error.value)


@pytest.mark.parametrize("text, message", [
    ("train: {learning_rate: -0.1}", "train.learning_rate must be >= 0 and finite, got -0.1"),
    ("train: {learning_rate: .nan}", "train.learning_rate must be >= 0"),
    ("train: {learning_rate: .inf}", "train.learning_rate must be >= 0 and finite"),
    ("train: {epochs: -1}", "train.epochs must be >= 1, got -1"),
    ("train: {epochs: 0}", "train.epochs must be >= 1"),
    ("train: {batch_size: 0}", "train.batch_size must be >= 1"),
    ("train: {validate_every: 0}", "train.validate_every must be >= 1"),
    ("train: {early_stopping_patience: -1}", "train.early_stopping_patience must be >= 0"),
    ("train: {backup_every_steps: -5}", "train.backup_every_steps must be >= 0"),
    ("data: {max_len: 0}", "data.max_len must be >= 1, got 0"),
    ("data: {next_k: 0, soft_labels: []}", "data.next_k must be >= 1"),
    ("data: {next_k: 2}", r"data.soft_labels must have data.next_k = 2 values"),
    ("data: {next_k: 2, soft_labels: [1.0, 0.0]}", r"data.soft_labels must be label weights in "
                                                   r"\(0, 1\]"),
    ("data: {next_k: 1, soft_labels: [1.5]}", "data.soft_labels must be"),
    ("data: {min_positives: 2}", "data.min_positives must be >= 3"),
    ("data: {split: random}", "data.split must be one of"),
    ("data: {validation_fraction: 0.0}", r"data.validation_fraction must be in \(0, 1\)"),
    ("data: {test_fraction: 1.0}", r"data.test_fraction must be in \(0, 1\)"),
    ("data: {validation_fraction: 0.5, test_fraction: 0.5}",
     r"data.validation_fraction \+ data.test_fraction must be < 1"),
    ("data: {dataset: netflix}", "data.dataset: Unknown dataset 'netflix'"),
    ("data: {dataset: movielens/25m}", "data.dataset: Unknown dataset 'movielens/25m'"),
    ("data: {dataset: streaming_logs/huge}", "data.dataset: Unknown dataset"),
    ("data: {dataset: watch_log/x}", "data.dataset: Unknown dataset"),
    ("eval: {ks: []}", "eval.ks must be distinct cut-offs >= 1"),
    ("eval: {ks: [0, 5]}", "eval.ks must be distinct cut-offs >= 1"),
    ("eval: {ks: [5, 5]}", "eval.ks must be distinct cut-offs >= 1"),
    ("eval: {batch_size: 0}", "eval.batch_size must be >= 1"),
    ("seed: -1", r"seed must be in \[0, 2\*\*32 - 1\]"),
    ("seed: 4294967296", r"seed must be in \[0, 2\*\*32 - 1\]"),
])
def test_experiment_ranges_name_the_key(text, message):
  assert re.search(message, _rejected(text))


@pytest.mark.parametrize("text", [
    "data: {dataset: streaming_logs}", "data: {dataset: streaming_logs/tiny}",
    "data: {dataset: movielens}", "data: {dataset: movielens/1m}", "data: {dataset: watch_log}",
    "data: {next_k: 1, soft_labels: [1.0]}", "train: {epochs: 1, early_stopping_patience: 0}",
    "train: {learning_rate: 0}",  # Frozen weights, a probe (tests/experiment_test.py).
    "seed: 4294967295",
])
def test_edges_of_the_ranges_are_accepted(text):
  config_lib.override(config_lib.ExperimentConfig(), text)


def test_streaming_logs_configs_are_the_builders():
  from tfrs_smoe.data import streaming_logs  # pylint: disable=g-import-not-at-top
  assert config_lib.STREAMING_LOGS_CONFIGS == tuple(
      config.name for config in streaming_logs.StreamingLogs.BUILDER_CONFIGS)


@pytest.mark.parametrize("monitor", ["loss", "ndcg", "ndcg@0", "hit@10", "val_ndcg@10"])
def test_monitor_that_is_no_ranking_metric_is_rejected(monitor):
  assert "train.monitor must be a validation metric ndcg@k, recall@k or mrr@k" in _rejected(
      f"train: {{monitor: {monitor}}}")


def test_monitor_must_be_a_metric_of_eval_ks_when_early_stopping_watches_it():
  message = _rejected("model: {name: bst}\ntrain: {monitor: ndcg@20}")
  assert message == ("train.monitor 'ndcg@20' is not a validation metric of eval.ks [1, 5, 10]: "
                     "early stopping watches one of ndcg@1, ndcg@5, ndcg@10, recall@1, recall@5, "
                     "recall@10, mrr@1, mrr@5, mrr@10.")
  assert "train.monitor 'ndcg@10'" in _rejected("model: {name: smoe_bst}\neval: {ks: [1, 5]}")
  config = config_lib.override(config_lib.ExperimentConfig(),
                               "model: {name: bst}\ntrain: {monitor: recall@20}\n"
                               "eval: {ks: [5, 20]}")
  assert config.train.monitor == "recall@20"
  # Unread without early stopping, or by a model that is not trained on batches.
  config_lib.override(config_lib.ExperimentConfig(),
                      "model: {name: bst}\ntrain: {monitor: ndcg@20, early_stopping_patience: 0}")
  config_lib.override(config_lib.ExperimentConfig(),
                      "model: {name: popularity}\ntrain: {monitor: ndcg@20}")


@pytest.mark.parametrize("section, value, message", [
    ("encoder", "{item_dim: 0}", "model.encoder.item_dim must be >= 1"),
    ("encoder", "{genre_dim: -1}", "model.encoder.genre_dim must be >= 0"),
    ("encoder", "{year_dim: -1}", "model.encoder.year_dim must be >= 0"),
    ("encoder", "{user_dim: -1}", "model.encoder.user_dim must be >= 0"),
    ("encoder", "{expert_windows: []}", "model.encoder.expert_windows must be a non-empty list"),
    ("encoder", "{expert_windows: [5, -1]}", "model.encoder.expert_windows must be"),
    ("encoder", "{num_heads: 0}", "model.encoder.num_heads must be >= 1"),
    ("encoder", "{num_heads: 5}", "model.encoder.num_heads: the model dimension .* = 64 is not "
                                  "divisible by 5 heads"),
    ("encoder", "{feed_forward_dim: 0}", "model.encoder.feed_forward_dim must be >= 1"),
    ("encoder", "{dropout: 1.0}", r"model.encoder.dropout must be in \[0, 1\)"),
    ("encoder", "{dropout: -0.1}", r"model.encoder.dropout must be in \[0, 1\)"),
    ("encoder", "{gate_hidden_units: [0]}", "model.encoder.gate_hidden_units must be"),
    ("encoder", "{gate_temperature: 0}", "model.encoder.gate_temperature must be > 0"),
    ("encoder", "{gate_noise_stddev: -1}", "model.encoder.gate_noise_stddev must be >= 0"),
    ("encoder", "{entropy_weight: -1}", "model.encoder.entropy_weight must be >= 0"),
    ("encoder", "{target_entropy: -0.1}", "model.encoder.target_entropy must be >= 0"),
    ("encoder", "{expert_windows: [5, 0], target_entropy: 0.8}",
     "model.encoder.target_entropy must be <= ln 2 = 0.693"),
    ("encoder", "{balance_weight: -1}", "model.encoder.balance_weight must be >= 0"),
    ("encoder", "{expert_dropout: 1.0}", r"model.encoder.expert_dropout must be in \[0, 1\)"),
    ("encoder", "{scorer: cosine}", "model.encoder.scorer must be one of"),
    ("encoder", "{scorer_hidden_units: [-4]}", "model.encoder.scorer_hidden_units must be"),
    ("encoder", "{feature_dim: 0}", r"model.encoder.feature_dim must be in \[1, 1024\]"),
    ("encoder", "{num_blocks: -1}", "model.encoder.shared_blocks and model.encoder.num_blocks"),
    ("encoder", "{shared_blocks: 1, num_blocks: 0, pooling: last}",
     "model.encoder.num_blocks must be >= 1 with pooling 'last'"),
    ("encoder", "{block: mid_ln}", "model.encoder.block must be one of"),
    ("encoder", "{gate_context: [weekday]}", "model.encoder.gate_context: unknown"),
    ("sasrec", "{dim: 0}", "model.sasrec.dim must be >= 1"),
    ("sasrec", "{num_blocks: 0}", "model.sasrec.num_blocks must be >= 1"),
    ("sasrec", "{num_heads: 0}", "model.sasrec.num_heads must be >= 1"),
    ("sasrec", "{feed_forward_dim: 0}", "model.sasrec.feed_forward_dim must be >= 1"),
    ("sasrec", "{num_heads: 3}", "model.sasrec.num_heads: dim 64 is not divisible"),
    ("sasrec", "{dropout: 1.0}", r"model.sasrec.dropout must be in \[0, 1\)"),
    ("sasrec", "{residual: post}", "model.sasrec.residual must be one of"),
    ("sasrec", "{layer_norm_epsilon: 0}", "model.sasrec.layer_norm_epsilon must be > 0"),
    ("sasrec", "{embedding_initializer: nope}", "model.sasrec.embedding_initializer must name"),
    ("two_tower", "{history_encoder: gru}", "model.two_tower.history_encoder must be one of"),
    ("two_tower", "{correction: sampled}", "model.two_tower.correction must be one of"),
    ("two_tower", "{query_hidden_units: []}", "model.two_tower.query_hidden_units must be a "
                                              "non-empty list"),
    ("two_tower", "{candidate_hidden_units: [0, 64]}",
     "model.two_tower.candidate_hidden_units must be"),
    ("two_tower", "{query_hidden_units: [32]}", "model.two_tower.query_hidden_units and "
                                                "candidate_hidden_units must end in the same size"),
    ("two_tower", "{temperature: 0}", "model.two_tower.temperature must be > 0"),
    ("two_tower", "{num_buckets: 0}", "model.two_tower.num_buckets must be >= 1"),
    ("two_tower", "{num_hashes: 0}", "model.two_tower.num_hashes must be >= 1"),
    ("two_tower", "{estimator_learning_rate: 1.5}",
     r"model.two_tower.estimator_learning_rate must be in \(0, 1\]"),
    ("two_tower", "{initial_gap: -1}", "model.two_tower.initial_gap must be > 0"),
    ("two_tower", "{min_engagement: 1.5}", r"model.two_tower.min_engagement must be in \[0, 1\]"),
])
def test_model_ranges_name_the_key(section, value, message):
  assert re.search(message, _rejected(f"model: {{{section}: {value}}}"))


@pytest.mark.parametrize("text, section", [
    ("train: {phns: {preset: hardest}}", "train.phns"),
    ("eval: {phns: {num_candidates: 1}}", "eval.phns"),
    ("distribute: {strategy: tpu}", "distribute"),
    ("model: {task: {softmax: hierarchical}}", "model.task"),
])
def test_errors_of_other_modules_configs_name_their_section(text, section):
  message = _rejected(text)
  # "train.phns: preset must be ...", or the config's own wording when it names the section.
  assert message.startswith(f"{section}: ") or f"{section.rpartition('.')[2]}." in message


def test_recorded_runs_still_load():
  runs = sorted(pathlib.Path(__file__).parent.parent.glob("docs/**/params.yaml"))
  for path in runs:
    config_lib.load_params(str(path.parent))
