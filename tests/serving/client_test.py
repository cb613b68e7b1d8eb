"""Tests of PredictClient: REST bodies, gRPC requests, and that both feed an export correctly."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tfrs_smoe.serving import client as client_lib

import recommender_module_test as serving_test  # A sibling test module: its tiny export.


def test_rest_bodies_in_row_and_column_format_pad_histories():
  client = client_lib.PredictClient("recommender")
  rows = client.rest_body("recommend_for_user", [["m1", "m2"], ["m3"]], user_ids=["a", "b"])
  assert rows == {"signature_name": "recommend_for_user", "instances": [
      {"history": ["m1", "m2"], "user_id": "a"}, {"history": ["m3", ""], "user_id": "b"}]}
  columns = client.rest_body("rank", [["m1"], []], candidates=[["m5", "m6"], ["m7"]],
                             row_format=False)
  assert columns == {"signature_name": "rank", "inputs": {
      "history": [["m1"], [""]], "candidates": [["m5", "m6"], ["m7", ""]]}}
  assert client.rest_url() == "http://localhost:8501/v1/models/recommender:predict"
  pinned = client_lib.PredictClient("recommender", version=3)
  assert pinned.rest_url("h:1") == "http://h:1/v1/models/recommender/versions/3:predict"


def test_options_bodies_carry_k_in_columns_and_exclusions_in_every_row():
  client = client_lib.PredictClient("recommender")
  columns = client.rest_body("recommend_with_options", [["m1"], ["m2", "m3"]], k=3,
                             exclude=["m9"], row_format=False)
  assert columns == {"signature_name": "recommend_with_options", "inputs": {
      "history": [["m1", ""], ["m2", "m3"]], "k": 3, "exclude": ["m9"]}}
  rows = client.rest_body("recommend_for_user_with_options", [["m1"], ["m2"]],
                          user_ids=["a", "b"], exclude=["m9", "m8"])
  assert rows["instances"] == [{"history": ["m1"], "user_id": "a", "exclude": ["m9", "m8"]},
                               {"history": ["m2"], "user_id": "b", "exclude": ["m9", "m8"]}]
  per_row = client.rest_body("recommend_with_options", [["m1"], ["m2"]],
                             exclude=[["m9"], ["m7", "m8"]])
  assert [row["exclude"] for row in per_row["instances"]] == [["m9", ""], ["m7", "m8"]]
  with pytest.raises(ValueError, match="row format cannot carry"):
    client.rest_body("recommend_with_options", [["m1"]], k=3)


@pytest.mark.parametrize("signature, kwargs, message", [
    ("recommend", {"candidates": [["m1"]]}, "recommend takes history."),
    ("recommend", {"k": 3}, "takes no k or exclude"),
    ("recommend_with_options", {"k": 0}, "k must be a positive int"),
    ("recommend_with_options", {"exclude": [["m1"], ["m2"]]}, "exclude needs one list per"),
    ("rank", {}, "rank takes history, candidates."),
    ("rank_for_user", {"candidates": [["m1"]]}, "user_id"),
    ("recommend_for_user", {"user_ids": ["a", "b"]}, "one entry per history"),
    ("predict", {}, "Unknown signature")])
def test_bad_requests_are_rejected_before_sending(signature, kwargs, message):
  with pytest.raises(ValueError, match=message):
    client_lib.PredictClient("recommender").inputs(signature, [["m1"]], **kwargs)


@pytest.fixture(scope="module", name="exported")
def _exported(tmp_path_factory, session_cache):
  """The k=4 export of recommender_module_test.py (module, path, loaded, TF Serving-like)."""
  return serving_test.shared_export(tmp_path_factory, session_cache)


def test_grpc_request_and_rest_columns_answer_like_the_module(exported):
  module, _, loaded, (serve, _) = exported
  assert module.k == 4
  client = client_lib.PredictClient("recommender", version=1)
  histories = [["m01", "m02", "m03"], ["m10"], []]
  request = client.grpc_request("rank", histories, candidates=[["m05"], ["m20"], ["m01"]])
  assert request.model_spec.name == "recommender" and request.model_spec.version.value == 1
  assert request.model_spec.signature_name == "rank"
  inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
  assert inputs["history"].shape == (3, 3)
  answer = loaded.signatures["rank"](**{k: tf.constant(v) for k, v in inputs.items()})
  expected = module.rank(
      history=tf.constant([["m01", "m02", "m03"], ["m10", "", ""], ["", "", ""]]),
      candidates=tf.constant([["m05"], ["m20"], ["m01"]]))
  np.testing.assert_allclose(answer["scores"].numpy(), expected["scores"].numpy(), rtol=1e-5)
  body = client.rest_body("recommend", histories, row_format=False)
  answer = loaded.signatures["recommend"](history=tf.constant(body["inputs"]["history"]))
  expected = module.recommend(
      history=tf.constant([["m01", "m02", "m03"], ["m10", "", ""], ["", "", ""]]))
  np.testing.assert_array_equal(answer["item_ids"].numpy(), expected["item_ids"].numpy())
  np.testing.assert_allclose(answer["scores"].numpy(), expected["scores"].numpy(), rtol=1e-5)
  # Per-request options, answered as TF Serving answers them (k left out: the export's 4).
  for kwargs, k, excluded in (({"k": 2, "exclude": ["m00"]}, 2, ["m00"]),
                              ({"exclude": [["m00"], ["m01"], []]}, 4, [["m00"], ["m01"], [""]]),
                              ({}, 4, [])):
    request = client.grpc_request("recommend_with_options", histories, **kwargs)
    answer = serve("recommend_with_options",
                   {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()})
    expected = module.recommend_with_options(
        history=tf.constant(body["inputs"]["history"]), k=tf.constant(k),
        exclude=tf.constant(excluded, tf.string))
    np.testing.assert_array_equal(answer["item_ids"], expected["item_ids"].numpy())


def test_the_example_models_config_parses_as_a_model_server_config():
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  from tensorflow_serving.config import (  # pylint: disable=g-import-not-at-top
      model_server_config_pb2)
  path = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "models.config")
  with open(path, encoding="utf-8") as f:
    config = text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())
  names = [model.name for model in config.model_config_list.config]
  assert names == ["smoe_bst", "two_stage"]
  assert all(model.base_path == f"/models/{model.name}"
             for model in config.model_config_list.config)
