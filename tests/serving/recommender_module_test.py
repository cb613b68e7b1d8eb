"""Tests of RecommenderModule's signatures in memory and of exports loaded without tfrs_smoe."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tfrs_smoe.data import vocabulary
from tfrs_smoe.models import smoe_bst
from tfrs_smoe.models import two_tower
from tfrs_smoe.serving import export
from tfrs_smoe.serving import recommender_module
from tfrs_smoe.tasks import engagement_multitask

NUM_ITEMS = 2 + 30
MAX_LEN = 6
ITEM_IDS = np.array([f"m{i:02d}" for i in range(NUM_ITEMS - 2)])  # Index = position + 2.
USER_IDS = np.array(["alice", "bob", "carol"])
POPULARITY = np.concatenate([[0, 0], np.arange(NUM_ITEMS - 2)[::-1] * 3])  # m00 most popular.
ENCODER = smoe_bst.SMoEBSTConfig(item_dim=8, genre_dim=4, year_dim=0, user_dim=4,
                                 expert_windows=(2, 0), num_blocks=1, num_heads=1,
                                 feed_forward_dim=8, dropout=0.0)
FEATURES = {"genres": (np.arange(NUM_ITEMS) % 4)[:, None].astype(np.int32),
            "year_bucket": np.zeros(NUM_ITEMS, np.int32)}


def _ranker():
  tf.keras.utils.set_random_seed(0)
  # The paper's loss, so that the ranker has a completion head to serve.
  task = engagement_multitask.MultitaskConfig(**engagement_multitask.PAPER_MULTITASK)
  model = smoe_bst.SMoEBST(NUM_ITEMS, 5, FEATURES, ENCODER, task, max_len=MAX_LEN)
  model({"history": tf.zeros([1, MAX_LEN], tf.int32), "user_index": tf.zeros([1], tf.int32)})
  return model


def _retriever():
  tf.keras.utils.set_random_seed(1)
  return two_tower.TwoTower(NUM_ITEMS, 5, FEATURES, ENCODER,
                            two_tower.TwoTowerConfig(query_hidden_units=(8,),
                                                     candidate_hidden_units=(8,),
                                                     correction="none"), max_len=MAX_LEN)


def _module(k=4, retriever=None, num_candidates=10):
  return recommender_module.RecommenderModule(_ranker(), ITEM_IDS, USER_IDS, POPULARITY,
                                              MAX_LEN, k, retriever, num_candidates)


def _ids(indices):
  return [f"m{i - 2:02d}" for i in indices]


def _strings(tensor):
  return tensor.numpy().astype(str).tolist()


def _tensors(inputs):
  """Request values as the tensors a signature takes: k int32, the rest strings."""
  return {name: tf.constant(value, tf.int32 if name == "k" else tf.string)
          for name, value in inputs.items()}


def _tf_serving_like(path):
  """A function that answers requests to the export at `path` as TF Serving does: a Session
  over its MetaGraph, an input the request leaves out taken from the SignatureDef's `defaults`
  (GetInputValues in tensorflow/cc/saved_model/util.cc). Returns (predict, meta_graph)."""
  graph = tf.Graph()
  session = tf.compat.v1.Session(graph=graph)
  with graph.as_default():
    meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)

  def predict(signature, inputs):
    definition = meta_graph.signature_def[signature]
    feeds = {}
    for name, info in definition.inputs.items():
      if name in inputs:
        feeds[info.name] = np.asarray(inputs[name], np.int32 if name == "k" else object)
      elif name in definition.defaults:
        feeds[info.name] = tf.make_ndarray(definition.defaults[name])
      else:
        raise ValueError(f"Signature input {name} not in the request and without a default.")
    return session.run({name: info.name for name, info in definition.outputs.items()}, feeds)

  return predict, meta_graph


# Oldest first, right-padded; "zz" is unknown; the first row is longer than MAX_LEN.
HISTORY = [["m01", "m02", "zz", "m03", "m04", "m05", "m06", "m07"],
           ["m10", "", "m11", "", "", "", "", ""],
           ["zz", "", "", "", "", "", "", ""]]
# 26 of the 30 items, far more than MAX_LEN: only m03, m11, m17 and m29 are left to recommend.
LONG_HISTORY = [[f"m{i:02d}" for i in range(30) if i not in (3, 11, 17, 29)]]


def shared_export(tmp_path_factory, session_cache):
  """A k=4 single-stage module, the path of its export, the export loaded with
  tf.saved_model.load, and TF Serving's way of answering it (`_tf_serving_like`).

  Exported once per session (an export traces every signature of the module): the tests of
  this module and of client_test.py read it, and none of them changes it.
  """
  if "serving_export" not in session_cache:
    module = _module(k=4)
    path = export.save_version(module, str(tmp_path_factory.mktemp("shared") / "recs"))
    session_cache["serving_export"] = (module, path, tf.saved_model.load(path),
                                       _tf_serving_like(path))
  return session_cache["serving_export"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, session_cache):
  """`shared_export`'s (module, path, loaded, (predict, meta_graph))."""
  return shared_export(tmp_path_factory, session_cache)


