"""tfrs_smoe: engagement-aware sequential recommendation on TensorFlow Recommenders.

Importing the package selects Keras 2 (tf-keras) for `tf.keras`, which TensorFlow Recommenders
needs: `TF_USE_LEGACY_KERAS=1` is set when unset. If TensorFlow was already imported with Keras 3
behind `tf.keras`, switching is no longer possible and an ImportError names the fix.
"""

import os

__version__ = "0.1.0"

_FIX = (
    "tfrs_smoe needs tf.keras to be Keras 2 (the tf-keras package), as TensorFlow Recommenders "
    "does. Set the environment variable TF_USE_LEGACY_KERAS=1 before TensorFlow is first imported "
    "(for example `export TF_USE_LEGACY_KERAS=1`, or import tfrs_smoe before tensorflow), and "
    "install tf-keras==2.21.*."
)


def _select_legacy_keras() -> None:
  # tf.keras is resolved lazily, so setting the variable works even after `import tensorflow`
  # as long as nothing has touched tf.keras yet.
  os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
  # TensorFlow's import logs below TF_CPP_MIN_LOG_LEVEL are dropped, and a binary's process sets
  # it to 3 when unset (tfrs_smoe/binaries/quiet.py).
  from tfrs_smoe.binaries import quiet  # pylint: disable=g-import-not-at-top
  tf = quiet.import_tensorflow()

  try:
    keras_version = tf.keras.__name__
  except ImportError as error:  # tf-keras is not installed.
    raise ImportError(_FIX) from error
  if not keras_version.startswith("tf_keras"):
    raise ImportError(f"tf.keras resolves to {keras_version!r}, which is Keras 3. {_FIX}")


_select_legacy_keras()
