"""TFDS data set of synthetic streaming-service watch logs, and a loader returning a `WatchLog`.

`StreamingLogs` writes the log of `tfrs_smoe.data.synthetic.generate_watch_log` in the shared
record layout (`tfrs_smoe.data.records`), one record per interaction with watch_seconds and
runtime_seconds, all in one "train" split. Nothing is downloaded: the data is generated locally.

Configs: "small" (the default: 1.5k users, 2k titles, ~90k interactions, minutes to train on;
prepared in ~15 s), "medium" (100k users, 10k titles, ~6M interactions) and "large" (1M users,
20k titles, ~60M interactions). TFDS writes records one by one, about 6k a second, so preparing
"medium" takes ~20 minutes and "large" hours; `synthetic.generate_watch_log` itself draws them
in ~20 s and ~4 min.

Any `StreamingLogsConfig(name=..., synthetic=SyntheticConfig(...))` can be passed as `config=`;
prepared data is cached under the config name, so each distinct `SyntheticConfig` needs its own
name (loading checks this).
"""

import dataclasses
from typing import Optional, Union

import numpy as np
import tensorflow_datasets as tfds

from tfrs_smoe.data import records
from tfrs_smoe.data import schema
from tfrs_smoe.data import synthetic as synthetic_logs

_OPTIONAL_FIELDS = ("watch_seconds", "runtime_seconds")


@dataclasses.dataclass(eq=False)
class StreamingLogsConfig(tfds.core.BuilderConfig):
  """A `StreamingLogs` variant: the generator parameters of its log.

  Attributes:
    synthetic: parameters of `synthetic.generate_watch_log`, seed included.
  """

  synthetic: synthetic_logs.SyntheticConfig = synthetic_logs.SyntheticConfig()


class StreamingLogs(tfds.core.GeneratorBasedBuilder):
  """Synthetic streaming watch logs with engagement = watch_seconds / runtime_seconds.

  Example:
    >>> builder = StreamingLogs(config="tiny", data_dir="tfds")  # Or "small", "medium", ...
    >>> builder.builder_config.synthetic.num_users
    300
    >>> mini = StreamingLogs(config=StreamingLogsConfig(
    ...     name="mini", synthetic=synthetic_logs.SyntheticConfig(num_users=20, num_titles=30)),
    ...     data_dir="tfds")
    >>> mini.download_and_prepare(download_config=tfds.download.DownloadConfig(
    ...     try_download_gcs=False))
    Downloading and preparing dataset ... to tfds/streaming_logs/mini/1.0.0...
    Dataset streaming_logs downloaded and prepared to tfds/streaming_logs/mini/1.0.0. ...
    >>> dataset = mini.as_dataset(split="train")
    >>> sorted(next(iter(dataset)))  # One record per watch event.
    ['engagement', 'item_genres', 'item_id', 'item_runtime_seconds', 'item_title', 'item_year',
     'runtime_seconds', 'timestamp', 'user_id', 'watch_seconds']
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [
      StreamingLogsConfig(
          name="tiny",
          description="300 users, 400 titles: seconds to prepare, for smoke tests and demos.",
          synthetic=synthetic_logs.SyntheticConfig(num_users=300, num_titles=400)),
      StreamingLogsConfig(
          name="small",
          description="1.5k users, 2k titles, ~90k interactions.",
          synthetic=synthetic_logs.SyntheticConfig()),
      StreamingLogsConfig(
          name="medium",
          description="100k users, 10k titles, ~6M interactions.",
          synthetic=synthetic_logs.SyntheticConfig(num_users=100_000, num_titles=10_000)),
      StreamingLogsConfig(
          name="large",
          description="1M users, 20k titles, ~60M interactions.",
          synthetic=synthetic_logs.SyntheticConfig(num_users=1_000_000, num_titles=20_000)),
  ]
  DEFAULT_CONFIG_NAME = "small"

  def _info(self) -> tfds.core.DatasetInfo:
    synthetic = self.builder_config.synthetic
    return tfds.core.DatasetInfo(
        builder=self,
        description=(
            "Synthetic streaming-service watch logs from tfrs_smoe.data.synthetic: long-term "
            "genre tastes, drifting mid-term interests, binges of consecutive episodes, "
            "power-law popularity, trending titles and clickbait. One record per (user, item) "
            "watch; engagement = watch_seconds / runtime_seconds, abandonment = engagement <= "
            "the abandonment_threshold in the metadata."),
        features=records.interaction_features(optional_fields=_OPTIONAL_FIELDS),
        # The generator parameters are stored so that loading can tell when data prepared
        # under this config name came from different parameters.
        metadata=tfds.core.MetadataDict(
            abandonment_threshold=synthetic.abandonment_threshold,
            synthetic_config=dataclasses.asdict(synthetic)),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # Generated locally; nothing to download.
    return {"train": self._generate_examples()}

  def _generate_examples(self):
    log, _ = synthetic_logs.generate_watch_log(self.builder_config.synthetic)
    interactions, items = log.interactions, log.items
    # The generator's catalogue is sorted by item id.
    item_row = np.searchsorted(items.item_id, interactions.item_id)
    columns = {
        "user_id": interactions.user_id,
        "item_id": interactions.item_id,
        "timestamp": interactions.timestamp,
        "engagement": interactions.engagement,
        "watch_seconds": interactions.watch_seconds,
        "runtime_seconds": interactions.runtime_seconds,
        "item_title": items.title[item_row],
        "item_genres": items.genres[item_row],
        "item_year": items.year[item_row],
        "item_runtime_seconds": items.runtime_seconds[item_row],
    }
    for row in range(len(interactions)):
      yield row, {name: column[row] for name, column in columns.items()}


def load_streaming_logs(config: Union[None, str, StreamingLogsConfig] = None,
                        data_dir: Optional[str] = None) -> schema.WatchLog:
  """Prepares the data set (once, offline) and returns it as a `WatchLog`.

  Args:
    config: a config name ("tiny", "small", "medium", "large"), a `StreamingLogsConfig`, or
      None for "small".
    data_dir: TFDS data directory; None for the TFDS default (~/tensorflow_datasets or
      $TFDS_DATA_DIR).

  Returns:
    The validated "streaming_logs" WatchLog, rows sorted by (timestamp, user_id, item_id): the
    same rows as `synthetic.generate_watch_log(config.synthetic)`.

  Raises:
    schema.DataError: when data prepared under this config name came from other parameters.

  Example:
    >>> from tfrs_smoe.data import synthetic
    >>> demo = StreamingLogsConfig(
    ...     name="demo", synthetic=synthetic.SyntheticConfig(num_users=20, num_titles=30))
    >>> log = load_streaming_logs(demo, data_dir="tfds")  # Prepares it the first time.
    Downloading and preparing dataset ... to tfds/streaming_logs/demo/1.0.0...
    Dataset streaming_logs downloaded and prepared to tfds/streaming_logs/demo/1.0.0. ...
    >>> log.name, len(np.unique(log.interactions.user_id))
    ('streaming_logs', 20)
  """
  builder = StreamingLogs(config=config, data_dir=data_dir)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  metadata = builder.info.metadata
  expected = dataclasses.asdict(builder.builder_config.synthetic)
  if metadata["synthetic_config"] != expected:
    raise schema.DataError(
        f"streaming_logs: the data prepared in {builder.data_dir} for config "
        f"{builder.builder_config.name!r} came from other SyntheticConfig parameters "
        f"({metadata['synthetic_config']}); give this config another name or data_dir.")
  columns = records.read_columns(builder, "train")
  return records.watch_log_from_columns("streaming_logs", columns,
                                        metadata["abandonment_threshold"])
