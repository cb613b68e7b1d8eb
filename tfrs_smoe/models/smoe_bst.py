"""S-MoE-BST (and BST, its one-expert case) as a `tfrs.Model`."""

import dataclasses
from typing import Dict, Optional, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfrs_smoe.layers import candidate_scorer
from tfrs_smoe.layers import history_encoder
from tfrs_smoe.layers import item_content
from tfrs_smoe.layers import timescale_experts
from tfrs_smoe.tasks import engagement_multitask


@dataclasses.dataclass
class SMoEBSTConfig:
  """Architecture of S-MoE-BST.

  The defaults are the encoder that scored best on validation NDCG@10 in issue 22's probes
  (docs/results.md, "S-MoE-BST encoder and next-K variants against SASRec"): one shared pre-LN
  causal block over the whole history (SASRec's kind of block), one banded pre-LN block per
  expert, each expert read out at its top-block state (pooling "last"), feed-forward width 64.
  On the embedded default (seed 0, validation) it scored 0.2460 NDCG@10 against 0.2419 for the
  paper's reading (each expert a whole two-block post-LN BST with attention pooling, width 256),
  +8.5 % NDCG@1 (paired interval above 0), with both on the same task, with four blocks of width
  64 instead of six of width 256; `expert_windows`,
  `block: post_ln`, `pooling: attention`, `shared_blocks: 0, num_blocks: 2` and
  `feed_forward_dim: 256` give that reading back.

  Attributes:
    item_dim, genre_dim, year_dim: sizes of the parts of an item's content vector; their sum
      is the model dimension.
    user_dim: size of the user id embedding fed to the gate; 0 leaves it out.
    expert_windows: history window of each expert in items, 0 = the whole history; one entry
      gives BST (no gate).
    shared_blocks: causal blocks over the whole history shared by every expert, below the
      experts' own (0 = each expert is a whole encoder, the paper's reading).
    num_blocks, num_heads, feed_forward_dim, dropout: transformer blocks of every expert
      (num_blocks of its own), and of the shared ones.
    block: "post_ln" (BST's blocks) or "pre_ln" (SASRec's); see `TimescaleExperts`.
    pooling: "attention" (BST's attention pooling over each expert's window) or "last" (the
      expert's top-block state at the position).
    gate_hidden_units, gate_temperature, gate_noise_stddev: the gate's MLP, tau and the std of
      its training noise (0 = no noise).
    entropy_weight, target_entropy: lambda (l4, 0 = off) and H* (nats) of the gate's entropy
      term; 0.52 is the paper's, null is 0.75 ln E for E experts (0.52 is 0.75 ln 2), see
      `AdaptiveGate`.
      lambda = 1 keeps the mean gate entropy near H* on the embedded default; at 0.01 the gate
      collapsed onto the short-term expert within one epoch there.
    balance_weight: w of the gate's balance term on the experts' mean weights (0 = off, the
      paper's gate); see `AdaptiveGate`.
    expert_dropout: probability that an expert is left out of a position's mixture in
      training (0 = off, the paper's gate); see `AdaptiveGate`.
    gate_context: context features fed to the gate besides the user embedding, from
      `history_encoder.GATE_CONTEXTS` (() = none, the paper's gate).
    scorer: "dot" or "mlp" (`CandidateScorer`); scorer_hidden_units: the MLP's layers.
    feature_dim: size of each categorical user feature's embedding (`data.user_features`), fed
      to S-MoE-BST's gate and the two-tower query tower; BST (one expert, no gate) and SASRec
      take no user features. Categorical item features (`data.item_features`) are embedded at
      the content vector's full size and added to it, so they change no dimension.
  """

  item_dim: int = 48
  genre_dim: int = 8
  year_dim: int = 8
  user_dim: int = 16
  expert_windows: Tuple[int, ...] = (5, 20, 0)
  shared_blocks: int = 1
  num_blocks: int = 1
  num_heads: int = 2
  feed_forward_dim: int = 64
  dropout: float = 0.2
  block: str = "pre_ln"
  pooling: str = "last"
  gate_hidden_units: Tuple[int, ...] = (64,)
  gate_temperature: float = 1.0
  gate_noise_stddev: float = 1.0
  entropy_weight: float = 1.0
  target_entropy: Optional[float] = 0.52
  balance_weight: float = 0.0
  expert_dropout: float = 0.0
  gate_context: Tuple[str, ...] = ()
  scorer: str = "dot"
  scorer_hidden_units: Tuple[int, ...] = (64,)
  feature_dim: int = 8

  def __post_init__(self):
    windows, dim = self.expert_windows, self.item_dim + self.genre_dim + self.year_dim
    # (field, whether its value is in range, the range), checked in field order.
    rules = (
        ("item_dim", self.item_dim >= 1, ">= 1"),
        ("genre_dim", self.genre_dim >= 0, ">= 0 (0 = no genre embedding)"),
        ("year_dim", self.year_dim >= 0, ">= 0 (0 = no year embedding)"),
        ("user_dim", self.user_dim >= 0, ">= 0 (0 = no user embedding)"),
        ("expert_windows", bool(windows) and all(w >= 0 for w in windows),
         "a non-empty list of windows >= 0 (0 = the whole history)"),
        ("num_heads", self.num_heads >= 1, ">= 1"),
        ("feed_forward_dim", self.feed_forward_dim >= 1, ">= 1"),
        ("dropout", 0.0 <= self.dropout < 1.0, "in [0, 1)"),
        ("gate_hidden_units", all(units >= 1 for units in self.gate_hidden_units),
         "layer sizes >= 1"),
        ("gate_temperature", 0.0 < self.gate_temperature < np.inf, "> 0 and finite"),
        ("gate_noise_stddev", 0.0 <= self.gate_noise_stddev < np.inf,
         ">= 0 and finite (0 = no noise)"),
        ("entropy_weight", 0.0 <= self.entropy_weight < np.inf, ">= 0 and finite (0 = off)"),
        ("balance_weight", 0.0 <= self.balance_weight < np.inf, ">= 0 and finite (0 = off)"),
        ("expert_dropout", 0.0 <= self.expert_dropout < 1.0, "in [0, 1)"),
        ("scorer", self.scorer in ("dot", "mlp"), "one of ('dot', 'mlp')"),
        ("scorer_hidden_units", all(units >= 1 for units in self.scorer_hidden_units),
         "layer sizes >= 1"),
        ("feature_dim", 1 <= self.feature_dim <= 1024, "in [1, 1024]"),
    )
    for name, in_range, rule in rules:
      if not in_range:
        value = getattr(self, name)
        value = list(value) if isinstance(value, tuple) else value
        raise ValueError(f"model.encoder.{name} must be {rule}, got {value!r}.")
    if self.block not in timescale_experts.BLOCKS:
      raise ValueError(f"model.encoder.block must be one of {timescale_experts.BLOCKS}, got "
                       f"{self.block!r}.")
    if self.pooling not in timescale_experts.POOLINGS:
      raise ValueError(f"model.encoder.pooling must be one of {timescale_experts.POOLINGS}, got "
                       f"{self.pooling!r}.")
    if min(self.shared_blocks, self.num_blocks) < 0 or self.shared_blocks + self.num_blocks < 1:
      raise ValueError("model.encoder.shared_blocks and model.encoder.num_blocks must be >= 0 "
                       f"with at least one block, got {self.shared_blocks} and "
                       f"{self.num_blocks}.")
    if self.pooling == "last" and self.num_blocks < 1 and len(windows) > 1:
      raise ValueError("model.encoder.num_blocks must be >= 1 with pooling 'last' and several "
                       "experts (with shared blocks only, every expert would read the same "
                       f"state), got {self.num_blocks}.")
    if dim % self.num_heads:
      raise ValueError(f"model.encoder.num_heads: the model dimension item_dim + genre_dim + "
                       f"year_dim = {dim} is not divisible by {self.num_heads} heads.")
    if self.target_entropy is not None and not 0.0 <= self.target_entropy < np.inf:
      raise ValueError(f"model.encoder.target_entropy must be >= 0 and finite (or null: 0.75 "
                       f"ln E), got {self.target_entropy}.")
    # The entropy of the gate's weights over E experts is at most ln E (one expert: no gate).
    if (self.target_entropy is not None and len(windows) > 1
        and self.target_entropy > np.log(len(windows))):
      raise ValueError(f"model.encoder.target_entropy must be <= ln {len(windows)} = "
                       f"{np.log(len(windows)):.3f}, the most the entropy of {len(windows)} "
                       f"experts' weights can be, got {self.target_entropy}.")
    unknown = sorted(set(self.gate_context) - set(history_encoder.GATE_CONTEXTS))
    if unknown:
      raise ValueError(f"model.encoder.gate_context: unknown {unknown}; available: "
                       f"{list(history_encoder.GATE_CONTEXTS)}.")


