"""A `tf.Module` with TF Serving signatures over raw item ids: recommend, rank, explain."""

import os
import tempfile
from typing import Callable, Dict, Optional, Sequence

import numpy as np
import tensorflow as tf

from tfrs_smoe.data import vocabulary as vocabulary_lib

PADDING_INDEX = 0
OOV_INDEX = 1
FIRST_ITEM_INDEX = 2
UNKNOWN_CANDIDATE_SCORE = float(np.finfo(np.float32).min)
# Names of the vocabulary files in the SavedModel's assets/ (one raw id per line, in index
# order: line n is index n + 2), from which the export builds its lookup tables.
ITEM_VOCABULARY_FILE = "item_ids.txt"
USER_VOCABULARY_FILE = "user_ids.txt"


class RecommenderModule(tf.Module):
  """Serving graph around a trained ranker (S-MoE-BST, BST or two-tower) and an optional retriever.

  Requests carry raw string ids; vocabulary lookups happen inside the graph, through tables built
  from the vocabulary files that the export carries in its `assets/` (`item_ids.txt`,
  `user_ids.txt`, written by `IdVocabulary.write`):
  - `history` [batch, any length] string: a user's items, oldest first, right-padded with "".
    Unknown ids are ignored (neither an error nor a history item); a history longer than the
    model's window keeps its most recent `max_len` items for the model, and every known item of
    it, whatever its length, is excluded from the recommendations. A row with no known item
    gets the popularity ranking (the fallback) instead of the model's, in every signature.
  - `candidates` [batch, n] string: items to score, one row per history row; an unknown
    candidate scores the lowest float32 value.
  - `user_id` [batch] string (the `*_for_user` signatures): one id per history row; an unknown
    user gets the out-of-vocabulary user embedding, as every request without a user does.
  - `k` scalar int32 (the `*_with_options` signatures, optional): items to return for this
    request; default: the export's `k`; capped at the catalogue size (at `num_candidates` in a
    two-stage export). Must be at least 1.
  - `exclude` [m] or [batch, m] string (the `*_with_options` signatures, optional): items never
    to return (titles that are unavailable), one list for every row ([m]) or one per row
    ([batch, m], right-padded with ""); default: none. Unknown ids are ignored.

  A malformed request is rejected with an InvalidArgumentError that names the input (a 1-D
  history, candidates or user ids whose batch differs from the history's, a k that is not a
  positive scalar, ...): the inputs are declared with an unknown shape and checked inside the
  graph, because neither TF Serving nor a loaded SavedModel checks a fed tensor against the
  declared shape, so a wrong one would otherwise fail deep inside the graph or broadcast.

  Optional inputs: in a SavedModel every signature input is required unless the SignatureDef
  gives it a default (its `defaults` field, filled in from the tf.function's default
  arguments). TF Serving (`GetInputValues` in tensorflow/cc/saved_model/util.cc) and Session-based
  loaders fill an omitted input from those defaults; a TF 2.x `tf.saved_model.load(...)
  .signatures[...]` function still needs every input. So `recommend` and `recommend_for_user`
  keep their history (and user_id) inputs and a fixed k, for clients that send only those, and
  `recommend_with_options` / `recommend_for_user_with_options` add `k` (default: the export's k)
  and `exclude` (default: nothing excluded) with SignatureDef defaults, so that a TF Serving
  client may send either, both or neither. (A per-k signature family, as TFRS issue #298
  suggests, does not scale to per-request exclusions.) `k` is one scalar per request: in TF
  Serving's REST API send it in the columnar ("inputs") format; the row format ("instances")
  splits every input along the batch.

  Signatures (all outputs are named):
  - `recommend` (also `serving_default`): history -> item_ids [batch, k] string, scores
    [batch, k] float32. Items of the history and reserved ids are never recommended; when fewer
    than k items are left, the remaining slots hold "" with score -inf. With a retriever, two
    stages: the retriever's top `num_candidates` items are re-ranked by the ranker.
    `recommend_for_user` takes user_id as well.
  - `recommend_with_options`, `recommend_for_user_with_options`: as above, plus the optional
    `k` and `exclude`; item_ids and scores are [batch, k of the request].
  - `rank`: history, candidates -> scores [batch, n], ctr [batch, n] (sigmoid of the score, as
    the CTR head is trained), and completion [batch, n] when the ranker has a completion head.
    A row without a known history item scores its candidates by popularity, as `recommend`
    does: scores log(1 + training positives), ctr the item's share of training positives, and
    completion the head's prediction for an empty history. `rank_for_user` takes user_id as well.
  - `explain` (rankers with a gate): history -> expert_weights [batch, num_experts].

  The same functions are attributes of the module (`module.recommend(history=...)`, ...), and of
  the loaded SavedModel.

  Args:
    ranker: a trained `SMoEBST` or `TwoTower` (a model with `item_table`, `score_catalogue`
      and `score_candidates`).
    item_ids: [num_items - 2] raw item ids in index order (`IdVocabulary.ids`: sorted).
    user_ids: raw user ids in index order (`IdVocabulary.ids`).
    popularity: [num_items] training positives per item index (the fallback's ranking).
    max_len: the models' history window.
    k: items returned by `recommend` (and by default by `recommend_with_options`).
    retriever: optional trained `TwoTower` for the first stage.
    num_candidates: candidates the retriever passes to the ranker.

  Example (an untrained BST on a tiny synthetic log; `serving.export.build_module` makes the
  same module from a run's split and trained model):
    >>> from tfrs_smoe import config as config_lib
    >>> from tfrs_smoe.data import splits, synthetic
    >>> from tfrs_smoe.models import registry
    >>> split = splits.leave_one_out(synthetic.generate_watch_log(
    ...     synthetic.SyntheticConfig(num_users=20, num_titles=30))[0])
    >>> config = config_lib.override(config_lib.ExperimentConfig(),
    ...                              "model: {name: bst, encoder: {num_blocks: 1}}")
    >>> model = registry.get("bst").build(config, split)
    >>> counts = np.bincount(split.train.item[split.train.positive],
    ...                      minlength=split.item_vocabulary.size)
    >>> module = RecommenderModule(model, split.item_vocabulary.ids, split.user_vocabulary.ids,
    ...                            counts, max_len=config.data.max_len, k=10)
    >>> module.recommend(history=tf.constant([["f01", "s0e01", ""]]))["item_ids"].shape
    TensorShape([1, 10])
    >>> module.most_popular_ids  # An empty history gets these first (the popularity fallback).
    ListWrapper(['f01', 'f10', 'f14'])
    >>> module.recommend_with_options(history=tf.constant([[""]]), k=tf.constant(3),
    ...                               exclude=tf.constant(["f01"]))["item_ids"].numpy()
    array([[b'f10', b'f14', b'f09']], dtype=object)
  """

  def __init__(self, ranker: tf.keras.Model, item_ids: Sequence[str], user_ids: Sequence[str],
               popularity: np.ndarray, max_len: int, k: int = 10,
               retriever: Optional[tf.keras.Model] = None, num_candidates: int = 100):
    super().__init__(name="recommender")
    item_vocabulary = _vocabulary(item_ids, "item_ids")
    user_vocabulary = _vocabulary(user_ids, "user_ids")
    num_items = item_vocabulary.size
    if len(popularity) != num_items:
      raise ValueError(f"popularity has {len(popularity)} entries, expected {num_items}.")
    if not 1 <= k <= num_items - FIRST_ITEM_INDEX:
      raise ValueError(f"k must be in [1, {num_items - FIRST_ITEM_INDEX}], got {k}.")
    if retriever is not None and not k <= num_candidates <= num_items - FIRST_ITEM_INDEX:
      raise ValueError(f"num_candidates must be in [k={k}, {num_items - FIRST_ITEM_INDEX}], "
                       f"got {num_candidates}.")
    self.ranker = ranker
    self.retriever = retriever
    self.max_len = max_len
    self.k = k
    self.num_candidates = num_candidates
    self.num_items = num_items
    # The catalogue's vectors do not depend on the request: computed once, saved with the
    # export, not recomputed for every call.
    self._ranker_items = tf.Variable(ranker.item_table(), trainable=False, name="ranker_items")
    self._retriever_items = (None if retriever is None else tf.Variable(
        retriever.item_table(), trainable=False, name="retriever_items"))
    # The vocabulary files live as long as the module; tf.saved_model.save copies them into
    # the export's assets/, which the loaded tables read.
    self._vocabulary_dir = tempfile.TemporaryDirectory(prefix="recommender-vocabularies-")
    self.item_vocabulary_file = tf.saved_model.Asset(item_vocabulary.write(
        os.path.join(self._vocabulary_dir.name, ITEM_VOCABULARY_FILE)))
    self.user_vocabulary_file = tf.saved_model.Asset(user_vocabulary.write(
        os.path.join(self._vocabulary_dir.name, USER_VOCABULARY_FILE)))
    self._item_table = _id_to_index_table(self.item_vocabulary_file)
    self._user_table = _id_to_index_table(self.user_vocabulary_file)
    # Item index - 2 -> raw id, for the recommended items.
    self._item_names = tf.lookup.StaticHashTable(tf.lookup.TextFileInitializer(
        self.item_vocabulary_file, tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER, tf.string,
        tf.lookup.TextFileIndex.WHOLE_LINE), default_value="")
    ids = item_vocabulary.ids
    self.most_popular_ids = [str(ids[i - FIRST_ITEM_INDEX]) for i in
                             np.argsort(-np.asarray(popularity), kind="stable")[:3]
                             if i >= FIRST_ITEM_INDEX]
    self.example_user_ids = [str(user) for user in user_vocabulary.ids[:1]]
    # log(1 + count) keeps the fallback's scores on a readable scale; only their order matters.
    counts = np.asarray(popularity, np.float64)
    self._popularity = tf.constant(np.log1p(counts).astype(np.float32))
    self._positive_share = tf.constant((counts / max(counts.sum(), 1.0)).astype(np.float32))
    self._define_functions()

  def _define_functions(self) -> None:
    """The serving functions, as attributes (so that they are saved with the module too)."""
    history = tf.TensorSpec(None, tf.string, name="history")
    candidates = tf.TensorSpec(None, tf.string, name="candidates")
    user_id = tf.TensorSpec(None, tf.string, name="user_id")
    k_spec = tf.TensorSpec(None, tf.int32, name="k")
    exclude_spec = tf.TensorSpec(None, tf.string, name="exclude")
    # Tensor defaults of a tf.function become the SignatureDef's `defaults`.
    default_k = tf.constant(self.k, tf.int32)
    nothing = tf.constant([], tf.string)

    def recommend(history):
      return self._recommend(history, None)

    def recommend_for_user(history, user_id):
      return self._recommend(history, user_id)

    def recommend_with_options(history, k=default_k, exclude=nothing):
      return self._recommend(history, None, k, exclude)

    def recommend_for_user_with_options(history, user_id, k=default_k, exclude=nothing):
      return self._recommend(history, user_id, k, exclude)

    def rank(history, candidates):
      return self._rank(history, candidates, None)

    def rank_for_user(history, candidates, user_id):
      return self._rank(history, candidates, user_id)

    self.recommend = tf.function(recommend, input_signature=[history])
    self.recommend_for_user = tf.function(recommend_for_user, input_signature=[history, user_id])
    self.recommend_with_options = tf.function(recommend_with_options,
                                              input_signature=[history, k_spec, exclude_spec])
    self.recommend_for_user_with_options = tf.function(
        recommend_for_user_with_options,
        input_signature=[history, user_id, k_spec, exclude_spec])
    self.rank = tf.function(rank, input_signature=[history, candidates])
    self.rank_for_user = tf.function(rank_for_user,
                                     input_signature=[history, candidates, user_id])
    self.explain = None
    if getattr(self.ranker, "gate", None) is not None and hasattr(self.ranker, "user_vector"):

      def explain(history):
        history = _checked_rank(history, 2, "history", "a [batch, length] string matrix")
        features = self._features(history, None)
        return {"expert_weights": self.ranker.user_vector(features)[1]}

      self.explain = tf.function(explain, input_signature=[history])

  def _item_indices(self, ids: tf.Tensor) -> tf.Tensor:
    indices = tf.cast(self._item_table.lookup(ids), tf.int32)
    return tf.where(ids == "", PADDING_INDEX, indices)

  def _user_indices(self, user_id: Optional[tf.Tensor], batch: tf.Tensor) -> tf.Tensor:
    if user_id is None:
      return tf.fill([batch], OOV_INDEX)
    user_id = _checked_rank(user_id, 1, "user_id", "a [batch] string vector")
    user_id = _checked_batch(user_id, batch, "user_id", "one id per history row")
    return tf.cast(self._user_table.lookup(user_id), tf.int32)

  def _features(self, history: tf.Tensor, user_id: Optional[tf.Tensor]) -> Dict[str, tf.Tensor]:
    """The models' inputs of a [batch, length] history: known items left-padded to max_len."""
    return self._pack(self._item_indices(history),
                      self._user_indices(user_id, tf.shape(history)[0]))

  def _pack(self, indices: tf.Tensor, users: tf.Tensor) -> Dict[str, tf.Tensor]:
    """Known items of `indices` [batch, length] left-padded to max_len, most recent last."""
    known = indices >= FIRST_ITEM_INDEX
    length = tf.shape(indices)[1]
    positions = tf.range(length)[tf.newaxis, :]
    # A stable sort on (known, position) moves the known items to the end in their order.
    order = tf.argsort(tf.where(known, positions + length, positions), axis=1, stable=True)
    packed = tf.gather(tf.where(known, indices, PADDING_INDEX), order, batch_dims=1)
    padded = tf.concat([tf.zeros([tf.shape(packed)[0], self.max_len], tf.int32), packed], 1)
    return {"history": padded[:, -self.max_len:], "user_index": users}

  def _exclusions(self, exclude: tf.Tensor, batch: tf.Tensor) -> tf.Tensor:
    """[batch, m] item indices of `exclude` ([m] for every row, or [batch, m])."""
    rank = tf.rank(exclude)
    check = tf.debugging.Assert(
        (rank == 1) | (rank == 2),
        ["exclude must be [m] (one list for every row) or [batch, m]; got shape",
         tf.shape(exclude)])
    with tf.control_dependencies([check]):
      shape = tf.shape(exclude)
    rows = tf.where(rank == 1, 1, shape[0])
    check = tf.debugging.Assert(
        (rank == 1) | tf.equal(rows, batch),
        ["exclude [batch, m] needs one row per history row (or send one [m] list for every "
         "row); exclude rows, history rows:", rows, batch])
    with tf.control_dependencies([check]):
      exclude = tf.reshape(exclude, tf.stack([rows, shape[-1]]))
    return self._item_indices(tf.broadcast_to(exclude, tf.stack([batch, shape[-1]])))

  def _without_excluded(self, scores: tf.Tensor, excluded: tf.Tensor) -> tf.Tensor:
    """`scores` [batch, num_items] with -inf at the reserved indices and `excluded` [batch, m]."""
    batch = tf.shape(scores)[0]
    reserved = tf.broadcast_to(tf.range(FIRST_ITEM_INDEX)[tf.newaxis], [batch, FIRST_ITEM_INDEX])
    excluded = tf.concat([reserved, excluded], axis=1)  # Padding and unknown ids are reserved.
    rows = tf.broadcast_to(tf.range(batch)[:, tf.newaxis], tf.shape(excluded))
    # A sparse update of the few excluded entries: a dense [batch, num_items] mask would cost
    # as much as the scoring itself on large catalogues.
    return tf.tensor_scatter_nd_update(
        scores, tf.reshape(tf.stack([rows, excluded], -1), [-1, 2]),
        tf.fill([tf.size(excluded)], tf.constant(-np.inf, scores.dtype)))

  def _requested_k(self, k: tf.Tensor, limit: int) -> tf.Tensor:
    k = _checked_rank(k, 0, "k", "a scalar int32")
    check = tf.debugging.Assert(k >= 1, ["k must be at least 1; got", k])
    with tf.control_dependencies([check]):
      return tf.minimum(k, limit)

  def _recommend(self, history: tf.Tensor, user_id: Optional[tf.Tensor],
                 k: Optional[tf.Tensor] = None, exclude: Optional[tf.Tensor] = None
                 ) -> Dict[str, tf.Tensor]:
    history = _checked_rank(history, 2, "history", "a [batch, length] string matrix")
    batch = tf.shape(history)[0]
    indices = self._item_indices(history)
    features = self._pack(indices, self._user_indices(user_id, batch))
    excluded = indices  # The whole history, not only the model's window.
    if exclude is not None:
      excluded = tf.concat([excluded, self._exclusions(exclude, batch)], axis=1)
    limit = (self.num_items - FIRST_ITEM_INDEX if self.retriever is None
             else self.num_candidates)
    top_k = self.k if k is None else self._requested_k(k, limit)
    has_history = tf.reduce_any(features["history"] > PADDING_INDEX, axis=1)
    if self.retriever is None:
      model_scores = self.ranker.score_catalogue(features, self._ranker_items)
    else:
      model_scores = self.retriever.score_catalogue(features, self._retriever_items)
    scores = tf.where(has_history[:, tf.newaxis], model_scores, self._popularity[tf.newaxis])
    scores = self._without_excluded(scores, excluded)
    if self.retriever is None:
      top_scores, top_items = tf.math.top_k(scores, k=top_k)
    else:
      retrieved, candidates = tf.math.top_k(scores, k=self.num_candidates)
      ranked = tf.where(has_history[:, tf.newaxis],
                        self.ranker.score_candidates(features, candidates),
                        tf.gather(self._popularity, candidates))
      # When fewer than num_candidates items are left, the excluded ones stay excluded.
      ranked = tf.where(retrieved == -np.inf, tf.constant(-np.inf, ranked.dtype), ranked)
      top_scores, order = tf.math.top_k(ranked, k=top_k)
      top_items = tf.gather(candidates, order, batch_dims=1)
    names = self._item_names.lookup(tf.cast(top_items, tf.int64) - FIRST_ITEM_INDEX)
    return {"item_ids": tf.where(top_scores > -np.inf, names, ""), "scores": top_scores}

  def _rank(self, history: tf.Tensor, candidates: tf.Tensor, user_id: Optional[tf.Tensor]
            ) -> Dict[str, tf.Tensor]:
    history = _checked_rank(history, 2, "history", "a [batch, length] string matrix")
    batch = tf.shape(history)[0]
    candidates = _checked_rank(candidates, 2, "candidates", "a [batch, n] string matrix")
    candidates = _checked_batch(candidates, batch, "candidates", "one row per history row")
    features = self._features(history, user_id)
    has_history = tf.reduce_any(features["history"] > PADDING_INDEX, axis=1)[:, tf.newaxis]
    indices = self._item_indices(candidates)
    known = indices >= FIRST_ITEM_INDEX
    indices = tf.where(known, indices, PADDING_INDEX)
    scores = self.ranker.score_candidates(features, indices)
    ctr = tf.where(has_history, tf.sigmoid(scores), tf.gather(self._positive_share, indices))
    scores = tf.where(has_history, scores, tf.gather(self._popularity, indices))
    outputs = {"scores": tf.where(known, scores, UNKNOWN_CANDIDATE_SCORE),
               "ctr": tf.where(known, ctr, 0.0)}
    if getattr(self.ranker, "completion_head", None) is not None:
      users, _ = self.ranker.user_vector(features)
      items = self.ranker.content(indices)
      users = tf.broadcast_to(users[:, tf.newaxis, :], tf.shape(items))
      outputs["completion"] = tf.where(known, self.ranker.predict_completion(users, items), 0.0)
    return outputs

  def signatures(self) -> Dict[str, Callable[..., Dict[str, tf.Tensor]]]:
    """Named functions for `tf.saved_model.save(..., signatures=...)`.

    Concrete functions, except the `*_with_options` ones: tf.functions whose Tensor default
    arguments become the SignatureDef's defaults (a concrete function would drop them).
    """
    signatures = {
        "serving_default": self.recommend.get_concrete_function(),
        "recommend": self.recommend.get_concrete_function(),
        "recommend_for_user": self.recommend_for_user.get_concrete_function(),
        "recommend_with_options": self.recommend_with_options,
        "recommend_for_user_with_options": self.recommend_for_user_with_options,
        "rank": self.rank.get_concrete_function(),
        "rank_for_user": self.rank_for_user.get_concrete_function(),
    }
    if self.explain is not None:
      signatures["explain"] = self.explain.get_concrete_function()
    return signatures


