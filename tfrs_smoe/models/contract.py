"""What evaluation and serving may call on a model: the `Ranker` and `ServableRanker` protocols.

Evaluation (`FullRankingEvaluator`, `PHNSTestEvaluator`) needs a `Ranker`: scores of the whole
catalogue and of given candidates. Serving (`serving.RecommenderModule`) needs a
`ServableRanker`: besides, the catalogue's item vectors computed once (`item_table`) and the
catalogue scored against them (`score_catalogue`), so that a request does not re-encode every
item. As keras-rs' `Retrieval` and TFRS' `TopK` do, the contract is written down here instead of
being probed with `hasattr` where it is used; `require_servable` checks it with a message that
names the model and what it lacks.

Inputs of every method: `features` holds "history" [batch, max_len] int32 item indices
(left-padded, most recent last) and "user_index" [batch] int32.

Example:
  >>> from tfrs_smoe.models import popularity
  >>> model = popularity.PopularityModel(num_items=5)
  >>> isinstance(model, Ranker), isinstance(model, ServableRanker)
  (True, False)
"""

from typing import Any, Dict, Protocol, runtime_checkable

import tensorflow as tf


@runtime_checkable
class Ranker(Protocol):
  """A model that evaluation can rank with."""

  def __call__(self, features: Dict[str, tf.Tensor], *args: Any, **kwargs: Any) -> tf.Tensor:
    """[batch, num_items] scores of every item index (higher = more relevant)."""

  def score_candidates(self, features: Dict[str, tf.Tensor], candidates: tf.Tensor
                       ) -> tf.Tensor:
    """[batch, n] scores of the item indices `candidates` ([batch, n] int32)."""


@runtime_checkable
class ServableRanker(Ranker, Protocol):
  """A `Ranker` that serving can export: catalogue vectors are computed once per export."""

  def item_table(self) -> tf.Tensor:
    """[num_items, dim] vectors of every item index, as `score_catalogue` takes them."""

  def score_catalogue(self, features: Dict[str, tf.Tensor], table: tf.Tensor) -> tf.Tensor:
    """[batch, num_items] scores of every item against `table` (from `item_table`)."""


def require_servable(model: Any, name: str = "") -> None:
  """Raises a TypeError naming what `model` lacks when it is not a `ServableRanker`.

  Args:
    model: the model to export.
    name: its registry name, for the message (defaults to its class name).
  """
  if isinstance(model, ServableRanker):
    return
  missing = [method for method in ("__call__", "score_candidates", "item_table", "score_catalogue")
             if not callable(getattr(model, method, None))]
  label = name or type(model).__name__
  raise TypeError(f"{label} cannot be served: it lacks {', '.join(missing)} of the "
                  "ServableRanker contract (tfrs_smoe/models/contract.py). Export a bst, "
                  "smoe_bst or two_tower model; the popularity fallback is part of every "
                  "export.")
