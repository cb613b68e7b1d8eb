"""The pipeline's last step: vocab files, popularity.npz and statistics.json (written last).

statistics.json holds:

  dataset, name, source          the data set, the log's name, where it came from (data_dir,
                                 source_files with their SHA-256, or the generator's config)
  protocol                       split, implicit, abandonment_threshold, min_positives,
                                 validation_fraction / test_fraction and time_cuts (time split)
  vocabulary                     min_item_count, max_items, items_left_out,
                                 events_of_left_out_items
  num_users, num_items           the vocabularies' sizes without the 2 reserved indices
  rows_read                      valid rows read, before duplicates are dropped
  bad_rows, bad_rows_total,      rows skipped per file (skip_bad_lines), a few examples
  bad_row_examples
  duplicate_rows                 duplicate (user, item, timestamp) rows dropped
  capped_completions             watch_log: completions above 1 capped at 1
  items_without_metadata,        watch_log with an items / users file: log items it does not
  users_without_features         list, log users it does not list
  events, positives              the events kept, and how many are positives
  splits                         train / validation / test -> users (records), events (training
                                 events or evaluation contexts), positives
  pools                          trending / tailing pool sizes, the trending window's start
  features                       the extra item and user features of the catalogue files
  num_shards, files              split -> its shard files
"""

import io
import json
import os
from typing import Any, Dict, Optional

from absl import logging
import numpy as np
import tensorflow as tf

from tfrs_smoe.data import schema
from tfrs_smoe.data import vocabulary
from tfrs_smoe.data.preparation import catalog_files
from tfrs_smoe.data.preparation import popularity
from tfrs_smoe.data.preparation import shard_files

STATISTICS = "statistics.json"
POPULARITY = "popularity.npz"


def read_statistics(output_dir: str) -> Dict[str, Any]:
  """The statistics.json of a prepared output."""
  with tf.io.gfile.GFile(os.path.join(output_dir, STATISTICS)) as f:
    return json.load(f)


def _write_pools(output_dir: str, counts: Optional[popularity.TrainingCounts],
                 recent: Optional[np.ndarray], config) -> Optional[Dict[str, Any]]:
  """Writes popularity.npz; returns the pools' summary (None when nothing trained)."""
  if counts is None or counts.first is None:
    return None
  pools = popularity.pools(counts.counts, recent, config.trending_pool_size,
                           config.tail_fraction)
  window_start = counts.window_start(config.trending_window_fraction)
  buffer = io.BytesIO()
  np.savez(buffer, counts=counts.counts, positive_counts=counts.positive_counts,
           recent_counts=recent, trending=pools.trending, tailing=pools.tailing,
           window_start=np.float64(window_start), first=np.int64(counts.first),
           last=np.int64(counts.last))
  with tf.io.gfile.GFile(os.path.join(output_dir, POPULARITY), "wb") as f:
    f.write(buffer.getvalue())
  return {"trending": len(pools.trending), "tailing": len(pools.tailing),
          "window_start": float(window_start), "trending_pool_size": config.trending_pool_size,
          "trending_window_fraction": config.trending_window_fraction,
          "tail_fraction": config.tail_fraction}