def test_history_is_packed_left_padded_with_unknown_ids_dropped_and_the_most_recent_kept():
  features = _module()._features(tf.constant(HISTORY), tf.constant(["bob", "nobody", "alice"]))
  np.testing.assert_array_equal(features["history"].numpy(), [
      [4, 5, 6, 7, 8, 9], [0, 0, 0, 0, 12, 13], [0, 0, 0, 0, 0, 0]])
  np.testing.assert_array_equal(features["user_index"].numpy(), [3, 1, 2])


def test_recommend_ranks_the_models_scores_without_history_and_falls_back_to_popularity():
  module = _module(k=4)
  outputs = module.recommend(history=tf.constant(HISTORY))
  features = module._features(tf.constant(HISTORY), None)
  scores = module.ranker(features).numpy()
  # Every known history item is excluded, m01 too although the window (6) no longer holds it.
  whole_history = [[3, 4, 5, 6, 7, 8, 9], [12, 13]]
  for row in range(2):
    scores[row, whole_history[row]] = -np.inf
    scores[row, :2] = -np.inf
    expected = np.argsort(-scores[row], kind="stable")[:4]
    assert _strings(outputs["item_ids"])[row] == _ids(expected)
    np.testing.assert_allclose(outputs["scores"].numpy()[row], scores[row, expected], rtol=1e-5)
  # Only an unknown id: no known history, so the most popular items.
  assert _strings(outputs["item_ids"])[2] == ["m00", "m01", "m02", "m03"]


@pytest.mark.parametrize("two_stage", [False, True])
def test_no_item_of_a_long_history_is_ever_recommended_and_left_slots_are_empty(two_stage):
  # 4 items are left; k = 5 leaves one slot empty. Two stages: 10 candidates of 4 eligible.
  module = _module(k=5, retriever=_retriever() if two_stage else None, num_candidates=10)
  history = tf.constant(LONG_HISTORY)
  for outputs in (module.recommend(history=history),
                  module.recommend_for_user(history=history, user_id=tf.constant(["bob"]))):
    returned = _strings(outputs["item_ids"])[0]
    assert sorted(returned[:4]) == ["m03", "m11", "m17", "m29"] and returned[4] == ""
    assert np.all(np.isfinite(outputs["scores"].numpy()[0, :4]))
    assert outputs["scores"].numpy()[0, 4] == -np.inf


def test_k_per_request_defaults_to_the_exports_and_is_capped_at_the_catalogue():
  module = _module(k=4)
  history = tf.constant(HISTORY)
  default = module.recommend(history=history)
  options = module.recommend_with_options(history=history)  # k and exclude left out.
  assert _strings(options["item_ids"]) == _strings(default["item_ids"])
  two = module.recommend_with_options(history=history, k=tf.constant(2))
  assert [row[:2] for row in _strings(default["item_ids"])] == _strings(two["item_ids"])
  # No known history: the whole catalogue by popularity, capped at its 30 items.
  everything = module.recommend_with_options(history=tf.constant([[""]]), k=tf.constant(1000))
  assert _strings(everything["item_ids"]) == [list(ITEM_IDS)]
  np.testing.assert_allclose(everything["scores"].numpy()[0], np.log1p(POPULARITY[2:]),
                             rtol=1e-6)


