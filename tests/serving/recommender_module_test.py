"""Tests of RecommenderModule's signatures in memory and of exports loaded without tfrs_smoe."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

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
  model = smoe_bst.SMoEBST(NUM_ITEMS, 5, FEATURES, ENCODER,
                           engagement_multitask.MultitaskConfig(), max_len=MAX_LEN)
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


# Oldest first, right-padded; "zz" is unknown; the first row is longer than MAX_LEN.
HISTORY = [["m01", "m02", "zz", "m03", "m04", "m05", "m06", "m07"],
           ["m10", "", "m11", "", "", "", "", ""],
           ["zz", "", "", "", "", "", "", ""]]


def test_history_is_packed_left_padded_with_unknown_ids_dropped_and_the_most_recent_kept():
  features = _module()._features(tf.constant(HISTORY), tf.constant(["bob", "nobody", "alice"]))
  np.testing.assert_array_equal(features["history"].numpy(), [
      [4, 5, 6, 7, 8, 9], [0, 0, 0, 0, 12, 13], [0, 0, 0, 0, 0, 0]])
  np.testing.assert_array_equal(features["user_index"].numpy(), [3, 1, 2])


def test_recommend_ranks_the_models_scores_without_history_and_falls_back_to_popularity():
  module = _module(k=4)
  outputs = module.signatures()["recommend"](history=tf.constant(HISTORY))
  features = module._features(tf.constant(HISTORY), None)
  scores = module.ranker(features).numpy()
  for row in range(2):
    scores[row, features["history"].numpy()[row]] = -np.inf
    scores[row, :2] = -np.inf
    expected = np.argsort(-scores[row], kind="stable")[:4]
    assert list(outputs["item_ids"].numpy()[row].astype(str)) == _ids(expected)
    np.testing.assert_allclose(outputs["scores"].numpy()[row], scores[row, expected], rtol=1e-5)
  # Only an unknown id: no known history, so the most popular items.
  assert list(outputs["item_ids"].numpy()[2].astype(str)) == ["m00", "m01", "m02", "m03"]


def test_rank_scores_candidates_with_ctr_and_completion_and_unknowns_lowest():
  module = _module()
  candidates = tf.constant([["m05", "nope", "m00"], ["m20", "m21", "m22"], ["m01", "m02", ""]])
  outputs = module.signatures()["rank"](history=tf.constant(HISTORY), candidates=candidates)
  assert sorted(outputs) == ["completion", "ctr", "scores"]
  features = module._features(tf.constant(HISTORY), None)
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


def test_explain_gives_each_users_expert_weights():
  module = _module()
  weights = module.signatures()["explain"](history=tf.constant(HISTORY))["expert_weights"]
  assert weights.shape == (3, 2)
  expected = module.ranker.user_vector(module._features(tf.constant(HISTORY), None))[1]
  np.testing.assert_allclose(weights.numpy(), expected.numpy(), rtol=1e-5)
  assert not np.allclose(weights.numpy()[0], weights.numpy()[1])  # Per user, not a constant.


def test_two_stage_reranks_the_retrievers_top_candidates():
  retriever = _retriever()
  module = _module(k=3, retriever=retriever, num_candidates=8)
  outputs = module.signatures()["recommend_for_user"](
      history=tf.constant(HISTORY[:2]), user_id=tf.constant(["alice", "bob"]))
  features = module._features(tf.constant(HISTORY[:2]), tf.constant(["alice", "bob"]))
  retrieved = retriever(features).numpy()
  for row in range(2):
    retrieved[row, features["history"].numpy()[row]] = -np.inf
    retrieved[row, :2] = -np.inf
    candidates = np.argsort(-retrieved[row], kind="stable")[:8]
    ranked = module.ranker.score_candidates(
        {name: value[row:row + 1] for name, value in features.items()},
        candidates[None]).numpy()[0]
    expected = candidates[np.argsort(-ranked, kind="stable")[:3]]
    assert list(outputs["item_ids"].numpy()[row].astype(str)) == _ids(expected)


@pytest.mark.parametrize("kwargs, message", [({"k": 0}, "k must be"),
                                             ({"k": 5, "num_candidates": 3}, "num_candidates")])
def test_bad_settings_are_rejected(kwargs, message):
  retriever = _retriever() if "num_candidates" in kwargs else None
  with pytest.raises(ValueError, match=message):
    _module(retriever=retriever, **kwargs)


def test_versions_are_numbered_and_never_overwritten(tmp_path):
  module = _module()
  base = str(tmp_path / "exports")
  assert export.save_version(module, base).endswith(os.path.join("exports", "1"))
  assert export.save_version(module, base).endswith(os.path.join("exports", "2"))
  with pytest.raises(FileExistsError, match="never overwritten"):
    export.save_version(module, base, version=1)
  assert sorted(os.listdir(base)) == ["1", "2"]  # No temporary directory left behind.
  assert os.path.exists(os.path.join(base, "2", "saved_model.pb"))


_FRESH_PROCESS = r"""
import json, sys
import numpy as np
import tensorflow as tf
request = json.load(open(sys.argv[2]))
loaded = tf.saved_model.load(sys.argv[1])
answers = {}
for name, inputs in request.items():
  outputs = loaded.signatures[name](**{k: tf.constant(v) for k, v in inputs.items()})
  answers[name] = {k: v.numpy().tolist() if v.dtype != tf.string else
                   v.numpy().astype(str).tolist() for k, v in outputs.items()}