def finish(prepared, ids, item_index, counts, recent, report, cuts) -> Dict[str, Any]:
  """Checks the whole, writes the small outputs and statistics.json; returns the statistics.

  Args:
    prepared: the `PreparationPipeline`.
    ids: (every user id, every item id), sorted.
    item_index: [every item] the item vocabulary index of each item code, -1 if left out.
    counts: the training `TrainingCounts` (None without training events).
    recent: [num_items] training interactions in the trending window.
    report: the merged reports of every step.
    cuts: the time split's cuts, or None.

  Raises:
    schema.DataError: no event was read, or (watch_log) an items / users file is bad.

  Writes items.parquet and users.parquet (`catalog_files`) before statistics.json.
  """
  config, source = prepared.config, prepared.source
  output_dir = config.output_dir
  user_ids, all_item_ids = ids
  if not len(user_ids):
    where = getattr(source, "directory", source.name)
    raise schema.DataError(f"{where}: the interactions hold no rows (skipped per file: "
                           f"{report.get('bad_rows', {})}).")
  items, users, tables = source.tables(all_item_ids, user_ids)
  if tables:
    report = {**report, **{k: v for k, v in tables.items() if k.endswith(("metadata",
                                                                          "features"))},
              "bad_rows": {**report.get("bad_rows", {}), **tables["bad_rows"]},
              "bad_row_examples": (report.get("bad_row_examples", []) +
                                   tables["bad_row_examples"])[:3]}
  item_ids = all_item_ids[item_index >= 0]
  catalog_files.write(output_dir, catalog_files.subset_catalog(items, item_ids), users)
  directory = os.path.join(output_dir, "vocabularies")
  tf.io.gfile.makedirs(directory)
  for name, values in (("item_ids", item_ids), ("user_ids", user_ids)):
    vocabulary.IdVocabulary(values)  # Checks them: not empty, no line breaks.
    shard_files.write_ids(os.path.join(directory, f"{name}.txt"), values)
  for split in shard_files.SPLITS:
    for shard in range(config.num_shards):
      shard_files.write_empty_shard(output_dir, split, shard, config.num_shards)
  bad_rows = report.get("bad_rows", {})
  if sum(bad_rows.values()):
    logging.warning("%s: skipped %d bad row(s) %s, e.g. %s", source.name,
                    sum(bad_rows.values()), bad_rows,
                    " | ".join(report.get("bad_row_examples", [])) or "-")
  if report.get("duplicate_rows"):
    logging.warning("%s: dropped %d duplicate (user, item, timestamp) row(s), keeping the first "
                    "of each.", source.name, report["duplicate_rows"])
  data = config.data
  protocol = {"split": data.split, "implicit": data.implicit,
              "abandonment_threshold": prepared.threshold, "min_positives": data.min_positives}
  if data.split == "time":
    protocol.update(validation_fraction=data.validation_fraction,
                    test_fraction=data.test_fraction, time_cuts=list(cuts))
  statistics = {
      "dataset": data.dataset, "name": source.name, "source": source.metadata(),
      "protocol": protocol,
      "vocabulary": {"min_item_count": config.min_item_count, "max_items": config.max_items,
                     "items_left_out": int(len(all_item_ids) - len(item_ids)),
                     "events_of_left_out_items": report.get("events_of_left_out_items", 0)},
      "num_users": len(user_ids), "num_items": len(item_ids),
      "rows_read": report.get("rows_read", 0), "bad_rows": bad_rows,
      "bad_rows_total": sum(bad_rows.values()),
      "bad_row_examples": report.get("bad_row_examples", []),
      "duplicate_rows": report.get("duplicate_rows", 0),
      "capped_completions": report.get("capped_completions", 0),
      **{key: report[key] for key in ("items_without_metadata", "users_without_features")
         if key in report},
      "events": report.get("events", 0), "positives": report.get("positives", 0),
      "splits": {split: report.get("splits", {}).get(split, {"users": 0, "events": 0,
                                                             "positives": 0})
                 for split in shard_files.SPLITS},
      "pools": _write_pools(output_dir, counts, recent, config),
      "features": {"item_features": list(data.item_features),
                   "user_features": list(data.user_features)},
      "num_shards": config.num_shards,
      "files": {split: [os.path.basename(shard_files.shard_path(output_dir, split, s,
                                                                config.num_shards))
                        for s in range(config.num_shards)] for split in shard_files.SPLITS},
  }
  with tf.io.gfile.GFile(os.path.join(output_dir, STATISTICS), "w") as f:
    json.dump(statistics, f, indent=2, default=lambda value: value.item())
  return statistics