def test_excluded_items_are_never_returned_for_every_row_or_per_row():
  module = _module(k=4)
  history = tf.constant([[""], ["zz"]])  # Popularity: m00, m01, m02, ...
  shared = module.recommend_with_options(history=history, exclude=tf.constant(["m01", "nope"]))
  assert _strings(shared["item_ids"]) == [["m00", "m02", "m03", "m04"]] * 2
  per_row = module.recommend_for_user_with_options(
      history=history, user_id=tf.constant(["alice", "bob"]), k=tf.constant(3),
      exclude=tf.constant([["m00", "m02"], ["m03", ""]]))
  assert _strings(per_row["item_ids"]) == [["m01", "m03", "m04"], ["m00", "m01", "m02"]]


def test_two_stage_reranks_the_retrievers_top_candidates():
  retriever = _retriever()
  module = _module(k=3, retriever=retriever, num_candidates=8)
  outputs = module.recommend_for_user(history=tf.constant(HISTORY[:2]),
                                      user_id=tf.constant(["alice", "bob"]))
  features = module._features(tf.constant(HISTORY[:2]), tf.constant(["alice", "bob"]))
  retrieved = retriever(features).numpy()
  whole_history = [[3, 4, 5, 6, 7, 8, 9], [12, 13]]
  for row in range(2):
    retrieved[row, whole_history[row]] = -np.inf
    retrieved[row, :2] = -np.inf
    candidates = np.argsort(-retrieved[row], kind="stable")[:8]
    ranked = module.ranker.score_candidates(
        {name: value[row:row + 1] for name, value in features.items()},
        candidates[None]).numpy()[0]
    expected = candidates[np.argsort(-ranked, kind="stable")[:3]]
    assert _strings(outputs["item_ids"])[row] == _ids(expected)
  # k per request is capped at the candidates the ranker re-ranks.
  many = module.recommend_with_options(history=tf.constant(HISTORY[:1]), k=tf.constant(50))
  assert many["item_ids"].shape == (1, 8)


def test_rank_scores_candidates_with_ctr_and_completion_and_unknowns_lowest():
  module = _module()
  candidates = tf.constant([["m05", "nope", "m00"], ["m20", "m21", "m22"], ["m01", "m02", ""]])
  history = tf.constant(HISTORY[:2] + [["m09"] + [""] * 7])  # Known histories (the model's).
  outputs = module.rank(history=history, candidates=candidates)
  assert sorted(outputs) == ["completion", "ctr", "scores"]
  features = module._features(history, None)
  indices = np.array([[7, 0, 2], [22, 23, 24], [3, 4, 0]], np.int32)
  expected = module.ranker.score_candidates(features, tf.constant(indices)).numpy()
  scores = outputs["scores"].numpy()
  known = np.array([[1, 0, 1], [1, 1, 1], [1, 1, 0]], bool)
  np.testing.assert_allclose(scores[known], expected[known], rtol=1e-5)
  assert np.all(scores[~known] == np.finfo(np.float32).min)
  np.testing.assert_allclose(outputs["ctr"].numpy()[known], 1 / (1 + np.exp(-expected[known])),
                             rtol=1e-5)
  # Completion of each (user, candidate) pair through the ranker's head, user by user.
  users = module.ranker.user_vector(features)[0].numpy()
  for row, column in zip(*np.nonzero(known)):
    item = module.ranker.content(tf.constant([indices[row, column]]))
    expected_completion = module.ranker.predict_completion(users[row:row + 1], item).numpy()[0]
    np.testing.assert_allclose(outputs["completion"].numpy()[row, column], expected_completion,
                               rtol=1e-5)
  assert np.all(outputs["completion"].numpy()[~known] == 0)


