"""Synthetic streaming-service watch logs with planted, known structure.

`generate_watch_log(config)` returns a `schema.WatchLog` named "streaming_logs" and the
`GroundTruth` it was drawn from, so that tests and experiments can check that a model recovers
what was planted. The same config (seed included) always gives the same log.

Generative process:

1. Catalogue. `num_titles` titles: films, and series whose episodes are separate items sharing
   the series' genres. Every title has a primary genre and, sometimes, a secondary one; a
   runtime (films about 80-180 min, episodes about 22-55 min) and a release year.
2. Popularity. Title click-popularity follows a power law, rank^-popularity_exponent, over a
   random ranking. A `clickbait_share` of the films are clickbait: their popularity is multiplied
   by `clickbait_pull` (they attract clicks), but they are abandoned with probability
   `clickbait_abandon_prob` whatever the viewer's taste. `num_trending` titles are trending: in a
   window of `trending_window_days` within the last `trending_recent_days` of the log, a
   `trending_prob` share of the free choices goes to the titles trending at that moment.
3. Long-term taste. Users belong to one of `num_segments` segments; each segment has a genre
   profile drawn from Dirichlet(taste_concentration), and each user's long-term genre preference
   is drawn from a Dirichlet centred on the profile (`segment_cohesion` sets how tightly).
4. Mid-term interest. Each user has a current favourite genre; before every free choice it moves,
   with the user's drift rate (mean `drift_rate`), to a genre drawn half from the long-term taste
   and half uniformly. The genre interest used for choosing and for engagement is
   (1 - midterm_weight) * long-term taste + midterm_weight * one-hot(current genre).
5. Choice. A free choice (one outside a binge) is a trending title (probability `trending_prob`,
   when one is trending and unwatched), a title drawn by global popularity (`explore_prob`), or
   else a title of a genre drawn from the interest, by popularity within that genre. Choosing a
   series plays the user's next unwatched episode of it.
6. Binges. After a freely chosen episode that is neither abandoned nor the last, with probability
   `binge_prob` the user binges: the following events are the next episodes of the same series,
   minutes apart, for a geometric number of episodes (mean `mean_binge_length` in all, the first
   included) or until the series ends or an episode is abandoned.
7. Engagement. fit = num_genres * <item genre weights, interest>, 1 for an average title, larger
   for titles that match the taste. The title is abandoned with probability
   sigmoid(logit(abandon_prob_at_average_fit) - abandon_taste_slope * log(fit)) (clickbait:
   `clickbait_abandon_prob`). Abandoned titles are watched for at most 80% of
   `abandonment_threshold` of their runtime; other titles for at least twice the threshold, more
   when the fit is high, often to the end. engagement = watch_seconds / runtime_seconds, in [0, 1].
   Abandoning an episode also drops the series.
8. Time. Users start in the first quarter of `time_span_days` and spread their events over the
   rest of it (exponential gaps, at least a minute after the previous title ends); binge episodes
   follow each other within minutes. Timestamps are int64 seconds, strictly increasing per user.

Each user watches each item at most once. Users are simulated in chunks, one vectorised step per
event across the users of a chunk, so a million users only costs memory for the log itself.

This module is the public API. The machinery lives in two internal modules:
`synthetic_catalog` (`SyntheticConfig`, re-exported here, and steps 1-2: the catalogue and its
popularity sampler) and `synthetic_simulation` (`EVENT_SOURCES`, re-exported here, the user
drawing of step 3 and the per-chunk event simulation of steps 4-8).
"""

import dataclasses
from typing import Dict, List, Tuple

import numpy as np

from tfrs_smoe.data import schema
from tfrs_smoe.data import synthetic_catalog
from tfrs_smoe.data import synthetic_simulation

# Defined with the machinery, which needs them without importing this module.
SyntheticConfig = synthetic_catalog.SyntheticConfig
# `generate_watch_log`'s default (a frozen dataclass, so one instance serves every call).
_DEFAULT_CONFIG = SyntheticConfig()
# Index of `GroundTruth.event_source` into these names.
EVENT_SOURCES = synthetic_simulation.EVENT_SOURCES

# Cap on the bool watched-matrix of one chunk of users, [users, titles].
_CHUNK_BYTES = 2**27


