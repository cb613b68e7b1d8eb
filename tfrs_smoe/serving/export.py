"""Writes `RecommenderModule`s in TensorFlow Serving's layout, one complete version at a time.

Layout: `<export_base>/<integer version>/saved_model.pb` + `variables/` + `assets/` (the item and
user vocabularies, `item_ids.txt` and `user_ids.txt`) + `assets.extra/tf_serving_warmup_requests`
(one Predict request per signature, which TF Serving replays before it serves the version), tag
"serve". A version is written under a hidden temporary name in `export_base` (TF Serving only
loads directories named by an integer) and renamed when complete, so a serving process never
sees half a model; an existing version is never overwritten. The temporary name carries the
writer's pid and host, so that the next export removes the folders of a killed one.

Example (a tiny synthetic log and an untrained BST; a trained run restores its model with
`experiment.restore(split)`):
  >>> import tempfile
  >>> from tfrs_smoe import config as config_lib
  >>> from tfrs_smoe import experiment as experiment_lib
  >>> from tfrs_smoe.data import synthetic
  >>> config = config_lib.override(config_lib.ExperimentConfig(),
  ...                              "model: {name: bst, encoder: {num_blocks: 1}}")
  >>> root = tempfile.mkdtemp()
  >>> experiment = experiment_lib.Experiment(config, os.path.join(root, "runs", "bst"))
  >>> split = experiment.prepare_data(synthetic.generate_watch_log(
  ...     synthetic.SyntheticConfig(num_users=20, num_titles=30))[0])
  >>> module = build_module(split, experiment.build_model(split), config.data.max_len, k=10)
  >>> path = save_version(module, os.path.join(root, "exports", "bst"))
  >>> os.path.relpath(path, root)
  'exports/bst/1'
  >>> print(serving_instructions(path, module.most_popular_ids))
  Exported a servable model to .../exports/bst/1
  Inspect it:
    saved_model_cli show --dir .../exports/bst/1 --all
  ...
"""

import json
import os
import re
import socket
import time
import uuid
from typing import List, Optional, Sequence

import numpy as np
import tensorflow as tf

from tfrs_smoe.models import contract
from tfrs_smoe.serving import client as client_lib
from tfrs_smoe.serving import recommender_module

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
# A temporary folder older than this is stale whoever wrote it (a writer on another host, or a
# pid reused since); one of this host is stale as soon as its writer's pid is gone.
STALE_AFTER_SECONDS = 24 * 3600
_TEMPORARY_PREFIX = ".tmp-"
_TEMPORARY = re.compile(r"^\.tmp-(?P<version>\d+)-(?P<pid>\d+)@(?P<host>.*)-[0-9a-f]{32}$")


def next_version(export_base: str) -> int:
  """1 + the largest integer version under `export_base` (1 when there is none)."""
  if not tf.io.gfile.isdir(export_base):
    return 1
  versions = [int(name.rstrip("/")) for name in tf.io.gfile.listdir(export_base)
              if name.rstrip("/").isdigit()]
  return max(versions, default=0) + 1


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # Alive, another user's.
    return True
  return True


def remove_stale_temporaries(export_base: str, max_age_seconds: float = STALE_AFTER_SECONDS
                             ) -> List[str]:
  """Removes the `.tmp-*` folders of exports that were killed; returns their names.

  A temporary folder is stale when its writer ran on this host and its pid is no longer alive,
  or when it is older than `max_age_seconds` (written on another host, by a pid that has been
  reused since, or named by an older version of this module). Integer versions and any other
  entry are never touched.

  Args:
    export_base: the model's base path.
    max_age_seconds: age (by modification time) beyond which any temporary folder is stale.
  """
  if not tf.io.gfile.isdir(export_base):
    return []
  host = socket.gethostname()
  removed = []
  for name in sorted(tf.io.gfile.listdir(export_base)):
    name = name.rstrip("/")
    if not name.startswith(_TEMPORARY_PREFIX):
      continue
    path = os.path.join(export_base, name)
    match = _TEMPORARY.match(name)
    stale = match is not None and match["host"] == host and not _pid_alive(int(match["pid"]))
    try:
      if not stale:
        stale = time.time() - tf.io.gfile.stat(path).mtime_nsec / 1e9 > max_age_seconds
      if not stale:
        continue
      if tf.io.gfile.isdir(path):
        tf.io.gfile.rmtree(path)
      else:
        tf.io.gfile.remove(path)
      removed.append(name)
    except tf.errors.NotFoundError:  # Removed meanwhile (its writer finished, or a cleaner).
      continue
  return removed