@pytest.mark.parametrize("history", [[[]], [[""]], [["zz", "", "nope"]]])
def test_rank_without_a_known_history_falls_back_to_popularity(history):
  module = _module()
  outputs = module.rank_for_user(history=tf.constant(history, tf.string),
                                 candidates=tf.constant([["m29", "m00", "nope", "m10"]]),
                                 user_id=tf.constant(["alice"]))
  # m29, m00, m10 have 0, 87 and 57 training positives (POPULARITY), 1305 in all.
  np.testing.assert_allclose(outputs["scores"].numpy()[0, [0, 1, 3]],
                             np.log1p([0, 87, 57]), rtol=1e-6)
  np.testing.assert_allclose(outputs["ctr"].numpy()[0], [0, 87 / 1305, 0, 57 / 1305], rtol=1e-6)
  assert outputs["scores"].numpy()[0, 2] == np.finfo(np.float32).min


def test_explain_gives_each_users_expert_weights():
  module = _module()
  weights = module.explain(history=tf.constant(HISTORY))["expert_weights"]
  assert weights.shape == (3, 2)
  expected = module.ranker.user_vector(module._features(tf.constant(HISTORY), None))[1]
  np.testing.assert_allclose(weights.numpy(), expected.numpy(), rtol=1e-5)
  assert not np.allclose(weights.numpy()[0], weights.numpy()[1])  # Per user, not a constant.


@pytest.mark.parametrize("kwargs, message", [({"k": 0}, "k must be"),
                                             ({"k": 5, "num_candidates": 3}, "num_candidates")])
def test_bad_settings_are_rejected(kwargs, message):
  retriever = _retriever() if "num_candidates" in kwargs else None
  with pytest.raises(ValueError, match=message):
    _module(retriever=retriever, **kwargs)


@pytest.mark.parametrize("item_ids, user_ids, message", [
    (ITEM_IDS[::-1], USER_IDS, "item_ids must be in index order"),
    (ITEM_IDS, USER_IDS[::-1], "user_ids must be in index order"),
    (ITEM_IDS, [], "user_ids is empty")])
def test_vocabularies_out_of_index_order_or_empty_are_rejected(item_ids, user_ids, message):
  with pytest.raises(ValueError, match=message):
    recommender_module.RecommenderModule(_ranker(), item_ids, user_ids, POPULARITY, MAX_LEN)


_ROWS3 = [["m05"], ["m20"], ["m01"]]
MALFORMED = [
    ("recommend", {"history": ["m01", "m02"]}, "history must be a [batch, length]"),
    ("explain", {"history": [[["m01"]]]}, "history must be a [batch, length]"),
    ("rank", {"history": HISTORY, "candidates": [["m05", "m06"]]},
     "candidates needs one row per history row"),
    ("rank", {"history": HISTORY, "candidates": ["m05", "m06", "m07"]},
     "candidates must be a [batch, n]"),
    ("recommend_for_user", {"history": HISTORY, "user_id": ["alice"]},
     "user_id needs one id per history row"),
    ("rank_for_user", {"history": HISTORY, "candidates": _ROWS3, "user_id": [["a"], ["b"], ["c"]]},
     "user_id must be a [batch]"),
    ("recommend_with_options", {"history": HISTORY, "k": 0, "exclude": []},
     "k must be at least 1"),
    ("recommend_with_options", {"history": HISTORY, "k": [2], "exclude": []},
     "k must be a scalar"),
    ("recommend_for_user_with_options",
     {"history": HISTORY, "user_id": USER_IDS, "k": 2, "exclude": [["m01"]]},
     "exclude [batch, m] needs one row per history row"),
    ("recommend_with_options", {"history": HISTORY, "k": 2, "exclude": "m01"},
     "exclude must be [m]"),
]


