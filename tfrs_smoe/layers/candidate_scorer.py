"""The score s(u, i) of an item for a user: a dot product or an MLP over the pair."""

from typing import Sequence

import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="tfrs_smoe")
class CandidateScorer(tf.keras.layers.Layer):
  """s(u, i) = <u, e_i> ("dot") or MLP([u, e_i, u * e_i]) ("mlp").

  The one definition of a score, used by training, evaluation and serving alike. "dot" ranks a
  whole catalogue with one matrix product (`score_all`); "mlp" can model interactions a dot
  product cannot, at the cost of one MLP pass per (user, item) pair, so it suits re-ranking a
  candidate set.

  Args:
    mode: "dot" or "mlp".
    hidden_units: hidden ReLU layer sizes of the MLP (mode "mlp").
    items_per_chunk: `score_all` with "mlp" scores the catalogue in chunks of this many items
      to bound memory at [batch, items_per_chunk, 3 * dim].

  Call args:
    inputs: (users [..., dim], items [..., num_candidates, dim]); the leading dims match.

  Returns:
    [..., num_candidates] scores.

  Example:
    >>> scorer = CandidateScorer("mlp", hidden_units=(32,))
    >>> scorer((tf.zeros([4, 16]), tf.zeros([4, 10, 16]))).shape
    TensorShape([4, 10])
  """

  def __init__(self, mode: str = "dot", hidden_units: Sequence[int] = (64,),
               items_per_chunk: int = 1024, **kwargs):
    super().__init__(**kwargs)
    if mode not in ("dot", "mlp"):
      raise ValueError(f"mode must be 'dot' or 'mlp', got {mode!r}.")
    if items_per_chunk < 1:
      raise ValueError(f"items_per_chunk must be >= 1, got {items_per_chunk}.")
    self.mode = mode
    self.hidden_units = tuple(hidden_units)
    self.items_per_chunk = items_per_chunk
    self._mlp = None
    if mode == "mlp":
      self._mlp = tf.keras.Sequential(
          [tf.keras.layers.Dense(units, activation="relu") for units in self.hidden_units]
          + [tf.keras.layers.Dense(1)], name="mlp")

  def build(self, input_shape):
    if self._mlp is not None:
      dim = int(tf.TensorShape(input_shape[0])[-1])
      self._mlp.build([None, 3 * dim])
    super().build(input_shape)

  def call(self, inputs) -> tf.Tensor:
    users, items = inputs
    if self._mlp is None:
      return tf.einsum("...d,...cd->...c", users, items)
    users = tf.broadcast_to(users[..., tf.newaxis, :], tf.shape(items))
    pairs = tf.concat([users, items, users * items], axis=-1)
    return tf.squeeze(self._mlp(pairs), axis=-1)

  def score_all(self, users: tf.Tensor, item_table: tf.Tensor) -> tf.Tensor:
    """[batch, num_items] scores of every row of `item_table` [num_items, dim] for `users`."""
    if self._mlp is None:
      return tf.matmul(users, item_table, transpose_b=True)
    batch_size = tf.shape(users)[0]
    num_items = tf.shape(item_table)[0]
    num_chunks = (num_items + self.items_per_chunk - 1) // self.items_per_chunk
    padded = tf.pad(item_table, [[0, num_chunks * self.items_per_chunk - num_items], [0, 0]])
    chunks = tf.reshape(padded, [num_chunks, self.items_per_chunk, -1])

    def score_chunk(chunk):
      return self((users, tf.broadcast_to(chunk[tf.newaxis],
                                          [batch_size, self.items_per_chunk,
                                           tf.shape(chunk)[-1]])))

    scores = tf.map_fn(score_chunk, chunks, fn_output_signature=users.dtype)
    scores = tf.reshape(tf.transpose(scores, [1, 0, 2]), [batch_size, -1])
    return scores[:, :num_items]

  def get_config(self):
    config = super().get_config()
    config.update({"mode": self.mode, "hidden_units": list(self.hidden_units),
                   "items_per_chunk": self.items_per_chunk})
    return config
