"""SASRec (Kang & McAuley, 2018) trained with full softmax cross-entropy, as a `tfrs.Model`."""

import dataclasses
from typing import Dict, Optional

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfrs_smoe.layers import causal_transformer

# Item indices 0 (padding) and 1 (out-of-vocabulary) are never predicted.
NUM_RESERVED_ITEMS = 2
# The score of a reserved index: the lowest finite float32, so that it ranks below every item
# and stays finite (no NaN in differences or softmaxes).
RESERVED_SCORE = float(np.finfo(np.float32).min)


@dataclasses.dataclass
class SASRecConfig:
  """Architecture of SASRec. The defaults are the references' MovieLens settings.

  Attributes:
    dim: size of the item and position embeddings and of every block (64, as in the full
      cross-entropy SASRec of Klenitskiy & Vasilev, 2023; Kang & McAuley use 50).
    num_blocks, num_heads: self-attention blocks and heads (2 and 1 in both references).
    feed_forward_dim: hidden size of the point-wise feed-forward sublayer; the references
      set it to dim.
    dropout: rate of the embedding, attention-weight and feed-forward dropouts. 0.5 is the
      setting of the PyTorch SASRec measured on MovieLens latest-small in this repository's
      README and Kang & McAuley's default for their sparse data sets; their ML-1M run uses 0.2,
      Klenitskiy & Vasilev's 0.1.
    residual: "normalized" (the authors' code and Klenitskiy & Vasilev's: the residual adds the
      normalized input, keys and values are not normalized) or "input" (the paper's equation
      x + g(LN(x)), PyTorch's norm_first); see `CausalTransformer`.
    attention_output_projection: a Dense(dim) after the attention heads, as in the PyTorch
      implementations (nn.MultiheadAttention); the authors' TensorFlow code has none.
    scale_embeddings: multiply the input item embeddings by sqrt(dim), as both references do
      (the tied output embeddings are not scaled).
    layer_norm_epsilon: of every LayerNorm (1e-8 in both references).
    embedding_initializer: Keras initializer of the item and position embeddings;
      "glorot_uniform" is the default of the authors' `tf.get_variable`.
  """

  dim: int = 64
  num_blocks: int = 2
  num_heads: int = 1
  feed_forward_dim: int = 64
  dropout: float = 0.5
  residual: str = "normalized"
  attention_output_projection: bool = True
  scale_embeddings: bool = True
  layer_norm_epsilon: float = 1e-8
  embedding_initializer: str = "glorot_uniform"

  def __post_init__(self):
    for name in ("dim", "num_blocks", "num_heads", "feed_forward_dim"):
      if getattr(self, name) < 1:
        raise ValueError(f"model.sasrec.{name} must be >= 1, got {getattr(self, name)}.")
    if self.dim % self.num_heads:
      raise ValueError(f"model.sasrec.num_heads: dim {self.dim} is not divisible by "
                       f"{self.num_heads} heads.")
    if not 0.0 <= self.dropout < 1.0:
      raise ValueError(f"model.sasrec.dropout must be in [0, 1), got {self.dropout}.")
    if self.residual not in causal_transformer.RESIDUALS:
      raise ValueError(f"model.sasrec.residual must be one of {causal_transformer.RESIDUALS}, "
                       f"got {self.residual!r}.")
    # NaN and inf fail too.
    if not 0.0 < self.layer_norm_epsilon < np.inf:
      raise ValueError("model.sasrec.layer_norm_epsilon must be > 0 and finite, got "
                       f"{self.layer_norm_epsilon}.")
    try:
      tf.keras.initializers.get(self.embedding_initializer)
    except ValueError:
      raise ValueError("model.sasrec.embedding_initializer must name a Keras initializer (e.g. "
                       f"'glorot_uniform'), got {self.embedding_initializer!r}.") from None


