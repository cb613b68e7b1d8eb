"""Tests of the Keras-2 guard that `import tfrs_smoe` performs, each in a fresh interpreter."""

import os
import subprocess
import sys


def _run(code: str) -> subprocess.CompletedProcess:
  env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
  env["TF_CPP_MIN_LOG_LEVEL"] = "3"
  return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                        timeout=300, check=False)


def test_import_selects_tf_keras_when_unset():
  result = _run("import tfrs_smoe, os, tensorflow as tf; "
                "print(os.environ['TF_USE_LEGACY_KERAS'], tf.keras.__name__)")
  assert result.returncode == 0, result.stderr
  assert result.stdout.split()[0] == "1"
  assert result.stdout.split()[1].startswith("tf_keras")


def test_import_after_keras_3_was_touched_names_the_fix():
  result = _run("import tensorflow as tf; tf.keras.layers; import tfrs_smoe")
  assert result.returncode != 0
  assert "ImportError" in result.stderr
  assert "TF_USE_LEGACY_KERAS=1" in result.stderr and "Keras 3" in result.stderr
