"""Writes `RecommenderModule`s in TensorFlow Serving's layout, one complete version at a time.

Layout: `<export_base>/<integer version>/saved_model.pb` + `variables/`, tag "serve". A version
is written under a hidden temporary name in `export_base` (TF Serving only loads directories
named by an integer) and renamed when complete, so a serving process never sees half a model;
an existing version is never overwritten.

Example:
  >>> module = build_module(experiment, split, model, k=10)
  >>> path = save_version(module, "exports/smoe_bst")  # exports/smoe_bst/1
  >>> print(serving_instructions(path))
"""

import json
import os
import uuid
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from tfrs_smoe.serving import recommender_module


def next_version(export_base: str) -> int:
  """1 + the largest integer version under `export_base` (1 when there is none)."""
  if not tf.io.gfile.isdir(export_base):
    return 1
  versions = [int(name.rstrip("/")) for name in tf.io.gfile.listdir(export_base)
              if name.rstrip("/").isdigit()]
  return max(versions, default=0) + 1


def save_version(module: recommender_module.RecommenderModule, export_base: str,
                 version: Optional[int] = None) -> str:
  """Saves `module` with its signatures as `export_base`/`version`; returns that path.

  Args:
    module: the serving module.
    export_base: the model's base path (TF Serving's `base_path`).
    version: the version number; None takes `next_version(export_base)`.

  Raises:
    FileExistsError: the version exists already.
    ValueError: version < 1.
  """
  version = next_version(export_base) if version is None else int(version)
  if version < 1:
    raise ValueError(f"version must be >= 1, got {version}.")
  final = os.path.join(export_base, str(version))
  if tf.io.gfile.exists(final):
    raise FileExistsError(f"{final} exists; a served version is never overwritten. Pick another "
                          "--version or leave it out to take the next one.")
  tf.io.gfile.makedirs(export_base)
  temporary = os.path.join(export_base, f".tmp-{version}-{uuid.uuid4().hex}")
  logger = tf.get_logger()
  level = logger.level
  # Keras warns about every training-only layer (tasks) it does not serialise; serving does
  # not need them.
  logger.setLevel("ERROR")
  try:
    tf.saved_model.save(module, temporary, signatures=module.signatures())
    tf.io.gfile.rename(temporary, final)
  finally:
    logger.setLevel(level)
    if tf.io.gfile.exists(temporary):
      tf.io.gfile.rmtree(temporary)
  return final


def build_module(split, ranker: tf.keras.Model, max_len: int, k: int = 10,
                 retriever: Optional[tf.keras.Model] = None, retriever_split=None,
                 num_candidates: int = 100) -> recommender_module.RecommenderModule:
  """A `RecommenderModule` over `split`'s vocabularies, with popularity from its training log.

  Args:
    split: the `Split` the ranker was trained on.
    ranker: trained ranker.
    max_len: the models' history window.
    k: items per recommendation.
    retriever: optional trained two-tower model for the first stage.
    retriever_split: the retriever's split; its item vocabulary must equal the ranker's.
    num_candidates: retriever candidates re-ranked by the ranker.
  """
  if retriever is not None and retriever_split is not None and not np.array_equal(
      retriever_split.item_vocabulary.ids, split.item_vocabulary.ids):
    raise ValueError("The retriever and the ranker were trained on different item "
                     "vocabularies; train both on the same data set and protocol.")
  if not hasattr(ranker, "score_candidates"):
    raise ValueError(f"{type(ranker).__name__} cannot rank candidates, so it cannot be served; "
                     "export a bst, smoe_bst or two_tower model (the popularity fallback is "
                     "part of every export).")
  train = split.train
  popularity = np.bincount(train.item[train.positive], minlength=split.item_vocabulary.size)
  return recommender_module.RecommenderModule(
      ranker, split.item_vocabulary.ids, split.user_vocabulary.ids, popularity, max_len, k,
      retriever, num_candidates)


def serving_instructions(path: str, example_history: Sequence[str] = ("<item id>",)) -> str:
  """How to serve the export at `path` with TF Serving and query it, as printable text.

  The model's name in TF Serving is the base directory's name (exports/smoe_bst -> smoe_bst).
  """
  base = os.path.abspath(os.path.dirname(path))
  model_name = os.path.basename(base)
  history = json.dumps({"signature_name": "recommend",
                        "instances": [{"history": list(example_history)}]})
  return f"""Exported a servable model to {os.path.abspath(path)}
Inspect it:
  saved_model_cli show --dir {os.path.abspath(path)} --all
Serve it (Docker):
  docker run -p 8501:8501 -p 8500:8500 -v {base}:/models/{model_name} \\
      -e MODEL_NAME={model_name} tensorflow/serving
Query it (REST, row format; histories oldest first, right-padded with ""):
  curl -d '{history}' \\
      http://localhost:8501/v1/models/{model_name}:predict"""
