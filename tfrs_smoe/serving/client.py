"""Requests to a TF Serving model exported by `tfrs_smoe.serving.export`: gRPC and REST bodies."""

from typing import Any, Dict, List, Optional, Sequence

import tensorflow as tf

SIGNATURES = ("recommend", "recommend_for_user", "rank", "rank_for_user", "explain")


def _padded(rows: Sequence[Sequence[str]]) -> List[List[str]]:
  """Rows right-padded with "" to one length (TF Serving takes rectangular tensors)."""
  width = max((len(row) for row in rows), default=0)
  return [list(row) + [""] * (width - len(row)) for row in rows]


class PredictClient:
  """Builds (and sends) Predict requests for the signatures of an exported recommender.

  Histories are lists of raw item ids, oldest first, of any lengths: they are right-padded
  with "" as the export expects. gRPC needs `tensorflow-serving-api` (and `grpcio`), imported
  only when a gRPC request is built.

  Args:
    model_name: the model's name in TF Serving (`MODEL_NAME`, or the models.config name).
    version: a version to pin; None lets the server pick its latest.

  Example:
    >>> client = PredictClient("recommender")
    >>> body = client.rest_body("recommend", [["m1", "m2"], ["m3"]])  # POST to :predict
    >>> request = client.grpc_request("rank", [["m1"]], candidates=[["m5", "m6"]])
    >>> client.predict("localhost:8500", request)  # {"scores": array, ...}
  """

  def __init__(self, model_name: str, version: Optional[int] = None):
    self.model_name = model_name
    self.version = version

  def inputs(self, signature: str, histories: Sequence[Sequence[str]],
             candidates: Optional[Sequence[Sequence[str]]] = None,
             user_ids: Optional[Sequence[str]] = None) -> Dict[str, List[Any]]:
    """The named inputs of `signature`, as columns; checks that the right ones are given."""
    if signature not in SIGNATURES:
      raise ValueError(f"Unknown signature {signature!r}; use one of {SIGNATURES}.")
    if not histories:
      raise ValueError("histories must hold at least one history (it may be empty).")
    needs_candidates = signature.startswith("rank")
    needs_users = signature.endswith("_for_user")
    if needs_candidates != (candidates is not None) or needs_users != (user_ids is not None):
      raise ValueError(f"{signature} takes history" + (", candidates" if needs_candidates else "")
                       + (", user_id" if needs_users else "") + ".")
    inputs = {"history": _padded(histories)}
    for name, values in (("candidates", candidates), ("user_id", user_ids)):
      if values is not None:
        if len(values) != len(histories):
          raise ValueError(f"{name} needs one entry per history: {len(values)} != "
                           f"{len(histories)}.")
        inputs[name] = _padded(values) if name == "candidates" else list(values)
    return inputs

  def rest_body(self, signature: str, histories: Sequence[Sequence[str]],
                candidates: Optional[Sequence[Sequence[str]]] = None,
                user_ids: Optional[Sequence[str]] = None, row_format: bool = True
                ) -> Dict[str, Any]:
    """The JSON body of a REST predict request: "instances" (rows) or "inputs" (columns)."""
    inputs = self.inputs(signature, histories, candidates, user_ids)
    if not row_format:
      return {"signature_name": signature, "inputs": inputs}
    rows = [{name: values[row] for name, values in inputs.items()}
            for row in range(len(histories))]
    return {"signature_name": signature, "instances": rows}

  def rest_url(self, host: str = "localhost:8501") -> str:
    """The REST predict URL of the model (and version, if pinned)."""
    version = f"/versions/{self.version}" if self.version is not None else ""
    return f"http://{host}/v1/models/{self.model_name}{version}:predict"

  def grpc_request(self, signature: str, histories: Sequence[Sequence[str]],
                   candidates: Optional[Sequence[Sequence[str]]] = None,
                   user_ids: Optional[Sequence[str]] = None):
    """A `tensorflow_serving.apis.predict_pb2.PredictRequest` for `signature`."""
    from tensorflow_serving.apis import predict_pb2  # pylint: disable=g-import-not-at-top
    request = predict_pb2.PredictRequest()
    request.model_spec.name = self.model_name
    request.model_spec.signature_name = signature
    if self.version is not None:
      request.model_spec.version.value = self.version
    for name, values in self.inputs(signature, histories, candidates, user_ids).items():
      request.inputs[name].CopyFrom(tf.make_tensor_proto(values, dtype=tf.string))
    return request

  @staticmethod
  def predict(target: str, request, timeout_seconds: float = 10.0) -> Dict[str, Any]:
    """Sends `request` to the gRPC server at `target` ("host:port"); returns named arrays."""
    import grpc  # pylint: disable=g-import-not-at-top
    from tensorflow_serving.apis import (  # pylint: disable=g-import-not-at-top
        prediction_service_pb2_grpc)
    with grpc.insecure_channel(target) as channel:
      stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
      response = stub.Predict(request, timeout_seconds)
    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}
