"""The raw source a `PreparationConfig` names, as work items that yield `EventBatch`es.

Every source has `name` (the log's name), `abandonment_threshold` (the data set's default),
`work_items()` (a list of small picklable keys, read in parallel), `read(work_item)` (yields the
item's EventBatches, then one report dict: rows read, bad rows per file, ...), `metadata()`
(where the data came from, for statistics.json) and `tables(item_ids, user_ids)` (the item
catalogue and user features of the vocabularies, written beside the shards, and a report):

  streaming_logs  `SyntheticSource`: one work item per chunk of simulated users.
  watch_log       `WatchLogSource`: one work item per interactions file.
  movielens       `MovieLensSource`: the GroupLens files are read in one step, by
                  `movielens_files.read_movielens` (their line-by-line parser; the largest
                  supported format, 1m, has a million ratings), then batched.
"""

import os
from typing import Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from tfrs_smoe.data import movielens_files
from tfrs_smoe.data import records
from tfrs_smoe.data import schema
from tfrs_smoe.data import watch_log_format
from tfrs_smoe.data.preparation import catalog_files
from tfrs_smoe.data.preparation import config as config_lib
from tfrs_smoe.data.preparation import event_batch
from tfrs_smoe.data.preparation import synthetic_source
from tfrs_smoe.data.preparation import watch_log_source


class MovieLensSource:
  """The ratings of one MovieLens folder, parsed in one work item.

  Args:
    directory: the folder holding the format's files.
    format: "100k", "1m" or "latest-small".
    skip_bad_lines: skip and count malformed lines instead of raising.
    batch_size: ratings per EventBatch.

  Example:
    >>> os.makedirs("ml", exist_ok=True)
    >>> with open("ml/movies.csv", "w", encoding="utf-8") as f:
    ...   _ = f.write("movieId,title,genres\\n1,Heat (1995),Action\\n")
    >>> with open("ml/ratings.csv", "w", encoding="utf-8") as f:
    ...   _ = f.write("userId,movieId,rating,timestamp\\n1,1,5.0,964982703\\n")
    >>> batch, report = MovieLensSource("ml", "latest-small").read(0)
    >>> batch.raw("user").tolist(), report["bad_rows"]
    (['1'], {'movies.csv': 0, 'ratings.csv': 0})
  """

  def __init__(self, directory: str, format: str,  # pylint: disable=redefined-builtin
               skip_bad_lines: bool = False, batch_size: int = 65_536):
    self.directory = os.fspath(directory)
    self.format = format
    self.skip_bad_lines = skip_bad_lines
    self.batch_size = batch_size
    self.name = f"movielens/{format}"
    self.abandonment_threshold = (movielens_files.DEFAULT_ABANDONMENT_RATING /
                                  movielens_files.MAX_RATING)
    self._metadata = {"data_dir": os.path.abspath(self.directory),
                      "source_files": movielens_files.source_fingerprint(directory, format)}
    # The 100k data set has user features, so its loader requires the user file.
    if format == "100k" and not os.path.isfile(os.path.join(directory, "u.user")):
      raise schema.DataError(
          f"MovieLens '100k' files missing from {directory}: u.user (the movielens/100k data "
          "set has user features; ml-100k.zip contains u.user).")

  def work_items(self) -> List[int]:
    return [0]

  def metadata(self) -> Dict[str, object]:
    return dict(self._metadata)

  def tables(self, item_ids: np.ndarray, user_ids: np.ndarray
             ) -> Tuple[schema.ItemCatalog, Optional[schema.UserTable], Dict[str, object]]:
    """The catalogue of `item_ids` and the user table of `user_ids` (None without user
    features), as `records.watch_log_from_columns` builds them; the files are parsed again."""
    result = movielens_files.read_movielens(self.directory, self.format, self.skip_bad_lines)
    log = records.watch_log_from_columns(self.name, result.columns, self.abandonment_threshold)
    users = None
    if log.users is not None:
      found = np.searchsorted(log.users.user_id, user_ids)
      users = schema.UserTable(user_id=user_ids, features={
          name: np.asarray(values)[found] for name, values in log.users.features.items()})
    return catalog_files.subset_catalog(log.items, item_ids), users, {}

  def read(self, work_item: int) -> Iterator[Union[event_batch.EventBatch, Dict]]:
    """Yields the ratings as EventBatches, then the report (bad lines, duplicates dropped)."""
    del work_item  # One work item.
    result = movielens_files.read_movielens(self.directory, self.format, self.skip_bad_lines)
    columns = result.columns
    count = len(columns["user_id"])
    for start in range(0, count, self.batch_size):
      rows = slice(start, min(start + self.batch_size, count))
      yield event_batch.EventBatch.from_ids(
          columns["user_id"][rows], columns["item_id"][rows], columns["timestamp"][rows],
          columns["engagement"][rows], order=np.arange(start, rows.stop, dtype=np.int64))
    yield {"rows_read": count, "bad_rows": dict(result.skipped),
           "duplicate_rows": result.duplicate_rows}


def make_source(config: config_lib.PreparationConfig):
  """The source of `config.data.dataset` (see the module docstring).

  Raises:
    ValueError: data.data_dir is missing for movielens or watch_log.
    schema.DataError: the files are not there (a missing folder or file, named).
  """
  data = config.data
  name, _, variant = data.dataset.partition("/")
  if name == "streaming_logs":
    synthetic = config.synthetic
    if synthetic is None:
      # Imported here: the presets live with the TFDS builder.
      from tfrs_smoe.data import streaming_logs  # pylint: disable=g-import-not-at-top
      presets = {c.name: c.synthetic for c in streaming_logs.StreamingLogs.BUILDER_CONFIGS}
      synthetic = presets[variant or streaming_logs.StreamingLogs.DEFAULT_CONFIG_NAME]
    return synthetic_source.SyntheticSource(synthetic, config.batch_size)
  if not data.data_dir:
    raise ValueError(f"{name} needs data.data_dir (--data_dir): the directory holding "
                     + ("the raw MovieLens files." if name == "movielens" else
                        "your interactions file (and optional items and users files)."))
  if not os.path.isdir(data.data_dir):
    raise ValueError(f"data.data_dir (--data_dir): no such directory: {data.data_dir}")
  if name == "movielens":
    return MovieLensSource(data.data_dir, variant or movielens_files.detect_format(data.data_dir),
                           data.skip_bad_lines, config.batch_size)
  return watch_log_source.WatchLogSource(data.data_dir, watch_log_format.WatchLogFormat(
      columns=dict(data.columns), genre_separator=data.genre_separator,
      item_features=tuple(data.item_features), user_features=tuple(data.user_features),
      skip_bad_lines=data.skip_bad_lines))
