"""Personalized Hard Negative Sampling (PHNS) of training negatives inside tf.data.

Three pools, all from the training split only:

  * hard: the user's own abandoned items (interactions that are not positives: engagement at or
    below the data set's abandonment threshold), minus anything the user also has as a positive;
  * trending: the items most interacted with in the recent window of the training log;
  * tailing: the least popular items overall (`phns_protocol.PopularityPools`, the same pools the
    PHNS test uses), both restricted at sampling time to items the user never touched.

Every training position gets `num_negatives` negatives: a `hard_share` of them (EASY 20 %,
MEDIUM 30 %, HARD 50 %) from the user's hard pool, the rest split between trending and tailing by
`trending_share`. Quotas are filled in that order of preference; a pool that runs short (a user
with few abandoned items, a small pool the user has mostly watched) is topped up from what the
other pools drew. Hard negatives are distinct; trending and tailing ones are drawn with
replacement. A slot no pool can fill holds 0 (padding), which losses ignore. Never is a positive
of the user a negative. Under the implicit protocol nobody abandons anything, so the hard pool is
empty and every negative comes from trending and tailing.

Sampling works on whole batches with vectorised ops (no Python per example), so the pipeline
keeps well ahead of training. Randomness is stateless: each batch's draws are seeded by
`tf.data.Dataset.random(seed)`, re-drawn each epoch, so a seed fixes the whole sequence of
negatives (for a fixed batch order).

Example:
  >>> from tfrs_smoe.data import sequences, synthetic
  >>> split = splits.leave_one_out(synthetic.generate_watch_log(
  ...     synthetic.SyntheticConfig(num_users=20, num_titles=30))[0])
  >>> sampler = HardNegativeSampler.from_log(split.train, split.item_vocabulary.size,
  ...                                        PHNSConfig(preset="medium"))
  >>> pipeline = sequences.SequencePipeline(max_len=10)
  >>> batches = sampler.add_negatives(pipeline.sequences(split.train).batch(128))
  >>> next(iter(batches))["negatives"].shape  # [batch, L, N]: 20 users, L = 10, N = 10.
  TensorShape([20, 10, 10])
"""

import dataclasses
from typing import Dict, Optional

import numpy as np
import tensorflow as tf

from tfrs_smoe.data import splits
from tfrs_smoe.evaluation import phns_protocol

PRESETS = {"none": 0.0, "easy": 0.2, "medium": 0.3, "hard": 0.5}


@dataclasses.dataclass
class PHNSConfig:
  """PHNS training negatives.

  Attributes:
    preset: "none" (the model's in-batch negatives), "easy", "medium" or "hard" (20 %, 30 %,
      50 % hard negatives).
    hard_share: explicit share of hard negatives in [0, 1]; overrides the preset's (needs a
      preset other than "none").
    trending_share: share of the non-hard negatives drawn from the trending pool; the rest
      comes from the tailing pool.
    num_negatives: negatives per training position. The default 10 gives every preset its
      exact share (2, 3, 5 hard); with 8, EASY and MEDIUM would both round to 2.
    max_hard_pool: the user's most recent abandoned items kept in the hard pool.
    trending_pool_size, trending_window_fraction, tail_fraction: the popularity pools, as in
      `phns_protocol.PHNSTestConfig`.
    seed: seed of the sampling.
  """

  preset: str = "none"
  hard_share: Optional[float] = None
  trending_share: float = 0.5
  num_negatives: int = 10
  max_hard_pool: int = 64
  trending_pool_size: int = 200
  trending_window_fraction: float = 0.1
  tail_fraction: float = 0.5
  seed: int = 0

  def __post_init__(self):
    if self.preset not in PRESETS:
      raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {self.preset!r}.")
    if self.hard_share is not None and not 0.0 <= self.hard_share <= 1.0:
      raise ValueError(f"hard_share must be in [0, 1], got {self.hard_share}.")
    if not 0.0 <= self.trending_share <= 1.0:
      raise ValueError(f"trending_share must be in [0, 1], got {self.trending_share}.")
    if self.num_negatives < 1 or self.max_hard_pool < 1:
      raise ValueError("num_negatives and max_hard_pool must be >= 1.")
    if self.trending_pool_size < 0:
      raise ValueError(f"trending_pool_size must be >= 0 (0 = no trending pool), got "
                       f"{self.trending_pool_size}.")
    if not 0.0 < self.trending_window_fraction <= 1.0:
      raise ValueError("trending_window_fraction must be in (0, 1], got "
                       f"{self.trending_window_fraction}.")
    if not 0.0 <= self.tail_fraction <= 1.0:
      raise ValueError(f"tail_fraction must be in [0, 1], got {self.tail_fraction}.")
    if not 0 <= self.seed < 2**32:
      raise ValueError(f"seed must be in [0, 2**32 - 1], got {self.seed}.")

  @property
  def enabled(self) -> bool:
    return self.preset != "none"

  def quotas(self):
    """(hard, trending, tailing) negatives per position."""
    share = PRESETS[self.preset] if self.hard_share is None else self.hard_share
    # Rounded half up, as the PHNS test's trending share is.
    hard = int(share * self.num_negatives + 0.5)
    trending = int(self.trending_share * (self.num_negatives - hard) + 0.5)
    return hard, trending, self.num_negatives - hard - trending


