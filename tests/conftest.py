"""Test setup: Keras 2 for tf.keras and quiet TensorFlow logs before anything imports TensorFlow."""

import os

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(scope="session")
def tiny_tfds_dir(tmp_path_factory):
  """A TFDS data directory with streaming_logs/tiny prepared, shared by the session's tests.

  Preparing the tiny log takes seconds in every process that finds it missing; the tests that
  only read it (training and evaluation runs, in process or in the binaries) share this one.
  Tests about preparing data, or about data that is not there, keep their own directory.
  Under pytest-xdist every worker has its own session, and so its own directory.
  """
  # pylint: disable=g-import-not-at-top
  from tfrs_smoe.data import streaming_logs
  path = str(tmp_path_factory.mktemp("tfds_tiny"))
  streaming_logs.load_streaming_logs(config="tiny", data_dir=path)
  return path


@pytest.fixture(scope="session")
def session_cache():
  """A dict for artifacts that tests of several modules build the same way and only read (e.g.
  the serving tests' export), so that the session builds each once."""
  return {}
