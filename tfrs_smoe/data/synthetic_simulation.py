"""User drawing and event simulation of the synthetic watch-log generator.

`tfrs_smoe.data.synthetic` is the public API and documents the generative process; this module
holds its user and event stages. `draw_users` draws each user's segment, long-term taste, drift
rate, activity, start time and first mid-term genre. `simulate_chunk` then plays a chunk of users
forward, one vectorised step per event: mid-term drift, free choices (trending, popular or by
taste, the first unwatched of a few candidates), binges, engagement and timestamps.
"""

import dataclasses
from typing import Dict, Tuple

import numpy as np

from tfrs_smoe.data import synthetic_catalog

# Index of `synthetic.GroundTruth.event_source` into these names.
EVENT_SOURCES = ("taste", "popular", "trending", "binge")
_TASTE, _POPULAR, _TRENDING, _BINGE = range(len(EVENT_SOURCES))
_NO_CHOICE = -1

# Candidates drawn per choice; the first the user has not watched yet is taken.
_CANDIDATES_PER_CHOICE = 8
# Share of a new mid-term genre drawn uniformly rather than from the long-term taste, so drift
# can reach genres the user does not usually watch.
_MIDTERM_EXPLORATION = 0.5
# Users cover the whole span only if they start early enough.
_START_SPREAD = 0.25
_MIN_FREE_GAP_SECONDS = 60
_BINGE_GAP_SECONDS = (30, 600)
_FINISHED_SHARE = 0.3  # Non-abandoned titles watched to the very end.


@dataclasses.dataclass
class Users:
  """Per-user parameters drawn before the simulation."""

  segment_profiles: np.ndarray  # [K, G]
  segment: np.ndarray  # [U]
  taste: np.ndarray  # [U, G] float64
  drift_rate: np.ndarray  # [U]
  num_events: np.ndarray  # [U] int64
  start_time: np.ndarray  # [U] int64
  midterm_genre: np.ndarray  # [U] int64


def draw_users(config: synthetic_catalog.SyntheticConfig, rng: np.random.Generator) -> Users:
  """Draws every user's segment, taste, drift rate, activity, start and first mid-term genre."""
  num_users, num_genres = config.num_users, config.num_genres
  segment_profiles = _dirichlet_rows(
      np.full([config.num_segments, num_genres], config.taste_concentration), rng)
  segment = rng.integers(config.num_segments, size=num_users)
  # The floor keeps every genre reachable (and the gamma draws away from underflow).
  taste = _dirichlet_rows(config.segment_cohesion * segment_profiles[segment] + 0.01, rng)

  if config.drift_rate > 0.0:
    # Beta with mean drift_rate: users differ in how restless they are.
    drift_rate = rng.beta(2.0, 2.0 * (1.0 - config.drift_rate) / config.drift_rate + 1e-9,
                          size=num_users)
  else:
    drift_rate = np.zeros(num_users)

  # Gamma-Poisson (negative binomial) activity: a few heavy users, many light ones.
  extra_mean = config.mean_events_per_user - config.min_events_per_user
  activity = rng.gamma(2.0, extra_mean / 2.0, size=num_users)
  num_events = config.min_events_per_user + rng.poisson(activity)
  num_events = np.minimum(num_events, int(5 * config.mean_events_per_user))

  span = config.time_span_days * synthetic_catalog.SECONDS_PER_DAY
  start_time = synthetic_catalog.EPOCH_START + rng.uniform(0.0, _START_SPREAD * span,
                                                           size=num_users)
  midterm_genre = _sample_rows(_midterm_distribution(taste), rng)
  return Users(segment_profiles=segment_profiles, segment=segment, taste=taste,
               drift_rate=drift_rate, num_events=num_events.astype(np.int64),
               start_time=start_time.astype(np.int64), midterm_genre=midterm_genre)