@pytest.mark.parametrize("where", ["module", "loaded", "tf_serving"])
@pytest.mark.parametrize("signature, inputs, message", MALFORMED)
def test_malformed_requests_are_rejected_naming_the_input(exported, where, signature, inputs,
                                                         message):
  module, _, loaded, (serve, _) = exported
  with pytest.raises(tf.errors.InvalidArgumentError) as raised:
    if where == "module":
      getattr(module, signature)(**_tensors(inputs))
    elif where == "loaded":
      loaded.signatures[signature](**_tensors(inputs))
    else:
      serve(signature, inputs)
  assert message in str(raised.value)


def test_omitted_optional_inputs_take_the_signature_defaults_as_tf_serving_does(exported):
  module, _, loaded, (serve, meta_graph) = exported
  for name in ("recommend_with_options", "recommend_for_user_with_options"):
    definition = meta_graph.signature_def[name]
    assert sorted(definition.defaults) == ["exclude", "k"]
    assert tf.make_ndarray(definition.defaults["k"]) == 4
    assert tf.make_ndarray(definition.defaults["exclude"]).shape == (0,)
  expected = module.recommend(history=tf.constant(HISTORY))
  served = serve("recommend_with_options", {"history": HISTORY})
  assert served["item_ids"].astype(str).tolist() == _strings(expected["item_ids"])
  with_k = serve("recommend_with_options", {"history": HISTORY, "k": 2})
  assert with_k["item_ids"].shape == (3, 2)
  # A loaded SavedModel's signature functions take every input; its attributes keep defaults.
  answer = loaded.signatures["recommend_with_options"](
      history=tf.constant(HISTORY), k=tf.constant(4), exclude=tf.constant([], tf.string))
  assert _strings(answer["item_ids"]) == _strings(expected["item_ids"])
  assert _strings(loaded.recommend_with_options(history=tf.constant(HISTORY))["item_ids"]) == (
      _strings(expected["item_ids"]))


def test_vocabularies_are_assets_and_the_export_reads_its_tables_from_them(exported):
  module, path, _, _ = exported
  assets = os.path.join(path, "assets")
  assert sorted(os.listdir(assets)) == ["item_ids.txt", "user_ids.txt"]
  assert vocabulary.IdVocabulary.read(os.path.join(assets, "item_ids.txt")) == (
      vocabulary.IdVocabulary(ITEM_IDS))
  assert vocabulary.IdVocabulary.read(os.path.join(assets, "user_ids.txt")) == (
      vocabulary.IdVocabulary(USER_IDS))
  users = tf.constant(["carol", "bob", "zed"])
  expected = module.recommend_for_user(history=tf.constant(HISTORY), user_id=users)
  # The module's own vocabulary files moved away: the export must not need them.
  own = module._vocabulary_dir.name  # pylint: disable=protected-access
  os.rename(own, own + ".moved")
  try:
    answer = tf.saved_model.load(path).signatures["recommend_for_user"](
        history=tf.constant(HISTORY), user_id=users)
  finally:
    os.rename(own + ".moved", own)
  assert _strings(answer["item_ids"]) == _strings(expected["item_ids"])
  np.testing.assert_allclose(answer["scores"].numpy(), expected["scores"].numpy(), rtol=1e-5)


def test_warmup_file_holds_one_request_per_signature_that_the_export_answers(exported):
  module, path, loaded, (serve, _) = exported
  from tensorflow_serving.apis import prediction_log_pb2  # pylint: disable=g-import-not-at-top
  records = tf.data.TFRecordDataset(os.path.join(path, "assets.extra",
                                                 "tf_serving_warmup_requests"))
  requests = [prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
              for record in records]
  assert sorted(request.model_spec.signature_name for request in requests) == sorted(
      module.signatures())
  assert {request.model_spec.name for request in requests} == {"recs"}
  for request in requests:
    name = request.model_spec.signature_name
    inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
    assert set(inputs["history"].astype(str).ravel()) <= set(module.most_popular_ids) | {""}
    tensors = {key: tf.constant(value) for key, value in inputs.items()}
    expected = getattr(module, name.replace("serving_default", "recommend"))(**tensors)
    for answer in (loaded.signatures[name](**tensors), serve(name, inputs)):
      for output, value in expected.items():
        if value.dtype == tf.string:
          assert np.asarray(answer[output]).astype(str).tolist() == _strings(value)
        else:
          np.testing.assert_allclose(np.asarray(answer[output]), value.numpy(), rtol=1e-5)


