"""Requests to a TF Serving model exported by `tfrs_smoe.serving.export`: gRPC and REST bodies."""

from typing import Any, Dict, List, Optional, Sequence, Union

import tensorflow as tf

SIGNATURES = ("serving_default", "recommend", "recommend_for_user", "recommend_with_options",
              "recommend_for_user_with_options", "rank", "rank_for_user", "explain")
OPTIONS_SIGNATURES = ("recommend_with_options", "recommend_for_user_with_options")

# One list of item ids for every history row, or one list per row.
Exclusions = Union[Sequence[str], Sequence[Sequence[str]]]


def _padded(rows: Sequence[Sequence[str]]) -> List[List[str]]:
  """Rows right-padded with "" to one length (TF Serving takes rectangular tensors)."""
  width = max((len(row) for row in rows), default=0)
  return [list(row) + [""] * (width - len(row)) for row in rows]


def _per_row(exclude: Exclusions) -> bool:
  return len(exclude) > 0 and not isinstance(exclude[0], str)


class PredictClient:
  """Builds (and sends) Predict requests for the signatures of an exported recommender.

  Histories are lists of raw item ids, oldest first, of any lengths: they are right-padded
  with "" as the export expects. The `*_with_options` signatures also take an optional `k` (items
  to return) and `exclude` (item ids never to return: one list for every row, or one list per
  row); left out, the server uses the export's defaults. gRPC goes through
  `tensorflow-serving-api` and `grpcio` (installed with tfrs_smoe).

  Args:
    model_name: the model's name in TF Serving (`MODEL_NAME`, or the models.config name).
    version: a version to pin; None lets the server pick its latest.

  Example (`client.predict("localhost:8500", request)` sends a request to a running TF
  Serving and returns its outputs, e.g. {"scores": array, ...}):
    >>> client = PredictClient("recommender")
    >>> client.rest_body("recommend", [["m1", "m2"], ["m3"]])  # POST to :predict
    {'signature_name': 'recommend', 'instances': [{'history': ['m1', 'm2']},
                                                  {'history': ['m3', '']}]}
    >>> request = client.grpc_request("rank", [["m1"]], candidates=[["m5", "m6"]])
    >>> request.model_spec.signature_name, sorted(request.inputs)
    ('rank', ['candidates', 'history'])
    >>> request = client.grpc_request("recommend_with_options", [["m1"]], k=3, exclude=["m9"])
    >>> tf.make_ndarray(request.inputs["k"]), tf.make_ndarray(request.inputs["exclude"])
    (array(3, dtype=int32), array([b'm9'], dtype=object))
  """

  def __init__(self, model_name: str, version: Optional[int] = None):
    self.model_name = model_name
    self.version = version

  def inputs(self, signature: str, histories: Sequence[Sequence[str]],
             candidates: Optional[Sequence[Sequence[str]]] = None,
             user_ids: Optional[Sequence[str]] = None, k: Optional[int] = None,
             exclude: Optional[Exclusions] = None) -> Dict[str, Any]:
    """The named inputs of `signature`, as columns; checks that the right ones are given.

    Args:
      signature: one of `SIGNATURES`.
      histories: one list of raw item ids per row, oldest first.
      candidates: one list of item ids per row (`rank*`).
      user_ids: one user id per row (`*_for_user*`).
      k: items to return (`*_with_options`; optional).
      exclude: item ids not to return (`*_with_options`; optional): [m] for every row or one
        list per row.

    Returns:
      Input name -> a list (nested for matrices) or an int (k).
    """
    if signature not in SIGNATURES:
      raise ValueError(f"Unknown signature {signature!r}; use one of {SIGNATURES}.")
    if not histories:
      raise ValueError("histories must hold at least one history (it may be empty).")
    needs_candidates = signature.startswith("rank")
    needs_users = "_for_user" in signature
    if needs_candidates != (candidates is not None) or needs_users != (user_ids is not None):
      raise ValueError(f"{signature} takes history" + (", candidates" if needs_candidates else "")
                       + (", user_id" if needs_users else "") + ".")
    if signature not in OPTIONS_SIGNATURES and (k is not None or exclude is not None):
      raise ValueError(f"{signature} takes no k or exclude; use "
                       f"{' or '.join(OPTIONS_SIGNATURES)}.")
    inputs = {"history": _padded(histories)}
    for name, values in (("candidates", candidates), ("user_id", user_ids)):
      if values is not None:
        if len(values) != len(histories):
          raise ValueError(f"{name} needs one entry per history: {len(values)} != "
                           f"{len(histories)}.")
        inputs[name] = _padded(values) if name == "candidates" else list(values)
    if k is not None:
      if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}.")
      inputs["k"] = k
    if exclude is not None:
      if _per_row(exclude):
        if len(exclude) != len(histories):
          raise ValueError(f"exclude needs one list per history (or one list for all): "
                           f"{len(exclude)} != {len(histories)}.")
        inputs["exclude"] = _padded(exclude)
      else:
        inputs["exclude"] = list(exclude)
    return inputs

  def rest_body(self, signature: str, histories: Sequence[Sequence[str]],
                candidates: Optional[Sequence[Sequence[str]]] = None,
                user_ids: Optional[Sequence[str]] = None, row_format: bool = True,
                k: Optional[int] = None, exclude: Optional[Exclusions] = None
                ) -> Dict[str, Any]:
    """The JSON body of a REST predict request: "instances" (rows) or "inputs" (columns).

    The row format splits every input along the batch, so it cannot carry the scalar `k`
    (use row_format=False); an `exclude` list for every row is repeated in each row.
    """
    inputs = self.inputs(signature, histories, candidates, user_ids, k, exclude)
    if not row_format:
      return {"signature_name": signature, "inputs": inputs}
    if "k" in inputs:
      raise ValueError("k is one scalar per request, which the row format cannot carry: use "
                       "row_format=False (the columnar \"inputs\" format) or leave k out.")
    if "exclude" in inputs and not _per_row(exclude):
      inputs["exclude"] = [inputs["exclude"]] * len(histories)
    rows = [{name: values[row] for name, values in inputs.items()}
            for row in range(len(histories))]
    return {"signature_name": signature, "instances": rows}

  def rest_url(self, host: str = "localhost:8501") -> str:
    """The REST predict URL of the model (and version, if pinned)."""
    version = f"/versions/{self.version}" if self.version is not None else ""
    return f"http://{host}/v1/models/{self.model_name}{version}:predict"

  def grpc_request(self, signature: str, histories: Sequence[Sequence[str]],
                   candidates: Optional[Sequence[Sequence[str]]] = None,
                   user_ids: Optional[Sequence[str]] = None, k: Optional[int] = None,
                   exclude: Optional[Exclusions] = None):
    """A `tensorflow_serving.apis.predict_pb2.PredictRequest` for `signature`."""
    from tensorflow_serving.apis import predict_pb2  # pylint: disable=g-import-not-at-top
    request = predict_pb2.PredictRequest()
    request.model_spec.name = self.model_name
    request.model_spec.signature_name = signature
    if self.version is not None:
      request.model_spec.version.value = self.version
    for name, values in self.inputs(signature, histories, candidates, user_ids, k,
                                    exclude).items():
      if name == "k":
        proto = tf.make_tensor_proto(values, dtype=tf.int32)
      elif name == "exclude" and not values:
        proto = tf.make_tensor_proto([], dtype=tf.string, shape=[0])
      else:
        proto = tf.make_tensor_proto(values, dtype=tf.string)
      request.inputs[name].CopyFrom(proto)
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
