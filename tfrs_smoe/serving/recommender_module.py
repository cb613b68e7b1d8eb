"""A `tf.Module` with TF Serving signatures over raw item ids: recommend, rank, explain."""

from typing import Dict, Optional, Sequence

import numpy as np
import tensorflow as tf

PADDING_INDEX = 0
OOV_INDEX = 1
FIRST_ITEM_INDEX = 2
UNKNOWN_CANDIDATE_SCORE = float(np.finfo(np.float32).min)


class RecommenderModule(tf.Module):
  """Serving graph around a trained ranker (S-MoE-BST, BST or two-tower) and an optional retriever.

  Requests carry raw string ids; vocabulary lookups happen inside the graph:
  - `history` [batch, any length] string: a user's items, oldest first, right-padded with "".
    Unknown ids are ignored (neither an error nor a history item); a history longer than the
    model's window keeps its most recent `max_len` items. A row with no known item gets the
    popularity ranking (the fallback) instead of the model's.
  - `candidates` [batch, n] string: items to score; an unknown candidate scores the lowest
    float32 value.
  - `user_id` [batch] string (the `*_for_user` signatures): an unknown user gets the
    out-of-vocabulary user embedding, as every request without a user does.

  Signatures (all outputs are named):
  - `recommend` (also `serving_default`): history -> item_ids [batch, k] string, scores
    [batch, k] float32. Items of the history and reserved ids are never recommended. With a
    retriever, two stages: the retriever's top `num_candidates` items are re-ranked by the
    ranker. `recommend_for_user` takes user_id as well.
  - `rank`: history, candidates -> scores [batch, n], ctr [batch, n] (sigmoid of the score, as
    the CTR head is trained), and completion [batch, n] when the ranker has a completion head.
    `rank_for_user` takes user_id as well.
  - `explain` (rankers with a gate): history -> expert_weights [batch, num_experts].

  Args:
    ranker: a trained `SMoEBST` or `TwoTower` (a model with `item_table`, `score_catalogue`
      and `score_candidates`).
    item_ids: [num_items - 2] raw item ids in index order (`IdVocabulary.ids`).
    user_ids: raw user ids in index order.
    popularity: [num_items] training positives per item index (the fallback's ranking).
    max_len: the models' history window.
    k: items returned by `recommend`.
    retriever: optional trained `TwoTower` for the first stage.
    num_candidates: candidates the retriever passes to the ranker.

  Example:
    >>> module = RecommenderModule(model, split.item_vocabulary.ids,
    ...                            split.user_vocabulary.ids, counts, max_len=50, k=10)
    >>> module.recommend(history=tf.constant([["m1", "m7", ""]]))["item_ids"]  # [1, 10]
  """

  def __init__(self, ranker: tf.keras.Model, item_ids: Sequence[str], user_ids: Sequence[str],
               popularity: np.ndarray, max_len: int, k: int = 10,
               retriever: Optional[tf.keras.Model] = None, num_candidates: int = 100):
    super().__init__(name="recommender")
    num_items = len(item_ids) + FIRST_ITEM_INDEX
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
    self._item_table = _lookup_table(item_ids)
    self._user_table = _lookup_table(user_ids)
    self._item_ids = tf.constant(np.concatenate([["", "[UNK]"], np.asarray(item_ids, str)]))
    self.most_popular_ids = [str(item_ids[i - FIRST_ITEM_INDEX]) for i in
                             np.argsort(-np.asarray(popularity), kind="stable")[:3]
                             if i >= FIRST_ITEM_INDEX]
    # log(1 + count) keeps the fallback's scores on a readable scale; only their order matters.
    self._popularity = tf.constant(np.log1p(np.asarray(popularity, np.float32)))

  def _item_indices(self, ids: tf.Tensor) -> tf.Tensor:
    indices = tf.cast(self._item_table.lookup(ids), tf.int32)
    return tf.where(ids == "", PADDING_INDEX, indices)

  def _features(self, history: tf.Tensor, user_id: Optional[tf.Tensor]) -> Dict[str, tf.Tensor]:
    """The models' inputs: known items left-padded to max_len, most recent last."""
    indices = self._item_indices(history)
    known = indices >= FIRST_ITEM_INDEX
    length = tf.shape(indices)[1]
    positions = tf.range(length)[tf.newaxis, :]
    # A stable sort on (known, position) moves the known items to the end in their order.
    order = tf.argsort(tf.where(known, positions + length, positions), axis=1, stable=True)
    packed = tf.gather(tf.where(known, indices, PADDING_INDEX), order, batch_dims=1)
    padded = tf.concat([tf.zeros([tf.shape(packed)[0], self.max_len], tf.int32), packed], 1)
    batch = tf.shape(history)[0]
    users = (tf.fill([batch], OOV_INDEX) if user_id is None
             else tf.cast(self._user_table.lookup(user_id), tf.int32))
    return {"history": padded[:, -self.max_len:], "user_index": users}

  def _without_excluded(self, scores: tf.Tensor, history: tf.Tensor) -> tf.Tensor:
    """`scores` [batch, num_items] with -inf at the reserved indices and the history's items."""
    batch = tf.shape(history)[0]
    reserved = tf.broadcast_to(tf.range(FIRST_ITEM_INDEX)[tf.newaxis], [batch, FIRST_ITEM_INDEX])
    excluded = tf.concat([reserved, history], axis=1)  # Padding is reserved index 0.
    rows = tf.broadcast_to(tf.range(batch)[:, tf.newaxis], tf.shape(excluded))
    # A sparse update of the few excluded entries: a dense [batch, num_items] mask would cost
    # as much as the scoring itself on large catalogues.
    return tf.tensor_scatter_nd_update(
        scores, tf.reshape(tf.stack([rows, excluded], -1), [-1, 2]),
        tf.fill([tf.size(excluded)], tf.constant(-np.inf, scores.dtype)))

  def _recommend(self, history: tf.Tensor, user_id: Optional[tf.Tensor]
                 ) -> Dict[str, tf.Tensor]:
    features = self._features(history, user_id)
    has_history = tf.reduce_any(features["history"] > PADDING_INDEX, axis=1)
    if self.retriever is None:
      model_scores = self.ranker.score_catalogue(features, self._ranker_items)
    else:
      model_scores = self.retriever.score_catalogue(features, self._retriever_items)
    scores = tf.where(has_history[:, tf.newaxis], model_scores, self._popularity[tf.newaxis])
    scores = self._without_excluded(scores, features["history"])
    if self.retriever is None:
      top_scores, top_items = tf.math.top_k(scores, k=self.k)
    else:
      _, candidates = tf.math.top_k(scores, k=self.num_candidates)
      ranked = tf.where(has_history[:, tf.newaxis],
                        self.ranker.score_candidates(features, candidates),
                        tf.gather(self._popularity, candidates))
      top_scores, order = tf.math.top_k(ranked, k=self.k)
      top_items = tf.gather(candidates, order, batch_dims=1)
    return {"item_ids": tf.gather(self._item_ids, top_items), "scores": top_scores}

  def _rank(self, history: tf.Tensor, candidates: tf.Tensor, user_id: Optional[tf.Tensor]
            ) -> Dict[str, tf.Tensor]:
    features = self._features(history, user_id)
    indices = self._item_indices(candidates)
    known = indices >= FIRST_ITEM_INDEX
    scores = self.ranker.score_candidates(features, tf.where(known, indices, PADDING_INDEX))
    outputs = {"scores": tf.where(known, scores, UNKNOWN_CANDIDATE_SCORE),
               "ctr": tf.where(known, tf.sigmoid(scores), 0.0)}
    if getattr(self.ranker, "completion_head", None) is not None:
      users, _ = self.ranker.user_vector(features)
      items = self.ranker.content(indices)
      users = tf.broadcast_to(users[:, tf.newaxis, :], tf.shape(items))
      outputs["completion"] = tf.where(known, self.ranker.predict_completion(users, items), 0.0)
    return outputs

  def signatures(self) -> Dict[str, tf.types.experimental.ConcreteFunction]:
    """Named concrete functions for `tf.saved_model.save(..., signatures=...)`."""
    history = tf.TensorSpec([None, None], tf.string, name="history")
    candidates = tf.TensorSpec([None, None], tf.string, name="candidates")
    user_id = tf.TensorSpec([None], tf.string, name="user_id")
    recommend = tf.function(lambda history: self._recommend(history, None),
                            input_signature=[history]).get_concrete_function()
    signatures = {
        "serving_default": recommend,
        "recommend": recommend,
        "recommend_for_user": tf.function(
            self._recommend, input_signature=[history, user_id]).get_concrete_function(),
        "rank": tf.function(lambda history, candidates: self._rank(history, candidates, None),
                            input_signature=[history, candidates]).get_concrete_function(),
        "rank_for_user": tf.function(
            self._rank, input_signature=[history, candidates, user_id]).get_concrete_function(),
    }
    if getattr(self.ranker, "gate", None) is not None and hasattr(self.ranker, "user_vector"):
      signatures["explain"] = tf.function(
          lambda history: {"expert_weights": self.ranker.user_vector(
              self._features(history, None))[1]},
          input_signature=[history]).get_concrete_function()
    return signatures


def _lookup_table(ids: Sequence[str]) -> tf.lookup.StaticHashTable:
  """Raw id -> index (position + 2); unknown ids -> OOV_INDEX."""
  ids = np.asarray(ids, str)
  return tf.lookup.StaticHashTable(
      tf.lookup.KeyValueTensorInitializer(
          tf.constant(ids), tf.range(FIRST_ITEM_INDEX, len(ids) + FIRST_ITEM_INDEX,
                                     dtype=tf.int64)), default_value=OOV_INDEX)
