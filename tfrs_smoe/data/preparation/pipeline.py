"""The preparation as one Apache Beam pipeline (see the package docstring for the outputs).

  work items --Read--> raw EventBatches (+ reports: rows read, bad rows per file, capped)
    --distinct ids, combined--> the user vocabulary and every item id   (side input)
    --IndexAndShard--> (shard, batch): users as indices, items as codes; --GroupByKey-->
    --Clean--> (shard, block): duplicates dropped, sorted per user and time
    --item counts, combined--> the item vocabulary (min_item_count, max_items)  (side input)
    --ApplyVocabulary--> item indices, positives; time split: --two counting passes--> cuts
    --SplitAndWrite--> train / validation / test shard files (+ each shard's training events)
    --training counts, two passes--> popularity pools
    --Finish--> vocabularies/, popularity.npz, statistics.json (last)

Every element is a batch or a whole shard's block of numpy arrays; the only per-user Python
work is encoding each record. `PreparationPipeline.run` runs it on the runner of the pipeline
options (the DirectRunner by default; Dataflow, Flink, Spark through their options).
"""

import re
from typing import Optional

import apache_beam as beam
from apache_beam.options import pipeline_options as options_lib
import numpy as np
import tensorflow as tf

from tfrs_smoe.data import schema
from tfrs_smoe.data.preparation import combiners
from tfrs_smoe.data.preparation import config as config_lib
from tfrs_smoe.data.preparation import finish
from tfrs_smoe.data.preparation import popularity
from tfrs_smoe.data.preparation import shard_files
from tfrs_smoe.data.preparation import sources
from tfrs_smoe.data.preparation import time_cuts
from tfrs_smoe.data.preparation import user_blocks

REPORT = "report"
TRAIN = "train"
_RUNNING = re.compile(r" \[while running '[^']*'\]")


class _Read(beam.DoFn):
  """A work item -> its EventBatches (main output) and its report (REPORT)."""

  def __init__(self, source):
    super().__init__()
    self._source = source

  def process(self, work_item):
    for output in self._source.read(work_item):
      yield beam.pvalue.TaggedOutput(REPORT, output) if isinstance(output, dict) else output


def _clean(element):
  shard, batches = element
  block, duplicates = user_blocks.clean(batches)
  yield shard, block
  yield beam.pvalue.TaggedOutput(REPORT, {"duplicate_rows": duplicates})


def _apply_vocabulary(element, item_index, implicit, threshold):
  shard, block = element
  block, dropped = user_blocks.apply_vocabulary(block, item_index, implicit, threshold)
  yield shard, block
  yield beam.pvalue.TaggedOutput(REPORT, {"events_of_left_out_items": dropped,
                                          "events": len(block),
                                          "positives": int(block.columns["positive"].sum())})


class _SplitAndWrite(beam.DoFn):
  """(shard, block) -> the shard's files; reports their counts and yields its training events."""

  def __init__(self, config: config_lib.PreparationConfig):
    super().__init__()
    self._config = config

  def process(self, element, ids, cuts):
    shard, block = element
    data = self._config.data
    cut = user_blocks.split_block(block, data.split, data.min_positives, cuts)
    counts = shard_files.write_shard(self._config.output_dir, shard, self._config.num_shards,
                                     block, cut, ids[0])
    yield beam.pvalue.TaggedOutput(REPORT, {"splits": counts, "shards_written": 1})
    offset = np.arange(len(block)) - np.repeat(cut.start, cut.length)
    train = block.take(offset < np.repeat(cut.train_length, cut.length)).columns
    yield beam.pvalue.TaggedOutput(TRAIN, (train["item"], train["timestamp"], train["positive"]))


def _combine(values, name, merge, empty):
  return values | name >> beam.CombineGlobally(combiners.MergeFn(merge, empty))


