"""What `PreparationPipeline` prepares, where it writes, and how it shards and counts."""

import dataclasses
from typing import Optional

from tfrs_smoe import config as config_lib
from tfrs_smoe.data import synthetic_catalog


def _require(ok: bool, key: str, expected: str, value) -> None:
  if not ok:
    raise ValueError(f"preparation.{key} must be {expected}, got {value!r}.")


@dataclasses.dataclass
class PreparationConfig:
  """The settings of one preparation run.

  Attributes:
    data: the data set and its protocol, as training reads them (`config.DataConfig`: dataset,
      data_dir, the watch_log reading format, skip_bad_lines, abandonment_threshold,
      implicit, split, min_positives, validation_fraction, test_fraction); the example-shape
      keys (max_len, next_k, ...) are not used here.
    output_dir: where the shards, vocabularies/, popularity.npz and statistics.json go; a
      local path, or any path tf.io.gfile writes (gs://... on Dataflow).
    num_shards: TFRecord files per split; user u goes to shard (u - 2) % num_shards (u = its
      index, so the users of line 0, 1, ... of user_ids.txt go to shards 0, 1, ...).
    min_item_count: items with fewer events (duplicates dropped) are left out of the item
      vocabulary, and their events out of every split; 1 keeps every item (the in-memory rule).
    max_items: keep only this many most frequent items (ties: lower id first); 0 keeps all.
    trending_pool_size: items in the trending pool (most watched in the recent window).
    trending_window_fraction: the recent window is this last share of the training span.
    tail_fraction: the tailing pool is this least watched share of the items.
    batch_size: events per batch read from a source (rows of a file, a slice of a chunk).
    synthetic: streaming_logs only: generator parameters used instead of the preset named by
      data.dataset (e.g. a tiny log for tests); None uses the preset.

  Example:
    >>> config = PreparationConfig(config_lib.DataConfig(dataset="streaming_logs/tiny"), "out")
    >>> config.num_shards, config.min_item_count
    (8, 1)
    >>> PreparationConfig(config_lib.DataConfig(), "out", num_shards=0)
    Traceback (most recent call last):
    ...
    ValueError: preparation.num_shards must be an integer in [1, 100000], got 0.
  """

  data: config_lib.DataConfig
  output_dir: str
  num_shards: int = 8
  min_item_count: int = 1
  max_items: int = 0
  trending_pool_size: int = 200
  trending_window_fraction: float = 0.1
  tail_fraction: float = 0.5
  batch_size: int = 65_536
  synthetic: Optional[synthetic_catalog.SyntheticConfig] = None

  def __post_init__(self):
    if not isinstance(self.data, config_lib.DataConfig):
      raise ValueError(f"preparation.data must be a DataConfig, got {type(self.data).__name__}.")
    _require(isinstance(self.output_dir, str) and bool(self.output_dir), "output_dir",
             "a directory path", self.output_dir)
    _require(isinstance(self.num_shards, int) and 1 <= self.num_shards <= 100_000, "num_shards",
             "an integer in [1, 100000]", self.num_shards)
    _require(isinstance(self.min_item_count, int) and self.min_item_count >= 1,
             "min_item_count", "an integer >= 1", self.min_item_count)
    _require(isinstance(self.max_items, int) and self.max_items >= 0, "max_items",
             "an integer >= 0 (0 keeps every item)", self.max_items)
    _require(isinstance(self.trending_pool_size, int) and self.trending_pool_size >= 0,
             "trending_pool_size", "an integer >= 0", self.trending_pool_size)
    _require(0.0 < self.trending_window_fraction <= 1.0, "trending_window_fraction",
             "in (0, 1]", self.trending_window_fraction)
    _require(0.0 <= self.tail_fraction <= 1.0, "tail_fraction", "in [0, 1]", self.tail_fraction)
    _require(isinstance(self.batch_size, int) and self.batch_size >= 1, "batch_size",
             "an integer >= 1", self.batch_size)
    if self.synthetic is not None and not self.data.dataset.startswith("streaming_logs"):
      raise ValueError("preparation.synthetic is for streaming_logs only, but data.dataset is "
                       f"{self.data.dataset!r}.")

  @property
  def split_names(self):
    """The splits written, in order."""
    return ("train", "validation", "test")