def test_versions_are_numbered_and_never_overwritten(exported, tmp_path):
  module = exported[0]
  base = str(tmp_path / "exports")
  assert export.save_version(module, base).endswith(os.path.join("exports", "1"))
  assert export.save_version(module, base).endswith(os.path.join("exports", "2"))
  with pytest.raises(FileExistsError, match="never overwritten"):
    export.save_version(module, base, version=1)
  assert sorted(os.listdir(base)) == ["1", "2"]  # No temporary directory left behind.
  assert os.path.exists(os.path.join(base, "2", "saved_model.pb"))


def test_stale_temporary_folders_are_removed_and_live_ones_and_versions_kept(tmp_path):
  base = tmp_path / "exports"
  finished = subprocess.Popen([sys.executable, "-c", "pass"])
  finished.wait()
  host = socket.gethostname()
  names = {
      f".tmp-3-{finished.pid}@{host}-{'a' * 32}": False,  # Its writer is gone: stale.
      f".tmp-4-{os.getpid()}@{host}-{'b' * 32}": True,  # Being written by this process.
      f".tmp-5-{finished.pid}@another-host-{'c' * 32}": True,  # Another host's, recent.
      f".tmp-6-{'d' * 32}": True,  # An older naming, recent.
      f".tmp-7-{'e' * 32}": False,  # An older naming, two days old: stale.
      "1": True,
      "notes.txt": True,
  }
  base.mkdir()
  for name in names:
    if name == "notes.txt":
      (base / name).write_text("x")
    else:
      (base / name).mkdir()
  two_days_ago = time.time() - 2 * 24 * 3600
  for name in (f".tmp-7-{'e' * 32}", "1"):
    os.utime(base / name, (two_days_ago, two_days_ago))
  assert export.remove_stale_temporaries(str(base)) == sorted(
      name for name, kept in names.items() if not kept)
  assert sorted(os.listdir(base)) == sorted(name for name, kept in names.items() if kept)


_KILLED_EXPORT = r"""
import os, signal, sys
import tensorflow as tf
from tfrs_smoe.serving import export
module = tf.Module()  # Enough of a RecommenderModule for save_version.
module.signatures = dict
module.most_popular_ids, module.example_user_ids, module.k = [], [], 1
def killed(*args):  # Dies once the SavedModel is written, before the rename.
  os.kill(os.getpid(), signal.SIGKILL)
export.write_warmup_file = killed
export.save_version(module, sys.argv[1])
"""