def _ragged_by_user(users: np.ndarray, items: np.ndarray, num_rows: int) -> tf.RaggedTensor:
  """[num_rows, (n)] items per user; `users` must be sorted and < num_rows - 1, so that the last
  row is empty and stands for every user the log does not know."""
  counts = np.bincount(users, minlength=num_rows)
  return tf.RaggedTensor.from_row_lengths(items.astype(np.int32), counts.astype(np.int64))


class HardNegativeSampler:
  """Adds a "negatives" feature drawn from the PHNS pools to training examples.

  Args:
    seen: [num_users, (s)] sorted items each user interacted with in training.
    hard: [num_users, (h)] each user's hard pool.
    pools: the trending and tailing pools.
    config: `PHNSConfig`.

  Call (`__call__`, for `Dataset.map` after zipping with per-batch seeds, or use
  `add_negatives`): a batch with "user_index" [batch] and "targets" [batch, ..., K] gets
  "negatives" [batch, ..., num_negatives] int32.

  Example:
    >>> from tfrs_smoe.data import sequences, synthetic
    >>> split = splits.leave_one_out(synthetic.generate_watch_log(
    ...     synthetic.SyntheticConfig(num_users=20, num_titles=30))[0])
    >>> num_items = split.item_vocabulary.size
    >>> sampler = HardNegativeSampler.from_log(split.train, num_items, PHNSConfig(preset="hard"))
    >>> pipeline = sequences.SequencePipeline(max_len=10)
    >>> batches = sampler.add_negatives(pipeline.windows(split.train).batch(8))
    >>> next(iter(batches))["negatives"].shape  # [batch, N]
    TensorShape([8, 10])
  """

  def __init__(self, seen: Optional[tf.RaggedTensor], hard: Optional[tf.RaggedTensor],
               pools: phns_protocol.PopularityPools, config: PHNSConfig):
    if (seen is None) != (hard is None):
      raise ValueError("HardNegativeSampler: give both the seen and the hard tables, or neither "
                       "(the batches then carry each user's pools: `user_pools`).")
    if not config.enabled:
      raise ValueError("PHNSConfig.preset is 'none': there is nothing to sample.")
    self.config = config
    self.seen = seen
    self.hard = hard
    self.trending = tf.constant(pools.trending, tf.int32)
    self.tailing = tf.constant(pools.tailing, tf.int32)
    self.quotas = config.quotas()

  @classmethod
  def from_log(cls, train: splits.IndexedLog, num_items: int,
               config: PHNSConfig) -> "HardNegativeSampler":
    """The pools of a training log (users sorted, then time, as `IndexedLog` is)."""
    num_rows = (int(train.user.max()) + 2) if len(train) else 1
    pool_config = phns_protocol.PHNSTestConfig(
        trending_pool_size=config.trending_pool_size,
        trending_window_fraction=config.trending_window_fraction,
        tail_fraction=config.tail_fraction)
    pools = phns_protocol.PopularityPools.from_log(train.item, train.timestamp, num_items,
                                                   pool_config)
    pair = train.user.astype(np.int64) * num_items + train.item
    seen_pairs = np.unique(pair)  # Sorted by user, then item.
    seen = _ragged_by_user(seen_pairs // num_items, seen_pairs % num_items, num_rows)

    # An abandoned item the user also has as a positive is not a hard negative of that user.
    abandoned = np.flatnonzero(~train.positive & ~np.isin(pair, pair[train.positive]))
    abandoned = abandoned[np.lexsort((-train.timestamp[abandoned], train.user[abandoned]))]
    hard_users, hard_items = train.user[abandoned], train.item[abandoned]  # Most recent first.
    user_start = np.searchsorted(hard_users, hard_users)
    keep = np.arange(len(hard_users)) - user_start < config.max_hard_pool
    hard = _ragged_by_user(hard_users[keep], hard_items[keep], num_rows)
    return cls(seen, hard, pools, config)

  @classmethod
  def from_pools(cls, pools: phns_protocol.PopularityPools,
                 config: PHNSConfig) -> "HardNegativeSampler":
    """A sampler whose batches carry each user's own seen items and hard pool.

    For training examples streamed user by user (`shard_stream.ShardStream`), which cannot
    index tables of every user: each example holds `user_pools`' "phns_seen" and "phns_hard"
    [1, (n)] ragged, so a batch holds [batch, 1, (n)]; the sampler takes them out of the batch
    and draws exactly what `from_log`'s tables give for the same users.
    """
    return cls(None, None, pools, config)

  def user_pools(self, items: tf.Tensor, timestamps: tf.Tensor,
                 positive: tf.Tensor) -> Dict[str, tf.RaggedTensor]:
    """One user's seen items and hard pool from its training events, as `from_log` has them.

    Args:
      items: [n] item indices of the user's training events, in time order.
      timestamps: [n] their times.
      positive: [n] bool, whether each is a positive.

    Returns:
      "phns_seen" [1, (s)] int32 the distinct items, sorted; "phns_hard" [1, (h)] int32 the
      abandoned items that are not also positives, most recent first (ties: later events
      first in time order, as the stable sort of `from_log`), at most `max_hard_pool`.
    """
    items = tf.cast(items, tf.int32)
    seen = tf.sort(tf.unique(items).y)
    positives = tf.sort(tf.boolean_mask(items, positive))
    position = tf.minimum(tf.searchsorted(positives, items), tf.maximum(tf.size(positives) - 1, 0))
    also_positive = tf.gather(tf.concat([positives, [-1]], 0), position) == items
    abandoned = ~positive & ~(also_positive & (tf.size(positives) > 0))
    order = tf.argsort(-tf.boolean_mask(tf.cast(timestamps, tf.int64), abandoned), stable=True)
    hard = tf.gather(tf.boolean_mask(items, abandoned), order)[:self.config.max_hard_pool]

    def row(values):
      return tf.RaggedTensor.from_row_lengths(values, tf.shape(values, out_type=tf.int64)[:1])

    return {"phns_seen": row(seen), "phns_hard": row(hard)}

  def add_negatives(self, batches: tf.data.Dataset) -> tf.data.Dataset:
    """Batched `batches` with "negatives" added to every batch, re-drawn every epoch."""
    seeds = tf.data.Dataset.random(seed=self.config.seed, rerandomize_each_iteration=True)
    return tf.data.Dataset.zip((batches, seeds.batch(2))).map(
        self, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

  def _rows(self, table: tf.RaggedTensor, users: tf.Tensor, padding: int) -> tf.Tensor:
    """[batch, width] rows of `table` for `users`, padded with `padding`; width >= 1."""
    users = tf.minimum(users, table.nrows() - 1)  # Unknown users get the empty last row.
    return self._padded(tf.gather(table, users), padding)

  @staticmethod
  def _padded(rows: tf.RaggedTensor, padding: int) -> tf.Tensor:
    """[batch, longest row + 1] `rows` padded with `padding` (one column of it at least)."""
    dense = rows.to_tensor(default_value=padding)
    return tf.concat([dense, tf.fill([tf.shape(dense)[0], 1], padding)], axis=1)

  def _draw(self, pool: tf.Tensor, shape, seed: tf.Tensor) -> tf.Tensor:
    """Items drawn uniformly with replacement from `pool`; 0 where the pool is empty."""
    size = tf.shape(pool)[0]
    index = tf.random.stateless_uniform(shape, seed, 0, tf.maximum(size, 1), tf.int32)
    return tf.gather(tf.concat([pool, [0]], 0), tf.where(size > 0, index, size))

  def __call__(self, batch: Dict[str, tf.Tensor], seed: tf.Tensor) -> Dict[str, tf.Tensor]:
    batch = dict(batch)
    users = tf.cast(batch["user_index"], tf.int64)
    batch_size = tf.shape(users)[0]
    positions = tf.shape(batch["targets"])[1:-1]  # [L] for sequences, [] for windows.
    num_positions = tf.reduce_prod(positions)
    num_hard, num_trending, num_tailing = self.quotas
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 4)
    draws_per_pool = 2 * self.config.num_negatives

    if self.hard is None:  # The batch carries its users' pools ([batch, 1, (n)]).
      carried = {name: batch.pop(name).merge_dims(1, 2) for name in ("phns_seen", "phns_hard")}
      hard_pool = self._padded(carried["phns_hard"], 0)
    else:
      hard_pool = self._rows(self.hard, users, 0)  # [batch, H]
    hard_keys = tf.random.stateless_uniform(
        [batch_size, num_positions, tf.shape(hard_pool)[1]], seeds[0])
    hard_keys += 2.0 * tf.cast(hard_pool[:, tf.newaxis, :] == 0, tf.float32)  # Padding last.
    # A random order of the pool, of which no more than num_negatives can be picked: the
    # num_negatives smallest keys, not a full sort of every position's pool.
    num_shuffled = tf.minimum(tf.shape(hard_pool)[1], self.config.num_negatives)
    _, order = tf.math.top_k(-hard_keys, k=num_shuffled)
    hard = tf.gather(hard_pool, order, batch_dims=1)  # [batch, P, min(H, num_negatives)]
    draw_shape = [batch_size, num_positions, draws_per_pool]
    trending = self._draw(self.trending, draw_shape, seeds[1])
    tailing = self._draw(self.tailing, draw_shape, seeds[2])

    seen = (self._padded(carried["phns_seen"], np.iinfo(np.int32).max) if self.seen is None
            else self._rows(self.seen, users, np.iinfo(np.int32).max))  # [batch, S], sorted.
    def unseen(items):
      flat = tf.reshape(items, [batch_size, -1])
      index = tf.minimum(tf.searchsorted(seen, flat), tf.shape(seen)[1] - 1)
      found = tf.gather(seen, index, batch_dims=1) == flat
      return (items > 0) & ~tf.reshape(found, tf.shape(items))

    # Candidates within their pool's quota come first, then any other valid one (top-ups).
    tiers, candidates = [], []
    for items, valid, quota in ((hard, hard > 0, num_hard),
                                (trending, unseen(trending), num_trending),
                                (tailing, unseen(tailing), num_tailing)):
      rank = tf.cumsum(tf.cast(valid, tf.int32), axis=-1)
      tiers.append(tf.where(valid, tf.where(rank <= quota, 0.0, 1.0), 2.0))
      candidates.append(items)
    tiers = tf.concat(tiers, -1)
    candidates = tf.concat(candidates, -1)
    jitter = tf.random.stateless_uniform(tf.shape(tiers), seeds[3], 0.0, 0.5)
    _, picked = tf.math.top_k(-(tiers + jitter), k=self.config.num_negatives)
    negatives = tf.gather(candidates, picked, batch_dims=2)
    negatives = tf.where(tf.gather(tiers, picked, batch_dims=2) < 2.0, negatives, 0)
    batch["negatives"] = tf.reshape(negatives, tf.concat(
        [[batch_size], positions, [self.config.num_negatives]], 0))
    return batch
