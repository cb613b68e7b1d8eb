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
"""

import dataclasses
from typing import Dict, List, Tuple

import numpy as np

from tfrs_smoe.data import schema

# Index of `GroundTruth.event_source` into these names.
EVENT_SOURCES = ("taste", "popular", "trending", "binge")
_TASTE, _POPULAR, _TRENDING, _BINGE = range(len(EVENT_SOURCES))
_NO_CHOICE = -1

_EPOCH_START = 1672531200  # 2023-01-01 00:00:00 UTC.
_SECONDS_PER_DAY = 86400
_GENRE_NAMES = ("Drama", "Comedy", "Thriller", "Action", "Romance", "Documentary", "Crime",
                "Sci-Fi", "Horror", "Animation", "Fantasy", "Family", "Mystery", "Adventure",
                "History", "Music", "War", "Western")
_ADJECTIVES = ("Silent", "Golden", "Broken", "Hidden", "Last", "Crimson", "Frozen", "Lost",
               "Midnight", "Burning", "Distant", "Wild", "Secret", "Endless", "Quiet", "Iron",
               "Electric", "Shattered", "Northern", "Hollow", "Bright", "Savage", "Gentle",
               "Restless", "Paper", "Velvet", "Scarlet", "Falling", "Rising", "Open")
_NOUNS = ("Harbor", "Empire", "Garden", "Signal", "River", "Kingdom", "Witness", "Horizon",
          "Orchard", "Station", "Frontier", "Mirror", "Island", "Promise", "Circuit", "Valley",
          "Letter", "Summer", "Machine", "Border", "Lighthouse", "Orbit", "Country", "Storm",
          "Family", "Protocol", "Canyon", "Winter", "Heist", "Academy")

# Candidates drawn per choice; the first the user has not watched yet is taken.
_CANDIDATES_PER_CHOICE = 8
# Titles with a secondary genre, and the weight of the primary genre in their fit.
_SECONDARY_GENRE_SHARE = 0.4
_PRIMARY_GENRE_WEIGHT = 0.7
# Share of a new mid-term genre drawn uniformly rather than from the long-term taste, so drift
# can reach genres the user does not usually watch.
_MIDTERM_EXPLORATION = 0.5
# Users cover the whole span only if they start early enough.
_START_SPREAD = 0.25
_MIN_FREE_GAP_SECONDS = 60
_BINGE_GAP_SECONDS = (30, 600)
_FINISHED_SHARE = 0.3  # Non-abandoned titles watched to the very end.
# Cap on the bool watched-matrix of one chunk of users, [users, titles].
_CHUNK_BYTES = 2**27


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
  """Parameters of the synthetic watch-log generator (see the module docstring).

  Attributes:
    num_users: number of users.
    num_titles: number of titles, films plus series (a series counts once).
    series_share: share of the titles that are series.
    min_episodes: fewest episodes of a series.
    max_episodes: most episodes of a series.
    num_genres: number of genres.
    num_segments: number of user segments (taste types) sharing a genre profile.
    mean_events_per_user: mean number of watch events per user (before the rare skipped choice).
    min_events_per_user: fewest watch events of a user.
    time_span_days: length of the log in days.
    seed: random seed; the same config gives the same log.
    taste_concentration: Dirichlet concentration of segment genre profiles; small is peaked.
    segment_cohesion: total Dirichlet concentration of a user's taste around the segment profile.
    midterm_weight: weight of the mid-term genre in the interest, against the long-term taste.
    drift_rate: mean per-free-choice probability that the mid-term genre changes.
    binge_prob: probability that a watched (not abandoned) episode starts a binge.
    mean_binge_length: mean number of episodes of a binge, the first included (>= 2).
    popularity_exponent: power-law exponent of title popularity over popularity rank.
    explore_prob: share of free choices drawn by global popularity, ignoring taste.
    num_trending: number of trending titles.
    trending_window_days: length of each trending window.
    trending_recent_days: trending windows lie within this many days before the end.
    trending_prob: share of free choices that go to a title trending at that time.
    clickbait_share: share of the films that are clickbait.
    clickbait_pull: popularity multiplier of clickbait films.
    clickbait_abandon_prob: probability that a clickbait film is abandoned.
    abandon_prob_at_average_fit: abandonment probability of a title of average fit (fit = 1).
    abandon_taste_slope: decrease of the abandonment log-odds per unit of log(fit).
    abandonment_threshold: engagement <= this is an abandonment.
  """

  num_users: int = 1500
  num_titles: int = 2000
  series_share: float = 0.2
  min_episodes: int = 3
  max_episodes: int = 10
  num_genres: int = 18
  num_segments: int = 8
  mean_events_per_user: float = 60.0
  min_events_per_user: int = 5
  time_span_days: float = 180.0
  seed: int = 0
  taste_concentration: float = 0.3
  segment_cohesion: float = 20.0
  midterm_weight: float = 0.5
  drift_rate: float = 0.05
  binge_prob: float = 0.5
  mean_binge_length: float = 4.0
  popularity_exponent: float = 1.0
  explore_prob: float = 0.2
  num_trending: int = 10
  trending_window_days: float = 7.0
  trending_recent_days: float = 30.0
  trending_prob: float = 0.1
  clickbait_share: float = 0.02
  clickbait_pull: float = 10.0
  clickbait_abandon_prob: float = 0.8
  abandon_prob_at_average_fit: float = 0.15
  abandon_taste_slope: float = 1.5
  abandonment_threshold: float = 0.05

  def __post_init__(self):
    problems = []
    if self.num_users < 1:
      problems.append(f"num_users={self.num_users} must be >= 1")
    if self.num_genres < 1:
      problems.append(f"num_genres={self.num_genres} must be >= 1")
    if self.num_titles < self.num_genres:
      problems.append(f"num_titles={self.num_titles} must be >= num_genres={self.num_genres} "
                      "so that every genre has a title")
    if not 1 <= self.min_episodes <= self.max_episodes:
      problems.append(f"need 1 <= min_episodes={self.min_episodes} <= "
                      f"max_episodes={self.max_episodes}")
    if self.num_segments < 1:
      problems.append(f"num_segments={self.num_segments} must be >= 1")
    if not 1 <= self.min_events_per_user <= self.mean_events_per_user:
      problems.append(f"need 1 <= min_events_per_user={self.min_events_per_user} <= "
                      f"mean_events_per_user={self.mean_events_per_user}")
    if self.time_span_days <= 0:
      problems.append(f"time_span_days={self.time_span_days} must be > 0")
    if self.trending_window_days <= 0 or self.trending_recent_days < self.trending_window_days:
      problems.append(f"need 0 < trending_window_days={self.trending_window_days} <= "
                      f"trending_recent_days={self.trending_recent_days}")
    if self.trending_recent_days > self.time_span_days:
      problems.append(f"trending_recent_days={self.trending_recent_days} exceeds "
                      f"time_span_days={self.time_span_days}")
    if self.num_trending < 0 or self.num_trending > self.num_titles:
      problems.append(f"num_trending={self.num_trending} must be in [0, num_titles]")
    for name in ("series_share", "midterm_weight", "drift_rate", "binge_prob", "explore_prob",
                 "trending_prob", "clickbait_share", "clickbait_abandon_prob"):
      if not 0.0 <= getattr(self, name) <= 1.0:
        problems.append(f"{name}={getattr(self, name)} must be in [0, 1]")
    if self.explore_prob + self.trending_prob > 1.0:
      problems.append("explore_prob + trending_prob must be <= 1")
    if not 0.0 < self.abandon_prob_at_average_fit < 1.0:
      problems.append(f"abandon_prob_at_average_fit={self.abandon_prob_at_average_fit} must be "
                      "in (0, 1)")
    if not 0.0 < self.abandonment_threshold < 0.5:
      problems.append(f"abandonment_threshold={self.abandonment_threshold} must be in (0, 0.5) "
                      "so that watched titles can stay above twice the threshold")
    for name in ("taste_concentration", "segment_cohesion", "clickbait_pull"):
      if getattr(self, name) <= 0:
        problems.append(f"{name}={getattr(self, name)} must be > 0")
    if self.mean_binge_length < 2.0:
      problems.append(f"mean_binge_length={self.mean_binge_length} must be >= 2 (a binge is at "
                      "least two episodes)")
    if problems:
      raise ValueError("SyntheticConfig: " + "; ".join(problems) + ".")


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


@dataclasses.dataclass
class _Catalog:
  """Titles (films first, then series) and items (films, then episodes series by series)."""

  num_films: int
  title_genre_weights: np.ndarray  # [T, G] float64
  title_popularity: np.ndarray  # [T] float64, sums to 1.
  title_first_item: np.ndarray  # [T] int64
  title_is_clickbait: np.ndarray  # [T] bool
  trending_titles: np.ndarray  # [k] int64
  trending_start: np.ndarray  # [k] int64
  trending_end: np.ndarray  # [k] int64
  series_num_episodes: np.ndarray  # [S] int64
  item_title: np.ndarray  # [I] int64
  item_episode: np.ndarray  # [I] int64, 0 for films.
  item_runtime: np.ndarray  # [I] float32 seconds.
  item_id: np.ndarray  # [I] str
  item_name: np.ndarray  # [I] str
  item_genres: np.ndarray  # [I] str, joined by "|".
  item_year: np.ndarray  # [I] int32
  # Popularity-weighted draws: group g < G is the titles of genre g, group G every title.
  sampler: "_PopularitySampler"

  @property
  def num_titles(self) -> int:
    return len(self.title_popularity)


@dataclasses.dataclass
class _PopularitySampler:
  """Popularity-weighted title draws within groups of titles, O(1) each (Walker's alias method).

  Group g owns slots [start[g], start[g] + size[g]); a draw picks a slot uniformly and returns
  its title with probability keep[slot], else its alias title.
  """

  start: np.ndarray  # [num_groups] int64
  size: np.ndarray  # [num_groups] int64
  title: np.ndarray  # [num_slots] int64
  keep: np.ndarray  # [num_slots] float64
  alias: np.ndarray  # [num_slots] int64

  @classmethod
  def build(cls, groups: List[np.ndarray], popularity: np.ndarray) -> "_PopularitySampler":
    """Alias tables of `popularity` [num_titles] restricted to each group of title indices."""
    keeps, aliases = [], []
    for titles in groups:
      keep, alias = _alias_table(popularity[titles])
      keeps.append(keep)
      aliases.append(titles[alias])
    size = np.array([titles.size for titles in groups], np.int64)
    return cls(start=np.cumsum(size) - size, size=size, title=np.concatenate(groups),
               keep=np.concatenate(keeps), alias=np.concatenate(aliases))

  def sample(self, group: np.ndarray, num: int, rng: np.random.Generator) -> np.ndarray:
    """[n, num] independent title draws from each row's `group` [n]."""
    size = self.size[group][:, None]
    scaled = rng.random((group.size, num)) * size
    # One uniform gives both the slot (integer part) and the keep test (fractional part).
    offset = np.minimum(scaled.astype(np.int64), size - 1)
    slot = self.start[group][:, None] + offset
    return np.where(scaled - offset < self.keep[slot], self.title[slot], self.alias[slot])


def _alias_table(weights: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """Vose's alias table of `weights` [m] > 0: keep probability [m] and alias index [m]."""
  scaled = list(weights * (weights.size / weights.sum()))
  keep = np.ones(weights.size)
  alias = np.arange(weights.size)
  small = [i for i, value in enumerate(scaled) if value < 1.0]
  large = [i for i, value in enumerate(scaled) if value >= 1.0]
  while small and large:
    low, high = small.pop(), large.pop()
    keep[low], alias[low] = scaled[low], high
    scaled[high] += scaled[low] - 1.0
    (small if scaled[high] < 1.0 else large).append(high)
  # Whatever is left is 1 up to rounding and keeps its own title.
  return keep, alias


@dataclasses.dataclass
class _Users:
  """Per-user parameters drawn before the simulation."""

  segment_profiles: np.ndarray  # [K, G]
  segment: np.ndarray  # [U]
  taste: np.ndarray  # [U, G] float64
  drift_rate: np.ndarray  # [U]
  num_events: np.ndarray  # [U] int64
  start_time: np.ndarray  # [U] int64
  midterm_genre: np.ndarray  # [U] int64


def generate_watch_log(config: SyntheticConfig = SyntheticConfig()
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
  seed_sequence = np.random.SeedSequence(config.seed)
  catalog_seed, users_seed, events_seed = seed_sequence.spawn(3)
  catalog = _draw_catalog(config, np.random.default_rng(catalog_seed))
  users = _draw_users(config, np.random.default_rng(users_seed))

  users_per_chunk = min(max(_CHUNK_BYTES // catalog.num_titles, 256), config.num_users)
  chunk_seeds = events_seed.spawn(-(-config.num_users // users_per_chunk))
  chunks = [
      _simulate_chunk(config, catalog, users, begin, min(begin + users_per_chunk, config.num_users),
                      np.random.default_rng(chunk_seed))
      for begin, chunk_seed in zip(range(0, config.num_users, users_per_chunk), chunk_seeds)]
  # Column by column, releasing each part once copied: at a million users the event columns are
  # gigabytes.
  events = {name: np.concatenate([chunk.pop(name) for chunk in chunks]) for name in list(chunks[0])}
  # Zero-padded ids sort like their indices, so this is the (timestamp, user_id, item_id) order
  # that `records.watch_log_from_columns` gives when loading the TFDS copy.
  order = np.lexsort((events["item"], events["user"], events["timestamp"]))
  for name in events:
    events[name] = events[name][order]

  user_ids = _padded_ids("u", config.num_users)
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


def _ground_truth(config: SyntheticConfig, catalog: _Catalog, users: _Users,
                  user_ids: np.ndarray, events: Dict[str, np.ndarray]) -> GroundTruth:
  num_films = catalog.num_films
  item_title = catalog.item_title
  title_trending_start = np.full(catalog.num_titles, -1, np.int64)
  title_trending_end = np.full(catalog.num_titles, -1, np.int64)
  title_trending_start[catalog.trending_titles] = catalog.trending_start
  title_trending_end[catalog.trending_titles] = catalog.trending_end
  return GroundTruth(
      genre_names=np.array(_genre_names(config.num_genres)),
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


def _genre_names(num_genres: int) -> Tuple[str, ...]:
  extra = tuple(f"Genre{i + 1}" for i in range(len(_GENRE_NAMES), num_genres))
  return (_GENRE_NAMES + extra)[:num_genres]


def _padded_ids(prefix: str, count: int) -> np.ndarray:
  """[count] str ids prefix + zero-padded index, so that string order is index order."""
  width = len(str(max(count - 1, 0)))
  return np.char.add(prefix, np.char.zfill(np.arange(count).astype(str), width))


def _draw_catalog(config: SyntheticConfig, rng: np.random.Generator) -> _Catalog:
  num_genres = config.num_genres
  num_titles = config.num_titles
  num_series = int(round(num_titles * config.series_share))
  num_films = num_titles - num_series

  # Genres: some are bigger than others, and one random title of each genre makes sure a taste
  # for any genre can be served.
  genre_share = rng.dirichlet(np.full(num_genres, 5.0))
  primary = rng.choice(num_genres, size=num_titles, p=genre_share)
  primary[rng.permutation(num_titles)[:num_genres]] = np.arange(num_genres)
  has_secondary = (rng.random(num_titles) < _SECONDARY_GENRE_SHARE) & (num_genres > 1)
  secondary = (primary + rng.integers(1, max(num_genres, 2), size=num_titles)) % num_genres
  title_genre_weights = np.zeros([num_titles, num_genres])
  title_genre_weights[np.arange(num_titles), primary] = np.where(has_secondary,
                                                                 _PRIMARY_GENRE_WEIGHT, 1.0)
  title_genre_weights[np.flatnonzero(has_secondary), secondary[has_secondary]] = (
      1.0 - _PRIMARY_GENRE_WEIGHT)

  rank = rng.permutation(num_titles) + 1
  popularity = rank.astype(np.float64) ** -config.popularity_exponent
  is_clickbait = np.zeros(num_titles, bool)
  num_clickbait = int(round(config.clickbait_share * num_films))
  is_clickbait[rng.choice(num_films, size=num_clickbait, replace=False)] = True
  popularity[is_clickbait] *= config.clickbait_pull
  popularity /= popularity.sum()

  # Trending titles are ordinary (non-clickbait) titles, so that their burst is the only thing
  # special about them.
  ordinary = np.flatnonzero(~is_clickbait)
  trending_titles = np.sort(rng.choice(ordinary, size=min(config.num_trending, ordinary.size),
                                       replace=False))
  span_end = _EPOCH_START + config.time_span_days * _SECONDS_PER_DAY
  earliest_start = span_end - config.trending_recent_days * _SECONDS_PER_DAY
  latest_start = span_end - config.trending_window_days * _SECONDS_PER_DAY
  trending_start = rng.uniform(earliest_start, latest_start, size=trending_titles.size)
  trending_start = trending_start.astype(np.int64)
  trending_end = trending_start + int(config.trending_window_days * _SECONDS_PER_DAY)

  series_num_episodes = rng.integers(config.min_episodes, config.max_episodes + 1,
                                     size=num_series)
  items_per_title = np.concatenate([np.ones(num_films, np.int64), series_num_episodes])
  title_first_item = np.concatenate([[0], np.cumsum(items_per_title)[:-1]])
  item_title = np.repeat(np.arange(num_titles), items_per_title)
  item_episode = np.arange(item_title.size) - title_first_item[item_title]
  item_episode[item_title >= num_films] += 1  # Episodes count from 1, films are episode 0.

  # Films run 80-180 minutes; a series has one typical episode length (sitcom to drama).
  title_runtime = np.clip(rng.normal(105.0, 20.0, size=num_titles), 80.0, 180.0) * 60.0
  title_runtime[num_films:] = rng.choice([22.0, 30.0, 45.0, 55.0], size=num_series) * 60.0
  item_runtime = title_runtime[item_title] * rng.uniform(0.9, 1.1, size=item_title.size)
  item_runtime = np.round(item_runtime).astype(np.float32)
  title_year = np.clip(2024 - np.floor(rng.exponential(12.0, size=num_titles)), 1950, 2024)

  # np.where rather than assignment: numpy string arrays have a fixed width and would truncate.
  names = np.char.add(np.char.add(rng.choice(_ADJECTIVES, size=num_titles), " "),
                      rng.choice(_NOUNS, size=num_titles))
  is_film = np.arange(num_titles) < num_films
  names = np.where(is_film, np.char.add("The ", names), names)
  is_episode = item_title >= num_films
  item_name = np.where(is_episode,
                       np.char.add(np.char.add(names[item_title], ": Episode "),
                                   item_episode.astype(str)),
                       names[item_title])
  genre_names = np.array(_genre_names(num_genres))
  title_genres = np.where(has_secondary,
                          np.char.add(np.char.add(genre_names[primary], "|"),
                                      genre_names[secondary]),
                          genre_names[primary])
  series_index = item_title[is_episode] - num_films
  episode_ids = np.char.add(
      np.char.add(_padded_ids("s", num_series)[series_index], "e"),
      np.char.zfill(item_episode[is_episode].astype(str), len(str(config.max_episodes))))
  # "f..." < "s...", so item id order is item index order.
  item_id = np.concatenate([_padded_ids("f", num_films), episode_ids])

  genre_groups = [np.flatnonzero(title_genre_weights[:, genre] > 0) for genre in range(num_genres)]
  sampler = _PopularitySampler.build(genre_groups + [np.arange(num_titles)], popularity)

  return _Catalog(
      num_films=num_films, title_genre_weights=title_genre_weights, title_popularity=popularity,
      title_first_item=title_first_item, title_is_clickbait=is_clickbait,
      trending_titles=trending_titles, trending_start=trending_start, trending_end=trending_end,
      series_num_episodes=series_num_episodes, item_title=item_title, item_episode=item_episode,
      item_runtime=item_runtime, item_id=item_id, item_name=item_name,
      item_genres=title_genres[item_title], item_year=title_year[item_title].astype(np.int32),
      sampler=sampler)


def _draw_users(config: SyntheticConfig, rng: np.random.Generator) -> _Users:
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

  span = config.time_span_days * _SECONDS_PER_DAY
  start_time = _EPOCH_START + rng.uniform(0.0, _START_SPREAD * span, size=num_users)
  midterm_genre = _sample_rows(_midterm_distribution(taste), rng)
  return _Users(segment_profiles=segment_profiles, segment=segment, taste=taste,
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


def _simulate_chunk(config: SyntheticConfig, catalog: _Catalog, users: _Users, begin: int,
                    end: int, rng: np.random.Generator) -> Dict[str, np.ndarray]:
  """Simulates users [begin, end), one vectorised step per event; returns the event columns."""
  num_users = end - begin
  num_films = catalog.num_films
  num_genres = config.num_genres
  span_end = _EPOCH_START + int(config.time_span_days * _SECONDS_PER_DAY)
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


def _free_choices(config: SyntheticConfig, catalog: _Catalog, watched: np.ndarray,
                  rows: np.ndarray, interest: np.ndarray, timestamp: np.ndarray,
                  trending_log_popularity: np.ndarray, rng: np.random.Generator
                  ) -> Tuple[np.ndarray, np.ndarray]:
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
