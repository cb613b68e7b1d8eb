"""Tests of typed configs, overrides and params.yaml round trips."""

import pytest

from tfrs_smoe import config as config_lib


def test_inline_yaml_and_json_overrides_apply_with_types():
  config = config_lib.override(config_lib.ExperimentConfig(),
                               "data: {max_len: 20, soft_labels: [1, 0.5]}\nseed: 3")
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