try:
  loaded.signatures["recommend"](history=tf.constant([[1, 2]]))
except (TypeError, ValueError, tf.errors.InvalidArgumentError) as error:
  answers["wrong_dtype"] = type(error).__name__
try:
  loaded.signatures["recommend"](history=tf.constant(["m01", "m02"]))
except (TypeError, ValueError, tf.errors.InvalidArgumentError) as error:
  answers["wrong_rank"] = type(error).__name__
answers["modules"] = sorted(m for m in sys.modules if m.startswith(("tfrs_smoe", "tensorflow_rec")))
json.dump(answers, open(sys.argv[3], "w"))
"""


def test_export_answers_the_same_in_a_process_without_tfrs_smoe(tmp_path):
  module = _module(k=4, retriever=_retriever(), num_candidates=10)
  path = export.save_version(module, str(tmp_path / "exports"))
  request = {
      "recommend": {"history": HISTORY},
      "recommend_for_user": {"history": HISTORY, "user_id": ["alice", "zed", "bob"]},
      "rank": {"history": HISTORY, "candidates": [["m05", "nope"], ["m20", "m21"],
                                                  ["m01", "m02"]]},
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
  assert answers.pop("wrong_dtype") and answers.pop("wrong_rank")
  signatures = module.signatures()
  for name, inputs in request.items():
    expected = signatures[name](**{k: tf.constant(v) for k, v in inputs.items()})
    assert sorted(answers[name]) == sorted(expected)
    for output, value in expected.items():
      if value.dtype == tf.string:
        assert answers[name][output] == value.numpy().astype(str).tolist()
      else:
        np.testing.assert_allclose(answers[name][output], value.numpy(), rtol=1e-5)


def test_saved_model_cli_lists_and_runs_the_signatures(tmp_path):
  path = export.save_version(_module(k=3), str(tmp_path / "exports"))
  cli = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
  shown = subprocess.run(cli + ["show", "--dir", path, "--all"], capture_output=True, text=True,
                         timeout=300, check=True).stdout
  for signature in ("serving_default", "recommend", "recommend_for_user", "rank",
                    "rank_for_user", "explain"):
    assert f"signature_def['{signature}']" in shown
  indent = "\n        "
  assert f"inputs['history'] tensor_info:{indent}dtype: DT_STRING{indent}shape: (-1, -1)" in shown
  assert f"outputs['item_ids'] tensor_info:{indent}dtype: DT_STRING{indent}shape: (-1, 3)" in shown
  ran = subprocess.run(cli + ["run", "--dir", path, "--tag_set", "serve", "--signature_def",
                              "recommend", "--input_exprs", "history=[['m01', 'm02']]"],
                       capture_output=True, text=True, timeout=300, check=True).stdout
  assert "item_ids" in ran and "scores" in ran
