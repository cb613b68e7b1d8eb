"""The synthetic streaming log generated chunk by chunk inside the pipeline.

`synthetic.generate_watch_log` draws the catalogue and every user's parameters, then simulates
the users in chunks, each from its own spawned seed, and only then concatenates the chunks. The
chunks are independent, so here each one is a work item: a worker draws the (small) catalogue
and user tables once, simulates its chunks and emits their events in batches. The seeds and the
chunk plan (users per chunk, one seed per chunk) are the generator's own
(`synthetic.generation_plan`), so the events are exactly those of `generate_watch_log(config)`,
in another order (the pipeline sorts them per user anyway).
"""

from typing import Dict, Iterator, List, Tuple, Union

import numpy as np

from tfrs_smoe.data import schema
from tfrs_smoe.data import synthetic
from tfrs_smoe.data import synthetic_catalog
from tfrs_smoe.data import synthetic_simulation
from tfrs_smoe.data.preparation import catalog_files
from tfrs_smoe.data.preparation import event_batch
from tfrs_smoe.data.preparation import watch_log_source


class SyntheticSource:
  """The events of `synthetic.generate_watch_log(config)`, one chunk of users per work item.

  Args:
    config: the generator parameters, seed included.
    batch_size: events per EventBatch.

  Example:
    >>> source = SyntheticSource(synthetic.SyntheticConfig(num_users=20, num_titles=30))
    >>> source.work_items()  # One chunk: 20 users fit in one.
    [0]
    >>> batches = [b for b in source.read(0) if isinstance(b, event_batch.EventBatch)]
    >>> log, _ = synthetic.generate_watch_log(source.config)
    >>> sum(len(b) for b in batches) == len(log.interactions)
    True
  """

  name = "streaming_logs"

  def __init__(self, config: synthetic_catalog.SyntheticConfig, batch_size: int = 65_536):
    self.config = config
    self.batch_size = batch_size
    self.abandonment_threshold = config.abandonment_threshold
    self._drawn = None

  def __getstate__(self):
    return {**self.__dict__, "_drawn": None}  # Workers draw the tables themselves.

  def _draw(self):
    """(catalog, users, the chunk plan, user ids), as `generate_watch_log` draws them."""
    if self._drawn is None:
      config = self.config
      plan = synthetic.generation_plan(config)
      catalog = synthetic_catalog.draw_catalog(config, np.random.default_rng(plan.catalog_seed))
      users = synthetic_simulation.draw_users(config, np.random.default_rng(plan.users_seed))
      user_ids = synthetic_catalog.padded_ids("u", config.num_users)
      self._drawn = catalog, users, plan.chunks, user_ids
    return self._drawn

  def work_items(self) -> List[int]:
    """The chunk indices."""
    return list(range(len(synthetic.generation_plan(self.config).chunks)))

  def metadata(self) -> Dict[str, object]:
    return {"synthetic_config": {name: getattr(self.config, name)
                                 for name in self.config.__dataclass_fields__}}

  def tables(self, item_ids: np.ndarray, user_ids: np.ndarray
             ) -> Tuple[schema.ItemCatalog, None, Dict[str, object]]:
    """(the catalogue of `item_ids` as `generate_watch_log` builds it, no user table, {})."""
    del user_ids  # The generator has no user features.
    catalog = self._draw()[0]
    items = schema.ItemCatalog(item_id=catalog.item_id, title=catalog.item_name,
                               genres=catalog.item_genres, year=catalog.item_year,
                               runtime_seconds=catalog.item_runtime)
    return catalog_files.subset_catalog(items, item_ids), None, {}

  def read(self, work_item: int) -> Iterator[Union[event_batch.EventBatch, Dict]]:
    """Yields the EventBatches of chunk `work_item`, then its report (a dict)."""
    catalog, users, chunks, user_ids = self._draw()
    begin, end, seed = chunks[work_item]
    events = synthetic_simulation.simulate_chunk(self.config, catalog, users, begin, end,
                                                 np.random.default_rng(seed))
    count = len(events["user"])
    for start in range(0, count, self.batch_size):
      rows = slice(start, min(start + self.batch_size, count))
      yield event_batch.EventBatch.from_ids(
          user_ids[events["user"][rows]], catalog.item_id[events["item"][rows]],
          events["timestamp"][rows], events["completion"][rows],
          order=(np.int64(work_item) << watch_log_source.ORDER_SHIFT) + np.arange(
              start, rows.stop, dtype=np.int64))
    yield {"rows_read": count}