def build_history_encoder(config: SMoEBSTConfig, num_users: int, max_len: int,
                          windows: Optional[Tuple[int, ...]] = None,
                          name: str = "encoder",
                          user_features: Optional[Dict[str, np.ndarray]] = None
                          ) -> history_encoder.HistoryEncoder:
  """The `HistoryEncoder` of `config` (with `windows` instead of its expert_windows if given),
  its gate reading `user_features` (name -> [num_users] value ids) when it has one."""
  return history_encoder.HistoryEncoder(
      num_users, config.expert_windows if windows is None else windows, config.num_blocks,
      config.num_heads, config.feed_forward_dim, config.dropout, max_len,
      shared_blocks=config.shared_blocks, block=config.block, pooling=config.pooling,
      user_dim=config.user_dim, gate_hidden_units=config.gate_hidden_units,
      gate_temperature=config.gate_temperature, gate_noise_stddev=config.gate_noise_stddev,
      entropy_weight=config.entropy_weight, target_entropy=config.target_entropy,
      balance_weight=config.balance_weight, expert_dropout=config.expert_dropout,
      gate_context=config.gate_context, feature_dim=config.feature_dim,
      user_features=user_features, name=name)


class SMoEBST(tfrs.models.Model):
  """History -> shared content embeddings -> `HistoryEncoder` (experts, gate) -> user vector.

  Training encodes every position of each sequence in one causal pass (`SequencePipeline.
  sequences` examples) and applies the `EngagementMultitask` loss at every position with a
  target. Scoring and serving use the representation at the last position of a left-padded
  history, which is the same computation.

  Like TFRS models, it has no Keras `get_config` (its item feature tables are constructor
  data): it is saved as checkpoints (`Experiment`) and exported through
  `serving.RecommenderModule`; its layers each serialize on their own.

  Args:
    num_items: item vocabulary size (reserved indices included).
    num_users: user vocabulary size.
    item_features: "genres" [num_items, G] and "year_bucket" [num_items] int tables
      (`ItemFeatureTables.as_dict()`), held by its `ItemContent` layer (`content`) so
      that it needs item indices only.
    config: `SMoEBSTConfig`.
    task_config: `MultitaskConfig`.
    max_len: history length.
    candidate_counts: optional [num_items] training positives per item, for the task's
      popularity sampler and its logQ correction (`task.negative_sampler: popularity`).
    item_categorical: optional extra categorical item features, name -> [num_items] value
      ids (`ItemFeatureTables.categorical`), each embedded and added to the content vector.
    user_features: optional categorical user features, name -> [num_users] value ids
      (`UserFeatureTables.tables`), embedded (`config.feature_dim` each) into the gate's
      input, gathered by "user_index"; ignored with one expert (BST has no gate).

  Call args of `call` (scoring the whole catalogue) and `score_candidates`:
    features: "history" [batch, max_len] int item indices (left-padded, most recent last)
      and "user_index" [batch] int.

  Example (one epoch on a tiny synthetic log, with two small experts):
    >>> from tfrs_smoe.data import item_features, sequences, splits, synthetic
    >>> split = splits.leave_one_out(synthetic.generate_watch_log(
    ...     synthetic.SyntheticConfig(num_users=20, num_titles=30))[0])
    >>> tables = item_features.ItemFeatureTables.from_catalog(split.items, split.item_vocabulary)
    >>> model = SMoEBST(split.item_vocabulary.size, split.user_vocabulary.size, tables.as_dict(),
    ...                 SMoEBSTConfig(item_dim=16, expert_windows=(5, 0), num_blocks=1,
    ...                               feed_forward_dim=16),
    ...                 engagement_multitask.MultitaskConfig(), max_len=10)
    >>> model.initialize()
    >>> model.compile(tf.keras.optimizers.Adam(1e-3), run_eagerly=True)  # One step: no tracing.
    >>> pipeline = sequences.SequencePipeline(max_len=10)
    >>> history = model.fit(pipeline.sequences(split.train).batch(128), epochs=1, verbose=0)
    >>> sorted(name for name in history.history if name.startswith("gate"))
    ['gate_entropy', 'gate_weight_0', 'gate_weight_1']
    >>> features = {"history": tf.constant([[0] * 8 + [2, 3]]), "user_index": tf.constant([2])}
    >>> model(features).shape  # [batch, num_items]
    TensorShape([1, 67])
    >>> users, alpha = model.user_vector(features)  # [batch, dim], gate weights [batch, E]
    >>> users.shape, alpha.shape
    (TensorShape([1, 32]), TensorShape([1, 2]))
  """

  def __init__(self, num_items: int, num_users: int, item_features: Dict[str, np.ndarray],
               config: SMoEBSTConfig, task_config: engagement_multitask.MultitaskConfig,
               max_len: int = 50, candidate_counts: Optional[np.ndarray] = None,
               item_categorical: Optional[Dict[str, np.ndarray]] = None,
               user_features: Optional[Dict[str, np.ndarray]] = None, **kwargs):
    super().__init__(**kwargs)
    self.config = config
    self.task_config = task_config
    self.num_items = num_items
    self.max_len = max_len
    self.content = item_content.ItemContent.from_tables(
        item_features, num_items, config.item_dim, config.genre_dim, config.year_dim,
        categorical=item_categorical, name="content")
    self.encoder = build_history_encoder(config, num_users, max_len,
                                         user_features=user_features)
    self.scorer = candidate_scorer.CandidateScorer(config.scorer, config.scorer_hidden_units,
                                                   name="scorer")
    self.completion_head = None
    if task_config.completion_weight > 0:
      self.completion_head = tf.keras.Sequential(
          [tf.keras.layers.Dense(64, activation="relu"),
           tf.keras.layers.Dense(1, activation="sigmoid")], name="completion")
    self.future_head = None
    if task_config.next_k_mode == "auxiliary":
      self.future_head = engagement_multitask.default_future_head(self.dim)
    self.task = engagement_multitask.EngagementMultitask(task_config, self.scorer,
                                                         candidate_counts=candidate_counts,
                                                         num_items=num_items,
                                                         future_head=self.future_head)

  def initialize(self) -> None:
    """Creates every weight now: a first call, then the completion head (built last so that the
    other layers draw their initial values as before). Compiling under a tf.distribute strategy
    and copying weights need them all."""
    self({"history": tf.zeros([1, self.max_len], tf.int32), "user_index": tf.zeros([1], tf.int32)})
    if self.completion_head is not None:
      self.predict_completion(tf.zeros([1, self.dim]), tf.zeros([1, self.dim]))
    if self.future_head is not None:
      self.future_head(tf.zeros([1, self.dim]))

  @property
  def gate(self):
    """The encoder's `AdaptiveGate`, None with one expert (BST)."""
    return self.encoder.gate

  @property
  def dim(self) -> int:
    return self.content.output_dim

  def item_table(self) -> tf.Tensor:
    """[num_items, dim] content vectors of the whole catalogue."""
    return self.content(tf.range(self.num_items))

  def encode(self, features: Dict[str, tf.Tensor], training: Optional[bool] = None
             ) -> Tuple[tf.Tensor, Optional[tf.Tensor]]:
    """User vectors [batch, time, dim] at every position and gate weights [batch, time, E]."""
    return self._encode(features, training, last_only=False)

  def _encode(self, features: Dict[str, tf.Tensor], training: Optional[bool], last_only: bool):
    history = tf.cast(features["history"], tf.int32)
    return self.encoder((self.content(history), tf.cast(features["user_index"], tf.int32)),
                        mask=history > 0, training=training, last_only=last_only)

  def user_vector(self, features: Dict[str, tf.Tensor], training: Optional[bool] = None
                  ) -> Tuple[tf.Tensor, Optional[tf.Tensor]]:
    """[batch, dim] representation of the whole history and its gate weights [batch, E]
    (the last position only is pooled and gated)."""
    vectors, alpha = self._encode(features, training, last_only=True)
    return vectors[:, -1], (None if alpha is None else alpha[:, -1])

  def call(self, features: Dict[str, tf.Tensor], training: Optional[bool] = None) -> tf.Tensor:
    """[batch, num_items] scores of the whole catalogue."""
    return self.score_catalogue(features, self.item_table(), training)

  def score_catalogue(self, features: Dict[str, tf.Tensor], table: tf.Tensor,
                      training: Optional[bool] = None) -> tf.Tensor:
    """[batch, num_items] scores against a precomputed `item_table()` [num_items, dim]
    (serving computes the table once, not per request)."""
    users, _ = self.user_vector(features, training)
    return self.scorer.score_all(users, table)

  def score_candidates(self, features: Dict[str, tf.Tensor], candidates: tf.Tensor
                       ) -> tf.Tensor:
    """[batch, n] scores of candidate item indices [batch, n]."""
    users, _ = self.user_vector(features)
    return self.scorer((users, self.content(candidates)))

  def predict_completion(self, users: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
    """[...] predicted completion rate of item content vectors [..., dim] for users [..., dim]."""
    return tf.squeeze(self.completion_head(tf.concat([users, items], axis=-1)), axis=-1)

  def compute_loss(self, features: Dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
    vectors, _ = self.encode(features, training)
    targets = tf.cast(features["targets"], tf.int32)
    present = features["target_weights"][..., 0] > 0  # [batch, time]: positions to train.
    query = tf.boolean_mask(vectors, present)
    targets = tf.boolean_mask(targets, present)
    if "negatives" in features:
      negatives = tf.boolean_mask(tf.cast(features["negatives"], tf.int32), present)
    else:
      negatives = engagement_multitask.in_batch_negatives(targets,
                                                          self.task_config.num_negatives)
    item_table = self.item_table()
    completion = None
    if self.completion_head is not None:
      completion = self.predict_completion(query, tf.gather(item_table, targets[:, 0]))
    return self.task(query, targets, tf.boolean_mask(features["target_weights"], present),
                     tf.boolean_mask(features["target_engagement"], present), negatives,
                     item_table, completion, training=training)