def _vocabulary(ids: Sequence[str], name: str) -> vocabulary_lib.IdVocabulary:
  """`ids` as an IdVocabulary, checking that they are in its index order."""
  if len(ids) == 0:  # pylint: disable=g-explicit-length-test (a numpy array has no truth value)
    raise ValueError(f"{name} is empty; an export's vocabulary files need at least one id.")
  vocabulary = vocabulary_lib.IdVocabulary(ids)
  if not np.array_equal(vocabulary.ids, np.asarray(ids).astype(str)):
    raise ValueError(f"{name} must be in index order (sorted, as IdVocabulary.ids are).")
  return vocabulary


def _id_to_index_table(vocabulary_file: tf.saved_model.Asset) -> tf.lookup.StaticHashTable:
  """Raw id -> index (line number + 2) from a vocabulary file; unknown ids -> OOV_INDEX."""
  return tf.lookup.StaticHashTable(
      tf.lookup.TextFileInitializer(
          vocabulary_file, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE, tf.int64,
          tf.lookup.TextFileIndex.LINE_NUMBER, value_index_offset=FIRST_ITEM_INDEX),
      default_value=OOV_INDEX)


def _checked_rank(tensor: tf.Tensor, rank: int, name: str, expected: str) -> tf.Tensor:
  """`tensor` with static rank `rank`, after an in-graph check that names the input."""
  check = tf.debugging.Assert(tf.equal(tf.rank(tensor), rank),
                              [f"{name} must be {expected}; got shape", tf.shape(tensor)])
  with tf.control_dependencies([check]):
    tensor = tf.identity(tensor)
  # A static annotation only: the check above is what runs.
  tensor.set_shape([None] * rank)
  return tensor


def _checked_batch(tensor: tf.Tensor, batch: tf.Tensor, name: str, expected: str) -> tf.Tensor:
  """`tensor` after an in-graph check that its first dimension is the history's batch."""
  check = tf.debugging.Assert(tf.equal(tf.shape(tensor)[0], batch),
                              [f"{name} needs {expected}; {name} rows, history rows:",
                               tf.shape(tensor)[0], batch])
  with tf.control_dependencies([check]):
    return tf.identity(tensor)