@dataclasses.dataclass
class GroundTruth:
  """The structure a synthetic log was drawn from.

  Item arrays cover every generated item, watched or not (the log's catalogue only has the
  watched ones). Event arrays are aligned with the rows of the returned `WatchLog.interactions`.

  Attributes:
    genre_names: [num_genres] str; genre index -> name.
    segment_profiles: [num_segments, num_genres] float32, genre profile of each segment.
    user_id: [num_users] str; user index -> raw user id.
    user_segment: [num_users] int32, segment (taste type) of each user.
    user_taste: [num_users, num_genres] float32, long-term genre preference (rows sum to 1).
    user_drift_rate: [num_users] float32, per-free-choice probability of a mid-term genre change.
    item_id: [num_items] str; item index -> raw item id (films first, then episodes).
    item_title: [num_items] int32, title of each item (films are their own title).
    item_series: [num_items] int32, series index of an episode, -1 for films.
    item_episode: [num_items] int32, 1-based episode number, 0 for films.
    item_genre_weights: [num_items, num_genres] float32, genre weights used in the fit (sum 1).
    item_popularity: [num_items] float32, click popularity of the item's title (sums to 1 over
      titles, clickbait pull included, trending boosts excluded).
    item_is_clickbait: [num_items] bool.
    item_trending_start: [num_items] int64, start of the title's trending window, -1 if none.
    item_trending_end: [num_items] int64, end (exclusive) of the trending window, -1 if none.
    event_source: [n] int8, index into `EVENT_SOURCES` of how the item was chosen.
    event_midterm_genre: [n] int32, the user's mid-term genre at the event.
    event_fit: [n] float32, fit of the item to the user's interest at the event (1 = average).
  """

  genre_names: np.ndarray
  segment_profiles: np.ndarray
  user_id: np.ndarray
  user_segment: np.ndarray
  user_taste: np.ndarray
  user_drift_rate: np.ndarray
  item_id: np.ndarray
  item_title: np.ndarray
  item_series: np.ndarray
  item_episode: np.ndarray
  item_genre_weights: np.ndarray
  item_popularity: np.ndarray
  item_is_clickbait: np.ndarray
  item_trending_start: np.ndarray
  item_trending_end: np.ndarray
  event_source: np.ndarray
  event_midterm_genre: np.ndarray
  event_fit: np.ndarray


@dataclasses.dataclass(frozen=True)
class GenerationPlan:
  """The seeds of a generation and its chunks of users, as `generate_watch_log` draws them.

  Attributes:
    catalog_seed: seeds the catalogue (`synthetic_catalog.draw_catalog`).
    users_seed: seeds the users' parameters (`synthetic_simulation.draw_users`).
    chunks: (first user, end user (exclusive), seed) of every chunk of users simulated on its
      own (`synthetic_simulation.simulate_chunk`), in user order; a chunk holds at most
      _CHUNK_BYTES / num_titles users (at least 256), so its watched-matrix stays bounded.

  Example:
    >>> plan = generation_plan(SyntheticConfig(num_users=1000, num_titles=2**20))
    >>> [(begin, end) for begin, end, _ in plan.chunks]  # 256 users per chunk.
    [(0, 256), (256, 512), (512, 768), (768, 1000)]
  """

  catalog_seed: np.random.SeedSequence
  users_seed: np.random.SeedSequence
  chunks: List[Tuple[int, int, np.random.SeedSequence]]