class PreparationPipeline:
  """Prepares one log into sharded per-user records, vocabularies, pools and statistics.

  Args:
    config: what to prepare and where (`PreparationConfig`).

  Raises:
    ValueError: data.data_dir is missing, or the abandonment threshold is out of range.
    schema.DataError: the source's files are missing (before anything runs).

  Example (a tiny synthetic log on the local runner):
    >>> from tfrs_smoe import config
    >>> from tfrs_smoe.data import synthetic
    >>> from tfrs_smoe.data.preparation import shards
    >>> prepared = PreparationPipeline(config_lib.PreparationConfig(
    ...     config.DataConfig(), "prepared", num_shards=2,
    ...     synthetic=synthetic.SyntheticConfig(num_users=20, num_titles=30))).run()
    >>> prepared["num_users"], prepared["splits"]["test"]["users"]
    (20, 20)
    >>> len(shards.PreparedShards("prepared").train())  # Training events.
    522
  """

  def __init__(self, config: config_lib.PreparationConfig):
    self.config = config
    self.source = sources.make_source(config)
    threshold = config.data.abandonment_threshold
    self.threshold = self.source.abandonment_threshold if threshold is None else threshold
    if not 0.0 <= self.threshold < 1.0:
      raise ValueError(f"abandonment_threshold must be in [0, 1), got {self.threshold}.")

  def build(self, root: beam.Pipeline) -> None:
    """Adds the preparation's transforms to `root`."""
    config, data = self.config, self.config.data
    read = (root | "WorkItems" >> beam.Create(self.source.work_items())
            | "Spread" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(_Read(self.source)).with_outputs(REPORT, main="events"))
    ids = _combine(read.events | "Ids" >> beam.Map(lambda b: (b.ids["user"], b.ids["item"])),
                   "DistinctIds", combiners.distinct_ids, combiners.no_ids)
    ids_side = beam.pvalue.AsSingleton(ids)
    cleaned = (read.events
               | "IndexAndShard" >> beam.FlatMap(
                   lambda b, i: user_blocks.index_and_shard(b, i[0], i[1], config.num_shards),
                   ids_side)
               | "GroupByShard" >> beam.GroupByKey()
               | "Clean" >> beam.FlatMap(_clean).with_outputs(REPORT, main="blocks"))
    item_counts = _combine(
        cleaned.blocks | "ItemCounts" >> beam.Map(
            lambda kv, i: np.bincount(kv[1].columns["item"], minlength=len(i[1])), ids_side),
        "SumItemCounts", combiners.sum_arrays, lambda: np.zeros([0], np.int64))
    item_index = item_counts | "SelectItems" >> beam.Map(
        lambda counts, i: user_blocks.select_items(
            counts if len(counts) else np.zeros(len(i[1]), np.int64), config.min_item_count,
            config.max_items), ids_side)
    indexed = cleaned.blocks | "ApplyVocabulary" >> beam.FlatMap(
        _apply_vocabulary, beam.pvalue.AsSingleton(item_index), data.implicit,
        self.threshold).with_outputs(REPORT, main="blocks")
    cuts = self._cuts(root, indexed.blocks)
    written = indexed.blocks | "SplitAndWrite" >> beam.ParDo(
        _SplitAndWrite(config), ids_side, beam.pvalue.AsSingleton(cuts)).with_outputs(
            REPORT, TRAIN, main="unused")
    num_items = beam.pvalue.AsSingleton(item_index | "NumItems" >> beam.Map(
        lambda index: int(index.max(initial=1)) + 1))
    counts = _combine(written[TRAIN] | "TrainingCounts" >> beam.Map(
        lambda t, n: popularity.TrainingCounts.of(*t, num_items=n), num_items),
                      "MergeTrainingCounts", popularity.TrainingCounts.merge, lambda: None)
    window_start = beam.pvalue.AsSingleton(counts | "WindowStart" >> beam.Map(
        lambda c: c.window_start(config.trending_window_fraction) if c and c.first is not None
        else 0.0))
    recent = _combine(written[TRAIN] | "RecentCounts" >> beam.Map(
        lambda t, start, n: popularity.recent_counts(t[0], t[1], start, n), window_start,
        num_items), "SumRecentCounts", combiners.sum_arrays, lambda: None)
    reports = _combine((read[REPORT], cleaned[REPORT], indexed[REPORT], written[REPORT])
                       | "Reports" >> beam.Flatten(), "MergeReports", combiners.merge_reports,
                       dict)
    side = beam.pvalue.AsSingleton
    _ = (root | "FinishOnce" >> beam.Create([None]) | "Finish" >> beam.Map(
        lambda _, *values: finish.finish(self, *values), side(ids), side(item_index),
        side(counts), side(recent), side(reports), side(cuts)))

  def _cuts(self, root: beam.Pipeline, blocks):
    """The time split's (validation cut, test cut) as a one-element PCollection (else None)."""
    data = self.config.data
    if data.split != "time":
      return root | "NoCuts" >> beam.Create([None])
    buckets = _combine(blocks | "Buckets" >> beam.Map(lambda kv: time_cuts.value_counts(
        kv[1].columns["timestamp"] >> time_cuts.BUCKET_BITS)), "MergeBuckets",
                       time_cuts.merge_counts, lambda: time_cuts.merge_counts([]))
    located = buckets | "Locate" >> beam.Map(lambda b: time_cuts.locate(b, time_cuts.quantile_ranks(
        int(b[1].sum()), data.validation_fraction, data.test_fraction)) if len(b[0]) else None)
    located_side = beam.pvalue.AsSingleton(located)

    def values_in(kv, where):
      timestamp = kv[1].columns["timestamp"]
      wanted = np.isin(timestamp >> time_cuts.BUCKET_BITS, where[0]) if where else []
      return time_cuts.value_counts(timestamp[wanted])

    values = _combine(blocks | "ValuesInBuckets" >> beam.Map(values_in, located_side),
                      "MergeValues", time_cuts.merge_counts, lambda: time_cuts.merge_counts([]))
    return values | "Cuts" >> beam.Map(
        lambda v, where: time_cuts.check_cuts(time_cuts.cut_values(v, *where)) if where else None,
        located_side)

  def run(self, options: Optional[options_lib.PipelineOptions] = None,
          overwrite: bool = False) -> dict:
    """Runs the pipeline to the end and returns the statistics it wrote.

    Args:
      options: Beam pipeline options (runner and its settings); None runs locally.
      overwrite: replace what output_dir holds; otherwise a non-empty output_dir is an error.

    Raises:
      FileExistsError: output_dir holds files and not `overwrite`.
      schema.DataError: bad input, as the in-memory readers report it.
      ValueError: e.g. a time split whose periods are empty.
    """
    output_dir = self.config.output_dir
    if tf.io.gfile.exists(output_dir) and tf.io.gfile.listdir(output_dir):
      if not overwrite:
        raise FileExistsError(f"output_dir {output_dir} is not empty; choose another, or "
                              "overwrite it (--overwrite).")
      tf.io.gfile.rmtree(output_dir)
    tf.io.gfile.makedirs(output_dir)
    try:
      with beam.Pipeline(options=options) as root:
        self.build(root)
    except (schema.DataError, ValueError) as error:
      # The runner appends the step's name; the reader's message is the useful part.
      raise type(error)(_RUNNING.sub("", str(error))) from None
    return finish.read_statistics(output_dir)
