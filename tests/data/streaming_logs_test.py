"""Tests of the StreamingLogs TFDS builder: offline preparation, fidelity to the generator."""

import dataclasses
import socket

import numpy as np
import pytest

from tfrs_smoe.data import schema
from tfrs_smoe.data import streaming_logs
from tfrs_smoe.data import synthetic

TINY = synthetic.SyntheticConfig(num_users=40, num_titles=60, mean_events_per_user=15, seed=3)


@pytest.fixture
def offline(monkeypatch):
  """Fails any attempt to open a network connection."""

  def refuse(*args, **kwargs):
    raise AssertionError(f"network access attempted: {args} {kwargs}")

  monkeypatch.setattr(socket.socket, "connect", refuse)
  monkeypatch.setattr(socket, "create_connection", refuse)


def test_builder_prepares_offline_and_loads_the_generated_log(tmp_path, offline):
  del offline
  config = streaming_logs.StreamingLogsConfig(name="test_mini", synthetic=TINY)
  loaded = streaming_logs.load_streaming_logs(config, data_dir=str(tmp_path))
  expected, _ = synthetic.generate_watch_log(TINY)

  assert loaded.name == "streaming_logs"
  assert loaded.abandonment_threshold == pytest.approx(0.05)
  assert loaded.users is None
  # Both are sorted by (timestamp, user_id, item_id), so rows match one to one.
  assert loaded.interactions.columns().keys() == expected.interactions.columns().keys()
  for name, column in expected.interactions.columns().items():
    np.testing.assert_array_equal(loaded.interactions.columns()[name], column, err_msg=name)
  for field in dataclasses.fields(schema.ItemCatalog):
    np.testing.assert_array_equal(getattr(loaded.items, field.name),
                                  getattr(expected.items, field.name), err_msg=field.name)

  builder = streaming_logs.StreamingLogs(config=config, data_dir=str(tmp_path))
  assert builder.info.metadata["abandonment_threshold"] == pytest.approx(0.05)
  assert builder.info.splits["train"].num_examples == len(expected.interactions)
  assert (tmp_path / "streaming_logs" / "test_mini" / "1.0.0").is_dir()


def test_reusing_a_config_name_with_other_parameters_is_refused(tmp_path, offline):
  del offline
  streaming_logs.load_streaming_logs(
      streaming_logs.StreamingLogsConfig(name="test_mini", synthetic=TINY), data_dir=str(tmp_path))
  changed = streaming_logs.StreamingLogsConfig(
      name="test_mini", synthetic=dataclasses.replace(TINY, seed=4))
  with pytest.raises(schema.DataError, match="other SyntheticConfig parameters"):
    streaming_logs.load_streaming_logs(changed, data_dir=str(tmp_path))


def test_builder_configs():
  configs = streaming_logs.StreamingLogs.builder_configs
  assert list(configs) == ["tiny", "small", "medium", "large"]
  assert streaming_logs.StreamingLogs.DEFAULT_CONFIG_NAME == "small"
  assert configs["small"].synthetic == synthetic.SyntheticConfig()
  assert configs["medium"].synthetic.num_users == 100_000
  assert configs["large"].synthetic.num_users == 1_000_000
  assert streaming_logs.StreamingLogs.name == "streaming_logs"
  assert str(streaming_logs.StreamingLogs.VERSION) == "1.0.0"