class SASRec(tfrs.models.Model):
  """Item ids only -> causal self-attention -> scores against the tied item embeddings.

  history [batch, T] -> item embedding (x sqrt(dim)) -> `CausalTransformer` (recency position
  embeddings, pre-LN causal blocks, final LayerNorm) -> h [batch, T, dim] -> score of item i at
  step t: <h_t, e_i>, with e_i the same (unscaled) item embedding table. No user embedding, no
  item content, no output bias (Kang & McAuley, 2018; Klenitskiy & Vasilev, 2023).

  Training (`compute_loss`, on `SequencePipeline.sequences` batches): at every step with a
  target, softmax cross-entropy of the next item over the whole catalogue, averaged over those
  steps, as Klenitskiy & Vasilev's full cross-entropy SASRec trains (the original trains with
  one sampled negative and binary cross-entropy). The reserved indices 0 and 1 are left out of
  the softmax (that reference keeps its padding row in it), and score `RESERVED_SCORE` in
  `call`, `score_catalogue` and `score_candidates`, so they are never recommended. Only the
  first of the next-K targets is used and its soft-label weight is ignored: SASRec predicts
  the next item (train with `data: {next_k: 1, soft_labels: [1.0]}`). PHNS `negatives` in the
  batches are ignored (the full softmax already ranks against every item).

  Around the model, `Experiment` differs from the references in two ways that are settings of
  the toolkit, not of this class: with `data.all_chunks` (the default) it trains on every chunk
  of max_len + 1 positives of a user, where both references train on the last max_len + 1 only
  (`data: {all_chunks: false}`); and its Adam has beta_2 = 0.999 as Klenitskiy & Vasilev's,
  where Kang & McAuley use 0.98. Neither reference regularises the embeddings by default (no
  L2 term here either).

  Scoring reads the representation at the last step of a left-padded history, the same
  computation as training's last step; left padding changes no score. Like `SMoEBST` it has no
  Keras `get_config`; it is saved as checkpoints and exported through
  `serving.RecommenderModule`.

  Args:
    num_items: item vocabulary size (reserved indices included).
    config: `SASRecConfig`.
    max_len: history length (the number of position embeddings).

  Call args of `call` (scoring the whole catalogue) and `score_candidates`:
    features: "history" [batch, T <= max_len] int item indices (left-padded, most recent
      last); other features ("user_index", ...) are ignored.

  Example (one epoch on a tiny synthetic log, with a small config):
    >>> from tfrs_smoe.data import sequences, splits, synthetic
    >>> split = splits.leave_one_out(synthetic.generate_watch_log(
    ...     synthetic.SyntheticConfig(num_users=20, num_titles=30))[0])
    >>> pipeline = sequences.SequencePipeline(max_len=10, next_k=1, soft_labels=(1.0,))
    >>> model = SASRec(split.item_vocabulary.size,
    ...                SASRecConfig(dim=16, num_blocks=1, feed_forward_dim=16), max_len=10)
    >>> model.initialize()
    >>> model.compile(tf.keras.optimizers.Adam(1e-3))
    >>> _ = model.fit(pipeline.sequences(split.train).batch(128), epochs=1, verbose=0)
    >>> history = tf.constant([[0] * 8 + [2, 3]])  # Left-padded, most recent last.
    >>> model({"history": history}).shape  # [batch, num_items]
    TensorShape([1, 67])
  """

  def __init__(self, num_items: int, config: SASRecConfig, max_len: int = 50, **kwargs):
    super().__init__(**kwargs)
    if num_items <= NUM_RESERVED_ITEMS:
      raise ValueError(f"num_items={num_items} leaves no item besides the reserved 0 and 1.")
    self.config = config
    self.num_items = num_items
    self.max_len = max_len
    self.item_embedding = tf.keras.layers.Embedding(
        num_items, config.dim, embeddings_initializer=config.embedding_initializer, name="item")
    self.item_embedding.build([None])
    self.encoder = causal_transformer.CausalTransformer(
        config.num_blocks, config.num_heads, config.feed_forward_dim, config.dropout, max_len,
        residual=config.residual,
        attention_output_projection=config.attention_output_projection,
        layer_norm_epsilon=config.layer_norm_epsilon,
        position_initializer=config.embedding_initializer, name="encoder")

  def initialize(self) -> None:
    """Creates every weight now (a checkpoint restores into a built model)."""
    self({"history": tf.zeros([1, self.max_len], tf.int32)})

  def item_table(self) -> tf.Tensor:
    """[num_items, dim] item embeddings: the output layer, tied to the input embeddings."""
    return tf.convert_to_tensor(self.item_embedding.embeddings)

  def encode(self, features: Dict[str, tf.Tensor], training: Optional[bool] = None
             ) -> tf.Tensor:
    """[batch, T, dim] representation of the history up to each step (zeros at padding)."""
    history = tf.cast(features["history"], tf.int32)
    items = self.item_embedding(history)
    if self.config.scale_embeddings:
      items *= self.config.dim ** 0.5
    return self.encoder(items, mask=history > 0, training=training)

  def user_vector(self, features: Dict[str, tf.Tensor], training: Optional[bool] = None
                  ) -> tf.Tensor:
    """[batch, dim] representation of the whole history (its last step)."""
    return self.encode(features, training)[:, -1]

  def call(self, features: Dict[str, tf.Tensor], training: Optional[bool] = None) -> tf.Tensor:
    """[batch, num_items] scores of the whole catalogue."""
    return self.score_catalogue(features, self.item_table(), training)

  def score_catalogue(self, features: Dict[str, tf.Tensor], table: tf.Tensor,
                      training: Optional[bool] = None) -> tf.Tensor:
    """[batch, num_items] scores against a precomputed `item_table()` [num_items, dim]."""
    scores = tf.matmul(self.user_vector(features, training), table, transpose_b=True)
    reserved = tf.range(tf.shape(table)[0]) < NUM_RESERVED_ITEMS
    return tf.where(reserved[tf.newaxis], tf.constant(RESERVED_SCORE, scores.dtype), scores)

  def score_candidates(self, features: Dict[str, tf.Tensor], candidates: tf.Tensor
                       ) -> tf.Tensor:
    """[batch, n] scores of candidate item indices [batch, n]."""
    candidates = tf.cast(candidates, tf.int32)
    scores = tf.einsum("bd,bnd->bn", self.user_vector(features),
                       tf.gather(self.item_table(), candidates))
    return tf.where(candidates < NUM_RESERVED_ITEMS, tf.constant(RESERVED_SCORE, scores.dtype),
                    scores)

  def compute_loss(self, features: Dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
    """Mean full-catalogue softmax cross-entropy of the next item over the steps with one."""
    vectors = self.encode(features, training)
    targets = tf.cast(features["targets"][..., 0], tf.int32)  # [batch, T]
    present = (features["target_weights"][..., 0] > 0) & (targets >= NUM_RESERVED_ITEMS)
    query = tf.boolean_mask(vectors, present)  # [P, dim]
    labels = tf.boolean_mask(targets, present) - NUM_RESERVED_ITEMS
    logits = tf.matmul(query, self.item_table()[NUM_RESERVED_ITEMS:], transpose_b=True)
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    return tf.math.divide_no_nan(tf.reduce_sum(losses), tf.cast(tf.size(losses), losses.dtype))