def _dirichlet_rows(alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """[n, G] one Dirichlet draw per row of `alpha` [n, G] (numpy's dirichlet takes one alpha)."""
  draws = rng.standard_gamma(alpha) + 1e-12
  return draws / draws.sum(axis=1, keepdims=True)


def _midterm_distribution(taste: np.ndarray) -> np.ndarray:
  return (1.0 - _MIDTERM_EXPLORATION) * taste + _MIDTERM_EXPLORATION / taste.shape[1]


def _sample_rows(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """[n] one categorical draw per row of `probabilities` [n, G] (rows need not be normalised)."""
  cumulative = np.cumsum(probabilities, axis=1)
  threshold = rng.random(len(probabilities))[:, None] * cumulative[:, -1:]
  return np.minimum((cumulative <= threshold).sum(axis=1), probabilities.shape[1] - 1)


def _first_unwatched(candidates: np.ndarray, watched: np.ndarray, rows: np.ndarray
                     ) -> Tuple[np.ndarray, np.ndarray]:
  """The first candidate of each user that the user has not watched.

  Args:
    candidates: [n, c] title indices, in order of preference.
    watched: [chunk_users, num_titles] bool, titles watched or dropped.
    rows: [n] chunk rows of the users.

  Returns:
    [n] chosen title and [n] bool, False where every candidate was watched.
  """
  available = ~watched[rows[:, None], candidates]
  first = available.argmax(axis=1)
  order = np.arange(len(candidates))
  return candidates[order, first], available[order, first]


def simulate_chunk(config: synthetic_catalog.SyntheticConfig, catalog: synthetic_catalog.Catalog,
                   users: Users, begin: int, end: int, rng: np.random.Generator
                   ) -> Dict[str, np.ndarray]:
  """Simulates users [begin, end), one vectorised step per event; returns the event columns."""
  num_users = end - begin
  num_films = catalog.num_films
  num_genres = config.num_genres
  span_end = synthetic_catalog.EPOCH_START + int(config.time_span_days *
                                                 synthetic_catalog.SECONDS_PER_DAY)
  taste = users.taste[begin:end]
  drift_rate = users.drift_rate[begin:end]
  midterm_genre = users.midterm_genre[begin:end].copy()
  remaining = users.num_events[begin:end].copy()
  clock = users.start_time[begin:end].copy()  # Earliest start of the next event.
  # A dropped (abandoned) series counts as watched: the user does not come back to it.
  watched = np.zeros([num_users, catalog.num_titles], bool)
  next_episode = np.zeros([num_users, len(catalog.series_num_episodes)], np.int64)
  binge_series = np.zeros(num_users, np.int64)
  binge_left = np.zeros(num_users, np.int64)
  abandon_logit = np.log(config.abandon_prob_at_average_fit /
                         (1.0 - config.abandon_prob_at_average_fit))
  trending_log_popularity = np.log(catalog.title_popularity[catalog.trending_titles])
  events = {name: [] for name in ("user", "item", "timestamp", "completion", "watch_seconds",
                                  "source", "midterm_genre", "fit")}

  for step in range(int(remaining.max())):
    rows = np.flatnonzero(remaining > 0)
    if not rows.size:
      break
    remaining[rows] -= 1
    bingeing = binge_left[rows] > 0
    free_rows = rows[~bingeing]

    if step == 0:
      timestamp = clock[rows]
    else:
      # Free choices spread the user's remaining events over the rest of the span.
      mean_gap = np.maximum((span_end - clock[rows]) / (remaining[rows] + 1), 600.0)
      gap = np.where(bingeing, rng.uniform(*_BINGE_GAP_SECONDS, size=rows.size),
                     np.maximum(rng.exponential(mean_gap), _MIN_FREE_GAP_SECONDS))
      timestamp = clock[rows] + gap.astype(np.int64)

    drifts = rng.random(free_rows.size) < drift_rate[free_rows]
    midterm_genre[free_rows[drifts]] = _sample_rows(
        _midterm_distribution(taste[free_rows[drifts]]), rng)
    interest = (1.0 - config.midterm_weight) * taste[rows]
    interest[np.arange(rows.size), midterm_genre[rows]] += config.midterm_weight

    title = np.full(rows.size, _NO_CHOICE)
    source = np.full(rows.size, _NO_CHOICE)
    title[bingeing] = num_films + binge_series[rows[bingeing]]
    source[bingeing] = _BINGE
    free = np.flatnonzero(~bingeing)
    free_title, free_source = _free_choices(config, catalog, watched, free_rows, interest[free],
                                            timestamp[free], trending_log_popularity, rng)
    title[free], source[free] = free_title, free_source

    chosen = source != _NO_CHOICE  # A user who has watched every candidate skips the event.
    rows, title, source = rows[chosen], title[chosen], source[chosen]
    timestamp, interest = timestamp[chosen], interest[chosen]
    is_series = title >= num_films
    series = np.where(is_series, title - num_films, 0)
    episode = np.where(is_series, next_episode[rows, series], 0)
    item = catalog.title_first_item[title] + episode

    fit = num_genres * np.einsum("ng,ng->n", catalog.title_genre_weights[title], interest)
    abandon_prob = 1.0 / (1.0 + np.exp(-(abandon_logit - config.abandon_taste_slope *
                                         np.log(np.maximum(fit, 1e-3)))))
    abandon_prob = np.where(catalog.title_is_clickbait[title], config.clickbait_abandon_prob,
                            abandon_prob)
    abandoned = rng.random(rows.size) < abandon_prob
    threshold = config.abandonment_threshold
    engaged_floor = 2.0 * threshold
    # Completion rises with fit; some titles are watched to the very end.
    engaged = engaged_floor + (1.0 - engaged_floor) * rng.beta(2.0 + np.minimum(fit, 4.0), 1.0)
    engaged = np.where(rng.random(rows.size) < _FINISHED_SHARE, 1.0, engaged)
    completion = np.where(abandoned, rng.uniform(0.0, 0.8 * threshold, size=rows.size), engaged)
    completion = completion.astype(np.float32)
    runtime = catalog.item_runtime[item]
    watch_seconds = completion * runtime

    # Films are done once watched; a series once finished or abandoned.
    watched[rows[~is_series], title[~is_series]] = True
    series_rows, series_index = rows[is_series], series[is_series]
    next_episode[series_rows, series_index] += 1
    series_done = abandoned[is_series] | (next_episode[series_rows, series_index] >=
                                          catalog.series_num_episodes[series_index])
    watched[series_rows[series_done], title[is_series][series_done]] = True
    binge_left[series_rows] = np.where(series_done, 0, binge_left[series_rows] -
                                       (source[is_series] == _BINGE))
    starts_binge = (~series_done & (source[is_series] != _BINGE) &
                    (rng.random(series_rows.size) < config.binge_prob))
    binge_series[series_rows[starts_binge]] = series_index[starts_binge]
    # Geometric number of further episodes, mean mean_binge_length - 1.
    binge_left[series_rows[starts_binge]] = rng.geometric(
        1.0 / (config.mean_binge_length - 1.0), size=int(starts_binge.sum()))
    clock[rows] = timestamp + np.ceil(watch_seconds).astype(np.int64)

    events["user"].append((begin + rows).astype(np.int32))
    events["item"].append(item.astype(np.int32))
    events["timestamp"].append(timestamp)
    events["completion"].append(completion)
    events["watch_seconds"].append(watch_seconds.astype(np.float32))
    events["source"].append(source.astype(np.int8))
    events["midterm_genre"].append(midterm_genre[rows].astype(np.int32))
    events["fit"].append(fit.astype(np.float32))
  return {name: np.concatenate(parts) for name, parts in events.items()}


def _free_choices(config: synthetic_catalog.SyntheticConfig, catalog: synthetic_catalog.Catalog,
                  watched: np.ndarray, rows: np.ndarray, interest: np.ndarray,
                  timestamp: np.ndarray, trending_log_popularity: np.ndarray,
                  rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
  """Chooses a title for each user not in a binge.

  A user first tries the wanted source: a trending title (`trending_prob`), a popular title
  (`explore_prob`) or a title of a genre of interest. When that source only offers watched
  titles, a trending or popular choice falls back to taste, and taste to popularity.

  Args:
    config: generator parameters.
    catalog: the titles.
    watched: [chunk_users, num_titles] bool, titles watched or dropped.
    rows: [n] chunk rows of the choosing users.
    interest: [n, num_genres] their genre interest now.
    timestamp: [n] int64 time of the choice.
    trending_log_popularity: [num_trending] log popularity of the trending titles.
    rng: random generator.

  Returns:
    [n] title index and [n] source index (`_NO_CHOICE` where every candidate was watched).
  """
  title = np.full(rows.size, _NO_CHOICE)
  source = np.full(rows.size, _NO_CHOICE)

  def try_source(users: np.ndarray, source_id: int) -> None:
    """Gives `users` (indices into rows) the first unwatched candidate of `source_id`, if any."""
    if source_id == _TRENDING:
      available = ((catalog.trending_start <= timestamp[users, None]) &
                   (timestamp[users, None] < catalog.trending_end) &
                   ~watched[rows[users, None], catalog.trending_titles])
      # Gumbel-max: a popularity-weighted draw among the available trending titles.
      score = np.where(available, trending_log_popularity + rng.gumbel(size=available.shape),
                       -np.inf)
      chosen, found = catalog.trending_titles[score.argmax(axis=1)], available.any(axis=1)
    else:
      group = (_sample_rows(interest[users], rng) if source_id == _TASTE
               else np.full(users.size, config.num_genres))  # The group of every title.
      chosen, found = _first_unwatched(
          catalog.sampler.sample(group, _CANDIDATES_PER_CHOICE, rng), watched, rows[users])
    title[users[found]] = chosen[found]
    source[users[found]] = source_id

  path = rng.random(rows.size)
  wants_trending = path < config.trending_prob
  wants_popular = ~wants_trending & (path < config.trending_prob + config.explore_prob)
  if catalog.trending_titles.size:
    try_source(np.flatnonzero(wants_trending), _TRENDING)
  try_source(np.flatnonzero((source == _NO_CHOICE) & ~wants_popular), _TASTE)
  try_source(np.flatnonzero(source == _NO_CHOICE), _POPULAR)
  try_source(np.flatnonzero((source == _NO_CHOICE) & wants_popular), _TASTE)
  return title, source
