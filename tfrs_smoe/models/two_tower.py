"""Sampling-bias-corrected two-tower retrieval (Yi et al., RecSys 2019) as a `tfrs.Model`."""

import dataclasses
from typing import Dict, Optional, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfrs_smoe import distribute
from tfrs_smoe.layers import frequency_estimator
from tfrs_smoe.layers import item_content
from tfrs_smoe.layers import user_content
from tfrs_smoe.models import smoe_bst

CORRECTIONS = ("none", "counts", "streaming")
HISTORY_ENCODERS = ("mean", "bst", "smoe_bst")


@dataclasses.dataclass
class TwoTowerConfig:
  """Towers, softmax and sampling-bias correction of the two-tower model.

  Attributes:
    history_encoder: "mean" (the mean of the watched items' content vectors, as in the paper),
      "bst" (a transformer over the whole history) or "smoe_bst" (the time-scale experts and
      gate); the transformer settings come from `model.encoder`.
    query_hidden_units, candidate_hidden_units: each tower's MLP; the last size is the
      embedding size and both must agree.
    temperature: tau of the softmax over L2-normalised embeddings.
    correction: "none", "counts" (p_j = count_j / count of all training positives) or
      "streaming" (`StreamingFrequencyEstimator`, per-step estimates divided by the batch size
      so that p_j is a per-example probability, as tfrs clips p at 1).
    num_buckets, num_hashes, estimator_learning_rate, initial_gap: the estimator's H, m, alpha
      and starting B.
    min_engagement: training positives need at least this engagement (completion); 0 keeps
      every positive of the split.
    reward_weighting: weight each positive by its engagement (the paper's reward).
    time_ordered: train on the log in time order without shuffling, as the paper streams it.
  """

  history_encoder: str = "mean"
  query_hidden_units: Tuple[int, ...] = (128, 64)
  candidate_hidden_units: Tuple[int, ...] = (128, 64)
  temperature: float = 0.05
  correction: str = "streaming"
  num_buckets: int = 50_000
  num_hashes: int = 2
  estimator_learning_rate: float = 0.01
  initial_gap: float = 100.0
  min_engagement: float = 0.0
  reward_weighting: bool = False
  time_ordered: bool = False

  def __post_init__(self):
    if self.history_encoder not in HISTORY_ENCODERS:
      raise ValueError(f"model.two_tower.history_encoder must be one of {HISTORY_ENCODERS}, got "
                       f"{self.history_encoder!r}.")
    if self.correction not in CORRECTIONS:
      raise ValueError(f"model.two_tower.correction must be one of {CORRECTIONS}, got "
                       f"{self.correction!r}.")
    for name in ("query_hidden_units", "candidate_hidden_units"):
      units = getattr(self, name)
      if not units or min(units) < 1:
        raise ValueError(f"model.two_tower.{name} must be a non-empty list of layer sizes >= 1, "
                         f"got {list(units)}.")
    if self.query_hidden_units[-1] != self.candidate_hidden_units[-1]:
      raise ValueError("model.two_tower.query_hidden_units and candidate_hidden_units must end "
                       f"in the same size, got {list(self.query_hidden_units)} and "
                       f"{list(self.candidate_hidden_units)}.")
    # (field, whether its value is in range, the range); NaN fails every comparison.
    rules = (
        ("temperature", 0.0 < self.temperature < np.inf, "> 0 and finite"),
        ("num_buckets", self.num_buckets >= 1, ">= 1"),
        ("num_hashes", self.num_hashes >= 1, ">= 1"),
        ("estimator_learning_rate", 0.0 < self.estimator_learning_rate <= 1.0, "in (0, 1]"),
        ("initial_gap", 0.0 < self.initial_gap < np.inf, "> 0 and finite"),
        ("min_engagement", 0.0 <= self.min_engagement <= 1.0, "in [0, 1] (0 = every positive)"),
    )
    for name, in_range, rule in rules:
      if not in_range:
        raise ValueError(f"model.two_tower.{name} must be {rule}, got {getattr(self, name)!r}.")