def test_the_next_export_removes_the_folder_of_a_killed_one(exported, tmp_path):
  base = tmp_path / "exports"
  result = subprocess.run([sys.executable, "-c", _KILLED_EXPORT, str(base)],
                          capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == -signal.SIGKILL, result.stderr
  left = os.listdir(base)
  assert len(left) == 1 and left[0].startswith(".tmp-1-")
  assert os.path.exists(base / left[0] / "saved_model.pb")
  assert export.save_version(exported[0], str(base)).endswith(os.path.join("exports", "1"))
  assert os.listdir(base) == ["1"]


_FRESH_PROCESS = r"""
import json, sys
import numpy as np
import tensorflow as tf
request = json.load(open(sys.argv[2]))
loaded = tf.saved_model.load(sys.argv[1])
answers = {}
for name, inputs in request.items():
  outputs = loaded.signatures[name](**{k: tf.constant(v, tf.int32 if k == "k" else tf.string)
                                       for k, v in inputs.items()})
  answers[name] = {k: v.numpy().tolist() if v.dtype != tf.string else
                   v.numpy().astype(str).tolist() for k, v in outputs.items()}
try:
  loaded.signatures["recommend"](history=tf.constant([[1, 2]]))
except (TypeError, ValueError, tf.errors.InvalidArgumentError) as error:
  answers["wrong_dtype"] = type(error).__name__
try:
  loaded.signatures["recommend"](history=tf.constant(["m01", "m02"]))
except tf.errors.InvalidArgumentError as error:
  answers["wrong_rank"] = str(error)
answers["modules"] = sorted(m for m in sys.modules if m.startswith(("tfrs_smoe", "tensorflow_rec")))
json.dump(answers, open(sys.argv[3], "w"))
"""


def test_export_answers_the_same_in_a_process_without_tfrs_smoe(tmp_path):
  module = _module(k=4, retriever=_retriever(), num_candidates=10)
  path = export.save_version(module, str(tmp_path / "exports"))
  request = {
      "recommend": {"history": HISTORY},
      "recommend_for_user": {"history": HISTORY, "user_id": ["alice", "zed", "bob"]},
      "recommend_with_options": {"history": HISTORY, "k": 2, "exclude": ["m00", "m05"]},
      "recommend_for_user_with_options": {"history": HISTORY, "user_id": ["alice", "zed", "bob"],
                                          "k": 6, "exclude": [["m00"], ["m01"], ["m02"]]},
      "rank": {"history": HISTORY, "candidates": [["m05", "nope"], ["m20", "m21"],
                                                  ["m01", "m02"]]},
      "rank_for_user": {"history": HISTORY, "candidates": _ROWS3, "user_id": ["bob"] * 3},
      "explain": {"history": HISTORY},
  }
  (tmp_path / "request.json").write_text(json.dumps(request))
  script = tmp_path / "serve.py"
  script.write_text(_FRESH_PROCESS)
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  result = subprocess.run([sys.executable, str(script), path, str(tmp_path / "request.json"),
                           str(tmp_path / "answers.json")], capture_output=True, text=True,
                          cwd=str(tmp_path), env=env, timeout=300, check=False)
  assert result.returncode == 0, result.stderr
  answers = json.loads((tmp_path / "answers.json").read_text())
  assert answers.pop("modules") == []
  assert answers.pop("wrong_dtype")
  assert "history must be a [batch, length] string matrix" in answers.pop("wrong_rank")
  for name, inputs in request.items():
    expected = getattr(module, name)(**_tensors(inputs))
    assert sorted(answers[name]) == sorted(expected)
    for output, value in expected.items():
      if value.dtype == tf.string:
        assert answers[name][output] == _strings(value)
      else:
        np.testing.assert_allclose(answers[name][output], value.numpy(), rtol=1e-5)


def test_saved_model_cli_lists_and_runs_the_signatures(exported):
  path = exported[1]  # k = 4.
  cli = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
  shown = subprocess.run(cli + ["show", "--dir", path, "--all"], capture_output=True, text=True,
                         timeout=300, check=True).stdout
  for signature in ("serving_default", "recommend", "recommend_for_user",
                    "recommend_with_options", "recommend_for_user_with_options", "rank",
                    "rank_for_user", "explain"):
    assert f"signature_def['{signature}']" in shown
  indent = "\n        "
  # Inputs are checked in the graph (with errors naming them), so declared without a shape.
  assert f"inputs['history'] tensor_info:{indent}dtype: DT_STRING{indent}shape: unknown_rank" in (
      shown)
  assert f"inputs['k'] tensor_info:{indent}dtype: DT_INT32{indent}shape: unknown_rank" in shown
  assert f"outputs['item_ids'] tensor_info:{indent}dtype: DT_STRING{indent}shape: (-1, 4)" in shown
  # Session-based, like TF Serving: k and exclude left out take their defaults.
  ran = subprocess.run(cli + ["run", "--dir", path, "--tag_set", "serve", "--signature_def",
                              "recommend_with_options", "--input_exprs",
                              "history=[['m01', 'm02']]"],
                       capture_output=True, text=True, timeout=300, check=True).stdout
  assert "item_ids" in ran and "scores" in ran and ran.count("b'm") == 4


def test_export_trained_with_a_user_and_an_item_feature_answers_like_the_keras_model(tmp_path):
  from tfrs_smoe.data import sequences  # pylint: disable=g-import-not-at-top
  from tfrs_smoe.data import splits  # pylint: disable=g-import-not-at-top
  # Users alice, bob, carol are indices 2, 3, 4; bob and carol share a plan; 1 (unknown) has 0.
  plan = {"plan": np.array([0, 0, 1, 2, 2], np.int32)}
  studio = {"studio": (np.arange(NUM_ITEMS) % 3).astype(np.int32)}
  tf.keras.utils.set_random_seed(0)
  encoder = smoe_bst.SMoEBSTConfig(**{**ENCODER.__dict__, "user_dim": 0, "feature_dim": 3})
  ranker = smoe_bst.SMoEBST(NUM_ITEMS, 5, FEATURES, encoder,
                            engagement_multitask.MultitaskConfig(softmax="full"),
                            max_len=MAX_LEN, item_categorical=studio, user_features=plan)
  ranker.initialize()
  rng = np.random.RandomState(0)
  log = splits.IndexedLog(
      user=np.repeat(np.arange(2, 5), 8).astype(np.int32),
      item=rng.randint(2, NUM_ITEMS, 24).astype(np.int32),
      timestamp=np.tile(np.arange(8), 3).astype(np.int64), engagement=np.ones(24, np.float32),
      positive=np.ones(24, bool))
  ranker.compile(tf.keras.optimizers.Adam(1e-2))
  ranker.fit(sequences.SequencePipeline(MAX_LEN, next_k=1, soft_labels=(1.0,)).sequences(log)
             .batch(3), epochs=2, verbose=0)
  assert ranker.encoder.user_features is not None and "studio" in ranker.content.categorical
  module = recommender_module.RecommenderModule(ranker, ITEM_IDS, USER_IDS, POPULARITY,
                                                MAX_LEN, k=5)
  loaded = tf.saved_model.load(export.save_version(module, str(tmp_path / "recs")))
  history = tf.constant([["m01", "m02", "m03"]] * 4)
  users = tf.constant(["alice", "bob", "carol", "zed"])  # zed is unknown: index 1.
  keras_features = {"history": np.pad([[3, 4, 5]] * 4, [[0, 0], [MAX_LEN - 3, 0]]),
                    "user_index": np.array([2, 3, 4, 1], np.int32)}
  scores = ranker.score_catalogue(keras_features, ranker.item_table()).numpy()
  scores[:, :2] = -np.inf
  scores[:, 3:6] = -np.inf  # The history is never recommended.
  answer = loaded.signatures["recommend_for_user"](history=history, user_id=users)
  assert _strings(answer["item_ids"]) == [_ids(np.argsort(-row, kind="stable")[:5])
                                          for row in scores]
  np.testing.assert_allclose(answer["scores"].numpy(), -np.sort(-scores, axis=1)[:, :5],
                             rtol=1e-5, atol=1e-6)
  candidates = tf.constant([["m07", "m08", "m09"]] * 4)
  ranked = loaded.signatures["rank_for_user"](history=history, candidates=candidates,
                                              user_id=users)
  np.testing.assert_allclose(
      ranked["scores"].numpy(),
      ranker.score_candidates(keras_features, np.array([[9, 10, 11]] * 4)).numpy(),
      rtol=1e-5, atol=1e-6)
  # The user feature reaches the answer: bob and carol (one plan) get the same expert
  # weights from the same history; alice (another plan) and the unknown user do not.
  _, alpha = ranker.user_vector(keras_features)
  np.testing.assert_allclose(alpha[1].numpy(), alpha[2].numpy(), rtol=1e-6)
  assert not np.allclose(alpha[0].numpy(), alpha[1].numpy())
