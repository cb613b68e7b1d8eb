"""Out-of-core preparation of a watch log on Apache Beam (`tfrs-smoe-prepare`).

The pipeline (`pipeline.PreparationPipeline`) reads a log (the synthetic generator, MovieLens
files or a watch_log folder), validates it with the in-memory readers' own functions, builds the
vocabularies, groups the events per user, splits them (leave-one-out or the global time split,
the rules of `tfrs_smoe.data.splits`) and writes per-user TFRecord shards, the vocab files, the
PHNS popularity pools and `statistics.json`. Elements are record batches (numpy arrays), never
one Python object per event. `shards.PreparedShards` reads the output back.

Modules, in pipeline order:
  config.py            PreparationConfig: what to prepare, where, and how.
  event_batch.py       EventBatch: the columns of a batch of events, the unit every step moves.
  sources.py           the raw-source readers' batches (synthetic chunks, MovieLens, watch_log).
  user_blocks.py       per-shard steps: index, drop duplicates, sort per user, split.
  time_cuts.py         the exact time quantiles of the global time split, out of core.
  popularity.py        the training counts and the trending / tailing pools.
  sequence_records.py  the tf.train.Example layout of the shards.
  pipeline.py          the Beam graph and its run.
  shards.py            the prepared data read back (vocabularies, splits, pools, statistics).
"""