def _tower(units, name: str) -> tf.keras.Sequential:
  layers = [tf.keras.layers.Dense(size, activation="relu") for size in units[:-1]]
  layers.append(tf.keras.layers.Dense(units[-1]))
  layers.append(tf.keras.layers.UnitNormalization())
  return tf.keras.Sequential(layers, name=name)


class TwoTower(tfrs.models.Model):
  """Query tower (history, user) and candidate tower (item content) under an in-batch softmax.

  Training examples are (history window, next positive) pairs (`SequencePipeline.windows`).
  The loss is `tfrs.tasks.Retrieval` over the batch's candidates with accidental hits removed
  and, unless correction is "none", the logQ correction s - log p_j of each candidate's
  sampling probability. Scoring and evaluation rank the whole catalogue by the dot product of
  the normalised embeddings (`call`, or `index` for a `BruteForce` top-k layer).

  Like TFRS models, it has no Keras `get_config` (its item feature tables are constructor
  data): it is saved as checkpoints (`Experiment`) and exported through
  `serving.RecommenderModule`.

  Args:
    num_items: item vocabulary size (reserved indices included).
    num_users: user vocabulary size.
    item_features: "genres" [num_items, G] and "year_bucket" [num_items] int tables, held by
      its `ItemContent` layer (`content`).
    encoder: `SMoEBSTConfig`: content embedding sizes, user_dim, and the transformer settings
      of the "bst" / "smoe_bst" history encoders.
    config: `TwoTowerConfig`.
    max_len: history length.
    candidate_counts: [num_items] training positives per item; needed by correction "counts".
    item_categorical: optional extra categorical item features, name -> [num_items] value
      ids (`ItemFeatureTables.categorical`), added to the content vector both towers read.
    user_features: optional categorical user features, name -> [num_users] value ids
      (`UserFeatureTables.tables`): their embeddings (`encoder.feature_dim` each, gathered by
      "user_index") join the query tower's input, and the gate's with "smoe_bst" (one
      `UserContent`, shared).

  Call args of `call` (scoring the whole catalogue):
    features: "history" [batch, max_len] int item indices (left-padded, most recent last) and
      "user_index" [batch] int.

  Example (one epoch on a tiny synthetic log, with small towers):
    >>> from tfrs_smoe.data import item_features, sequences, splits, synthetic
    >>> split = splits.leave_one_out(synthetic.generate_watch_log(
    ...     synthetic.SyntheticConfig(num_users=20, num_titles=30))[0])
    >>> tables = item_features.ItemFeatureTables.from_catalog(split.items, split.item_vocabulary)
    >>> model = TwoTower(split.item_vocabulary.size, split.user_vocabulary.size, tables.as_dict(),
    ...                  smoe_bst.SMoEBSTConfig(item_dim=16, num_blocks=1),
    ...                  TwoTowerConfig(query_hidden_units=(16,), candidate_hidden_units=(16,),
    ...                                 correction="streaming"), max_len=10)
    >>> model.compile(tf.keras.optimizers.Adagrad(0.1))
    >>> pipeline = sequences.SequencePipeline(max_len=10)
    >>> _ = model.fit(pipeline.windows(split.train).batch(64), epochs=1, verbose=0)
    >>> features = {"history": tf.constant([[0] * 8 + [2, 3]]), "user_index": tf.constant([2])}
    >>> model(features).shape  # [batch, num_items]
    TensorShape([1, 67])
  """

  def __init__(self, num_items: int, num_users: int, item_features: Dict[str, np.ndarray],
               encoder: smoe_bst.SMoEBSTConfig, config: TwoTowerConfig, max_len: int = 50,
               candidate_counts: Optional[np.ndarray] = None,
               item_categorical: Optional[Dict[str, np.ndarray]] = None,
               user_features: Optional[Dict[str, np.ndarray]] = None, **kwargs):
    super().__init__(**kwargs)
    self.config = config
    self.num_items = num_items
    self.max_len = max_len
    self.content = item_content.ItemContent.from_tables(
        item_features, num_items, encoder.item_dim, encoder.genre_dim, encoder.year_dim,
        categorical=item_categorical, name="content")
    self.encoder = None
    if config.history_encoder != "mean":
      # S-MoE-BST's own history encoder; its user embedding (if any) also feeds the query tower.
      self.encoder = smoe_bst.build_history_encoder(
          encoder, num_users, max_len,
          windows=(0,) if config.history_encoder == "bst" else None,
          user_features=user_features)
    self.user_embedding = None
    if self.encoder is not None and self.encoder.user_embedding is not None:
      self.user_embedding = self.encoder.user_embedding
    elif encoder.user_dim:
      self.user_embedding = tf.keras.layers.Embedding(num_users, encoder.user_dim, name="user")
    self.user_features = None
    if self.encoder is not None and self.encoder.user_features is not None:
      self.user_features = self.encoder.user_features
    elif user_features:
      self.user_features = user_content.UserContent.from_tables(
          user_features, num_users, encoder.feature_dim, name="user_features")
    self.query_tower = _tower(config.query_hidden_units, "query_tower")
    self.candidate_tower = _tower(config.candidate_hidden_units, "candidate_tower")
    self.candidate_probability = None
    self.estimator = None
    if config.correction == "counts":
      if candidate_counts is None or len(candidate_counts) != num_items:
        raise ValueError(f"correction 'counts' needs candidate_counts of length {num_items}.")
      counts = np.asarray(candidate_counts, np.float64)
      self.candidate_probability = tf.Variable(
          (counts / max(counts.sum(), 1.0)).astype(np.float32), trainable=False,
          name="candidate_probability")
    elif config.correction == "streaming":
      self.estimator = frequency_estimator.StreamingFrequencyEstimator(
          config.num_buckets, config.num_hashes, config.estimator_learning_rate,
          config.initial_gap, name="frequency_estimator")
      self.estimator.build(tf.TensorShape([None]))  # Its state exists before the first step.
    self.task = tfrs.tasks.Retrieval(temperature=config.temperature,
                                     remove_accidental_hits=True)

  def history_vector(self, features: Dict[str, tf.Tensor], training: Optional[bool] = None
                     ) -> tf.Tensor:
    """[batch, content_dim] encoding of the history by the configured history encoder."""
    history = tf.cast(features["history"], tf.int32)
    mask = history > 0
    content = self.content(history)
    if self.encoder is None:
      count = tf.reduce_sum(tf.cast(mask, tf.float32), axis=1, keepdims=True)
      return tf.reduce_sum(content, axis=1) / tf.maximum(count, 1.0)  # Padding embeds to 0.
    vectors, _ = self.encoder((content, tf.cast(features["user_index"], tf.int32)), mask=mask,
                              training=training, last_only=True)
    return vectors[:, -1]

  @property
  def gate(self):
    """The history encoder's `AdaptiveGate`; None without experts."""
    return None if self.encoder is None else self.encoder.gate

  def query_vector(self, features: Dict[str, tf.Tensor], training: Optional[bool] = None
                   ) -> tf.Tensor:
    """[batch, embedding_dim] L2-normalised query embeddings."""
    parts = [self.history_vector(features, training)]
    if self.user_embedding is not None:
      parts.append(self.user_embedding(tf.cast(features["user_index"], tf.int32)))
    if self.user_features is not None:
      parts.append(self.user_features(tf.cast(features["user_index"], tf.int32)))
    return self.query_tower(tf.concat(parts, axis=-1), training=training)

  def candidate_vector(self, items: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
    """[n, embedding_dim] L2-normalised candidate embeddings of item indices [n]."""
    return self.candidate_tower(self.content(items), training=training)

  def candidate_table(self) -> tf.Tensor:
    """[num_items, embedding_dim] embeddings of the whole catalogue."""
    return self.candidate_vector(tf.range(self.num_items))

  def item_table(self) -> tf.Tensor:
    """[num_items, embedding_dim] the catalogue's candidate embeddings (`candidate_table`)."""
    return self.candidate_table()

  def call(self, features: Dict[str, tf.Tensor], training: Optional[bool] = None) -> tf.Tensor:
    """[batch, num_items] scores (cosine similarities) of the whole catalogue."""
    return self.score_catalogue(features, self.candidate_table(), training)

  def score_catalogue(self, features: Dict[str, tf.Tensor], table: tf.Tensor,
                      training: Optional[bool] = None) -> tf.Tensor:
    """[batch, num_items] scores against a precomputed `candidate_table()`."""
    return tf.matmul(self.query_vector(features, training), table, transpose_b=True)

  def score_candidates(self, features: Dict[str, tf.Tensor], candidates: tf.Tensor
                       ) -> tf.Tensor:
    """[batch, n] scores of candidate item indices [batch, n]."""
    return tf.einsum("bd,bnd->bn", self.query_vector(features),
                     self.candidate_tower(self.content(candidates)))

  def index(self, k: int = 100, scann: bool = False) -> tfrs.layers.factorized_top_k.TopK:
    """A top-k index over the catalogue; query it with `query_vector(...)`.

    Args:
      k: items per query.
      scann: a `ScaNN` index instead of `BruteForce`; raises RuntimeError (with the reason)
        where ScaNN does not load, see `scann_unavailable_reason`.
    """
    if scann:
      reason = scann_unavailable_reason()
      if reason:
        raise RuntimeError(f"ScaNN is not available here ({reason}); use scann=False.")
      index = tfrs.layers.factorized_top_k.ScaNN(k=k)
    else:
      index = tfrs.layers.factorized_top_k.BruteForce(k=k)
    index.index(self.candidate_table(), tf.range(self.num_items))
    return index

  def sampling_probability(self, candidates: tf.Tensor, training: bool = False
                           ) -> Optional[tf.Tensor]:
    """[n] per-example sampling probability of each candidate, None without correction.

    With "streaming", training first updates the estimator with `candidates` (the global
    batch's) at the optimizer's step; per-step estimates are divided by the number of
    candidates, the global batch size.
    """
    if self.candidate_probability is not None:
      return tf.gather(self.candidate_probability, candidates)
    if self.estimator is None:
      return None
    step = self.optimizer.iterations if self.optimizer is not None else tf.constant(0, tf.int64)
    per_step = self.estimator(candidates, step, training=training)
    return per_step / tf.cast(tf.shape(candidates)[0], tf.float32)

  def compute_loss(self, features: Dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
    """The in-batch softmax over the candidates of every replica (one device: the batch's).

    Each replica's queries score the candidates of the whole global batch (its own first, so
    the labels stay the diagonal); the summed loss over replicas is one device's loss on the
    global batch.
    """
    candidates = tf.cast(features["targets"][:, 0], tf.int32)
    weights = features["target_weights"][:, 0]
    if self.config.reward_weighting:
      weights *= features["target_engagement"][:, 0]
    all_candidates = distribute.gather_local_first(candidates)
    return self.task(self.query_vector(features, training),
                     distribute.gather_local_first(self.candidate_vector(candidates, training)),
                     sample_weight=weights,
                     candidate_sampling_probability=self.sampling_probability(all_candidates,
                                                                              training),
                     candidate_ids=all_candidates, compute_metrics=False)


def scann_unavailable_reason() -> str:
  """Why tfrs's ScaNN index does not work here ("" when it does).

  Measured on this stack: scann 1.4.2, the newest wheel, is built for TensorFlow 2.20; with
  2.21 its op library fails to load (NotFoundError, an undefined absl symbol) when
  tensorflow_recommenders imports it, so `import tensorflow_recommenders` itself fails while
  scann is installed. Without scann this returns the ImportError's message.
  """
  try:
    index = tfrs.layers.factorized_top_k.ScaNN(k=1, num_leaves=1, num_leaves_to_search=1)
    index.index(tf.zeros([2, 2]), tf.range(2))
  except (ImportError, tf.errors.NotFoundError) as error:
    return f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
  return ""