def warmup_requests(module: recommender_module.RecommenderModule, model_name: str) -> list:
  """One `PredictRequest` per signature of `module`, over its most popular items and a user.

  The requests TF Serving replays from `assets.extra/tf_serving_warmup_requests` before it
  answers the first real request, so that no client pays for the first run of a signature.
  """
  client = client_lib.PredictClient(model_name)
  popular = list(module.most_popular_ids)
  histories = [popular, popular[:1]]
  candidates = [popular, popular[::-1]]
  users = (module.example_user_ids or ["[UNK]"]) * 2
  requests = []
  for signature in module.signatures():
    kwargs = {}
    if signature.startswith("rank"):
      kwargs["candidates"] = candidates
    if "_for_user" in signature:
      kwargs["user_ids"] = users
    if signature in client_lib.OPTIONS_SIGNATURES:
      kwargs.update(k=module.k, exclude=popular[:1])
    requests.append(client.grpc_request(signature, histories, **kwargs))
  return requests


def write_warmup_file(path: str, requests: Sequence) -> str:
  """Writes `requests` (PredictRequests) as TF Serving's warm-up TFRecord of PredictionLogs."""
  from tensorflow_serving.apis import prediction_log_pb2  # pylint: disable=g-import-not-at-top
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.TFRecordWriter(path) as writer:
    for request in requests:
      log = prediction_log_pb2.PredictionLog(
          predict_log=prediction_log_pb2.PredictLog(request=request))
      writer.write(log.SerializeToString())
  return path


def save_version(module: recommender_module.RecommenderModule, export_base: str,
                 version: Optional[int] = None) -> str:
  """Saves `module` with its signatures and warm-up requests as `export_base`/`version`.

  Removes the temporary folders that killed exports left in `export_base` first
  (`remove_stale_temporaries`).

  Args:
    module: the serving module.
    export_base: the model's base path (TF Serving's `base_path`); its name is the model's
      name in the warm-up requests.
    version: the version number; None takes `next_version(export_base)`.

  Returns:
    The path of the version.

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
  remove_stale_temporaries(export_base)
  temporary = os.path.join(export_base, f"{_TEMPORARY_PREFIX}{version}-{os.getpid()}@"
                           f"{socket.gethostname()}-{uuid.uuid4().hex}")
  model_name = os.path.basename(os.path.abspath(export_base))
  logger = tf.get_logger()
  level = logger.level
  # Keras warns about every training-only layer (tasks) it does not serialise; serving does
  # not need them.
  logger.setLevel("ERROR")
  try:
    tf.saved_model.save(module, temporary, signatures=module.signatures())
    write_warmup_file(os.path.join(temporary, WARMUP_FILE), warmup_requests(module, model_name))
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

  Raises:
    TypeError: the ranker or the retriever does not meet `contract.ServableRanker`.
    ValueError: the retriever's item vocabulary is not the ranker's.

  Example (a tiny synthetic log and an untrained BST; in practice the split and the trained
  model of a run: `experiment.prepare_data()`, `experiment.restore(split)`):
    >>> from tfrs_smoe import config as config_lib
    >>> from tfrs_smoe.data import splits, synthetic
    >>> from tfrs_smoe.models import registry
    >>> split = splits.leave_one_out(synthetic.generate_watch_log(
    ...     synthetic.SyntheticConfig(num_users=20, num_titles=30))[0])
    >>> config = config_lib.override(config_lib.ExperimentConfig(),
    ...                              "model: {name: bst, encoder: {num_blocks: 1}}")
    >>> model = registry.get("bst").build(config, split)
    >>> module = build_module(split, model, config.data.max_len, k=10)
    >>> module.recommend(history=tf.constant([module.most_popular_ids]))["item_ids"].shape
    TensorShape([1, 10])
  """
  if retriever is not None and retriever_split is not None and not np.array_equal(
      retriever_split.item_vocabulary.ids, split.item_vocabulary.ids):
    raise ValueError("The retriever and the ranker were trained on different item "
                     "vocabularies; train both on the same data set and protocol.")
  contract.require_servable(ranker)
  if retriever is not None:
    contract.require_servable(retriever)
  popularity = split.positive_counts()
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
  options = json.dumps({"signature_name": "recommend_with_options",
                        "inputs": {"history": [list(example_history)], "k": 5,
                                   "exclude": list(example_history[:1])}})
  url = f"http://localhost:8501/v1/models/{model_name}:predict"
  return f"""Exported a servable model to {os.path.abspath(path)}
Inspect it:
  saved_model_cli show --dir {os.path.abspath(path)} --all
Serve it (Docker):
  docker run -p 8501:8501 -p 8500:8500 -v {base}:/models/{model_name} \\
      -e MODEL_NAME={model_name} tensorflow/serving
Query it (REST, row format; histories oldest first, right-padded with ""):
  curl -d '{history}' \\
      {url}
With a per-request k and items to exclude (columnar format; both inputs optional):
  curl -d '{options}' \\
      {url}"""