def generation_plan(config: SyntheticConfig) -> GenerationPlan:
  """The seeds and the chunk plan of `generate_watch_log(config)` (see `GenerationPlan`)."""
  catalog_seed, users_seed, events_seed = np.random.SeedSequence(config.seed).spawn(3)
  users_per_chunk = min(max(_CHUNK_BYTES // config.num_titles, 256), config.num_users)
  chunk_seeds = events_seed.spawn(-(-config.num_users // users_per_chunk))
  chunks = [(begin, min(begin + users_per_chunk, config.num_users), seed)
            for begin, seed in zip(range(0, config.num_users, users_per_chunk), chunk_seeds)]
  return GenerationPlan(catalog_seed, users_seed, chunks)


def generate_watch_log(config: SyntheticConfig = _DEFAULT_CONFIG
                      ) -> Tuple[schema.WatchLog, GroundTruth]:
  """Draws a synthetic streaming watch log and the structure behind it.

  Args:
    config: generator parameters; the default makes ~90k events in a few seconds.

  Returns:
    The validated `WatchLog` ("streaming_logs", rows sorted by timestamp, user id, item id, with
    watch_seconds and runtime_seconds; catalogue = watched items) and its `GroundTruth`.

  Example:
    >>> log, truth = generate_watch_log(SyntheticConfig(num_users=200, num_titles=300))
    >>> abandoned = log.interactions.engagement <= log.abandonment_threshold
  """
  plan = generation_plan(config)
  catalog = synthetic_catalog.draw_catalog(config, np.random.default_rng(plan.catalog_seed))
  users = synthetic_simulation.draw_users(config, np.random.default_rng(plan.users_seed))
  chunks = [synthetic_simulation.simulate_chunk(config, catalog, users, begin, end,
                                                np.random.default_rng(seed))
            for begin, end, seed in plan.chunks]
  # Column by column, releasing each part once copied: at a million users the event columns are
  # gigabytes.
  events = {name: np.concatenate([chunk.pop(name) for chunk in chunks]) for name in list(chunks[0])}
  # Zero-padded ids sort like their indices, so this is the (timestamp, user_id, item_id) order
  # that `records.watch_log_from_columns` gives when loading the TFDS copy.
  order = np.lexsort((events["item"], events["user"], events["timestamp"]))
  for name in events:
    events[name] = events[name][order]

  user_ids = synthetic_catalog.padded_ids("u", config.num_users)
  item = events["item"]
  interactions = schema.Interactions(
      user_id=user_ids[events["user"]],
      item_id=catalog.item_id[item],
      timestamp=events["timestamp"],
      engagement=events["completion"],
      watch_seconds=events["watch_seconds"],
      runtime_seconds=catalog.item_runtime[item])
  watched = np.unique(item)
  items = schema.ItemCatalog(
      item_id=catalog.item_id[watched], title=catalog.item_name[watched],
      genres=catalog.item_genres[watched], year=catalog.item_year[watched],
      runtime_seconds=catalog.item_runtime[watched])
  log = schema.WatchLog(name="streaming_logs", interactions=interactions, items=items, users=None,
                        abandonment_threshold=config.abandonment_threshold)
  log.validate()
  return log, _ground_truth(config, catalog, users, user_ids, events)


def _ground_truth(config: SyntheticConfig, catalog: synthetic_catalog.Catalog,
                  users: synthetic_simulation.Users, user_ids: np.ndarray,
                  events: Dict[str, np.ndarray]) -> GroundTruth:
  num_films = catalog.num_films
  item_title = catalog.item_title
  title_trending_start = np.full(catalog.num_titles, -1, np.int64)
  title_trending_end = np.full(catalog.num_titles, -1, np.int64)
  title_trending_start[catalog.trending_titles] = catalog.trending_start
  title_trending_end[catalog.trending_titles] = catalog.trending_end
  return GroundTruth(
      genre_names=np.array(synthetic_catalog.genre_names(config.num_genres)),
      segment_profiles=users.segment_profiles.astype(np.float32),
      user_id=user_ids,
      user_segment=users.segment.astype(np.int32),
      user_taste=users.taste.astype(np.float32),
      user_drift_rate=users.drift_rate.astype(np.float32),
      item_id=catalog.item_id,
      item_title=item_title.astype(np.int32),
      item_series=np.where(item_title >= num_films, item_title - num_films, -1).astype(np.int32),
      item_episode=catalog.item_episode.astype(np.int32),
      item_genre_weights=catalog.title_genre_weights[item_title].astype(np.float32),
      item_popularity=catalog.title_popularity[item_title].astype(np.float32),
      item_is_clickbait=catalog.title_is_clickbait[item_title],
      item_trending_start=title_trending_start[item_title],
      item_trending_end=title_trending_end[item_title],
      event_source=events["source"],
      event_midterm_genre=events["midterm_genre"],
      event_fit=events["fit"])
