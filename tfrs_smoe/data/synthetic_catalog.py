"""Configuration and title catalogue of the synthetic watch-log generator.

`tfrs_smoe.data.synthetic` is the public API: it re-exports `SyntheticConfig` and documents the
generative process. This module holds the parameters and the first stage of that process, which
the simulation in `synthetic_simulation` only reads: `draw_catalog` draws the titles (genres,
popularity with clickbait pull, trending windows, series and their episodes, runtimes, names) and
the items they expand to, with alias tables for popularity-weighted title draws by genre. The
config lives here rather than in `synthetic` so that both drawing modules can take it without
importing the module that imports them.
"""

import dataclasses
from typing import List, Tuple

import numpy as np

EPOCH_START = 1672531200  # 2023-01-01 00:00:00 UTC.
SECONDS_PER_DAY = 86400

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

# Titles with a secondary genre, and the weight of the primary genre in their fit.
_SECONDARY_GENRE_SHARE = 0.4
_PRIMARY_GENRE_WEIGHT = 0.7


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
  """Parameters of the synthetic watch-log generator (see `tfrs_smoe.data.synthetic`).

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
class Catalog:
  """Titles (films first, then series) and items (films, then episodes series by series).

  Example:
    >>> catalog = draw_catalog(SyntheticConfig(), np.random.default_rng(0))
    >>> catalog.num_films, catalog.num_titles, len(catalog.item_id)
    (1600, 2000, 4191)
  """

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


def genre_names(num_genres: int) -> Tuple[str, ...]:
  """Names of `num_genres` genres: real genre names, then "Genre19", "Genre20", ..."""
  extra = tuple(f"Genre{i + 1}" for i in range(len(_GENRE_NAMES), num_genres))
  return (_GENRE_NAMES + extra)[:num_genres]


def padded_ids(prefix: str, count: int) -> np.ndarray:
  """[count] str ids prefix + zero-padded index, so that string order is index order."""
  width = len(str(max(count - 1, 0)))
  return np.char.add(prefix, np.char.zfill(np.arange(count).astype(str), width))


def draw_catalog(config: SyntheticConfig, rng: np.random.Generator) -> Catalog:
  """Draws the titles and their items (steps 1-2 of the `synthetic` generative process)."""
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
  span_end = EPOCH_START + config.time_span_days * SECONDS_PER_DAY
  earliest_start = span_end - config.trending_recent_days * SECONDS_PER_DAY
  latest_start = span_end - config.trending_window_days * SECONDS_PER_DAY
  trending_start = rng.uniform(earliest_start, latest_start, size=trending_titles.size)
  trending_start = trending_start.astype(np.int64)
  trending_end = trending_start + int(config.trending_window_days * SECONDS_PER_DAY)

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
  genre_name = np.array(genre_names(num_genres))
  title_genres = np.where(has_secondary,
                          np.char.add(np.char.add(genre_name[primary], "|"),
                                      genre_name[secondary]),
                          genre_name[primary])
  series_index = item_title[is_episode] - num_films
  episode_ids = np.char.add(
      np.char.add(padded_ids("s", num_series)[series_index], "e"),
      np.char.zfill(item_episode[is_episode].astype(str), len(str(config.max_episodes))))
  # "f..." < "s...", so item id order is item index order.
  item_id = np.concatenate([padded_ids("f", num_films), episode_ids])

  genre_groups = [np.flatnonzero(title_genre_weights[:, genre] > 0) for genre in range(num_genres)]
  sampler = _PopularitySampler.build(genre_groups + [np.arange(num_titles)], popularity)

  return Catalog(
      num_films=num_films, title_genre_weights=title_genre_weights, title_popularity=popularity,
      title_first_item=title_first_item, title_is_clickbait=is_clickbait,
      trending_titles=trending_titles, trending_start=trending_start, trending_end=trending_end,
      series_num_episodes=series_num_episodes, item_title=item_title, item_episode=item_episode,
      item_runtime=item_runtime, item_id=item_id, item_name=item_name,
      item_genres=title_genres[item_title], item_year=title_year[item_title].astype(np.int32),
      sampler=sampler)
