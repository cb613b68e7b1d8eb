"""Tests of the synthetic watch-log generator: determinism, validity and the planted structure.

The structural tests measure each planted effect from the log alone (plus the ground truth that
names what was planted) and compare it with what chance would give; the margins are wide and the
seed fixed, so they do not flake.
"""

import dataclasses

import numpy as np
import pytest

from tfrs_smoe.data import synthetic

TINY = synthetic.SyntheticConfig(num_users=200, num_titles=300, seed=11)
BINGE = synthetic.EVENT_SOURCES.index("binge")


@pytest.fixture(scope="module")
def tiny():
  return synthetic.generate_watch_log(TINY)


def _event_indices(log, truth):
  """[n] user index and [n] item index of each interaction row."""
  return (np.searchsorted(truth.user_id, log.interactions.user_id),
          np.searchsorted(truth.item_id, log.interactions.item_id))


def _user_time_order(log, user):
  return np.lexsort((log.interactions.timestamp, user))


def _cosine(a, b):
  return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def test_same_seed_gives_the_same_log_and_another_seed_a_different_one(tiny):
  log, truth = tiny
  again, truth_again = synthetic.generate_watch_log(TINY)
  for name, column in log.interactions.columns().items():
    np.testing.assert_array_equal(column, again.interactions.columns()[name], err_msg=name)
  np.testing.assert_array_equal(log.items.title, again.items.title)
  np.testing.assert_array_equal(truth.user_taste, truth_again.user_taste)
  np.testing.assert_array_equal(truth.event_source, truth_again.event_source)

  other, _ = synthetic.generate_watch_log(dataclasses.replace(TINY, seed=12))
  assert (len(other.interactions) != len(log.interactions) or
          not np.array_equal(other.interactions.item_id, log.interactions.item_id))


def test_log_is_a_valid_streaming_log(tiny):
  log, truth = tiny
  log.validate()
  interactions = log.interactions
  assert log.name == "streaming_logs"
  assert log.abandonment_threshold == 0.05
  # About mean_events_per_user events per user; skipped choices are rare.
  assert 0.9 * TINY.num_users * TINY.mean_events_per_user < len(interactions)
  assert len(interactions) < 1.1 * TINY.num_users * TINY.mean_events_per_user
  assert len(np.unique(interactions.user_id)) == TINY.num_users

  pairs = np.char.add(np.char.add(interactions.user_id, "/"), interactions.item_id)
  assert len(np.unique(pairs)) == len(pairs), "a user watched an item twice"
  order = np.lexsort((interactions.timestamp, interactions.user_id))
  same_user = interactions.user_id[order][1:] == interactions.user_id[order][:-1]
  assert np.all(np.diff(interactions.timestamp[order])[same_user] > 0)
  assert interactions.timestamp.dtype == np.int64

  np.testing.assert_allclose(interactions.watch_seconds / interactions.runtime_seconds,
                             interactions.engagement, rtol=1e-5)
  # Abandonment is exactly engagement <= threshold, and nobody sits near the threshold.
  near = np.abs(interactions.engagement - log.abandonment_threshold) < 0.01
  assert not near.any()
  abandoned = interactions.engagement <= log.abandonment_threshold
  assert 0.05 < abandoned.mean() < 0.5

  assert set(log.items.item_id) == set(interactions.item_id)
  assert np.all(log.items.runtime_seconds >= 0.9 * 22 * 60)  # The shortest sitcom episode.
  assert np.all((log.items.year >= 1950) & (log.items.year <= 2024))
  assert np.all(np.char.str_len(log.items.title) > 0)
  for genres in log.items.genres:
    assert set(genres.split("|")) <= set(truth.genre_names)
  assert log.items.genre_vocabulary().size == TINY.num_genres


def test_config_rejects_inconsistent_values():
  with pytest.raises(ValueError, match="num_titles"):
    synthetic.SyntheticConfig(num_titles=5, num_genres=18)
  with pytest.raises(ValueError, match="abandonment_threshold"):
    synthetic.SyntheticConfig(abandonment_threshold=0.6)
  with pytest.raises(ValueError, match="explore_prob"):
    synthetic.SyntheticConfig(explore_prob=0.95, trending_prob=0.1)


def test_watched_genres_follow_long_term_taste(tiny):
  log, truth = tiny
  user, item = _event_indices(log, truth)
  kept = log.interactions.engagement > log.abandonment_threshold
  genre_mix = np.zeros_like(truth.user_taste)
  np.add.at(genre_mix, user[kept], truth.item_genre_weights[item[kept]])
  matched = _cosine(genre_mix, truth.user_taste).mean()
  shuffled = _cosine(genre_mix, truth.user_taste[np.random.default_rng(0).permutation(
      len(truth.user_taste))]).mean()
  assert matched > shuffled + 0.2, (matched, shuffled)


def test_binges_are_consecutive_episodes_of_one_series(tiny):
  log, truth = tiny
  user, item = _event_indices(log, truth)
  order = _user_time_order(log, user)
  user, item = user[order], item[order]
  timestamp = log.interactions.timestamp[order]
  watch_seconds = log.interactions.watch_seconds[order]
  source = truth.event_source[order]
  series, episode = truth.item_series[item], truth.item_episode[item]

  binge = np.flatnonzero(source == BINGE)
  assert binge.size > 0.05 * len(item)
  assert np.all(user[binge] == user[binge - 1])
  assert np.all(series[binge] >= 0)
  assert np.all(series[binge] == series[binge - 1])
  assert np.all(episode[binge] == episode[binge - 1] + 1)
  # The next episode starts within minutes of the previous one ending.
  assert np.all(timestamp[binge] - timestamp[binge - 1] <= np.ceil(watch_seconds[binge - 1]) + 600)

  # Seen from the log alone: next-episode pairs are far more common than in a shuffled history.
  def next_episode_share(items):
    same_user = user[1:] == user[:-1]
    s, e = truth.item_series[items], truth.item_episode[items]
    follows = (s[1:] >= 0) & (s[1:] == s[:-1]) & (e[1:] == e[:-1] + 1)
    return follows[same_user].mean()

  shuffle = np.lexsort((np.random.default_rng(0).random(len(user)), user))
  assert next_episode_share(item) > 3 * next_episode_share(item[shuffle]) + 0.05


def test_title_popularity_is_heavy_tailed(tiny):
  log, truth = tiny
  _, item = _event_indices(log, truth)
  title_counts = np.bincount(truth.item_title[item], minlength=TINY.num_titles)
  top_tenth = np.sort(title_counts)[::-1][:TINY.num_titles // 10]
  assert top_tenth.sum() / title_counts.sum() > 0.25  # Uniform popularity would give 0.1.
  # Titles are watched in the order of their planted popularity.
  first_item = np.unique(truth.item_title, return_index=True)[1]
  planted = truth.item_popularity[first_item]
  rank_correlation = np.corrcoef(np.argsort(np.argsort(planted)),
                                 np.argsort(np.argsort(title_counts)))[0, 1]
  assert rank_correlation > 0.5


def test_trending_titles_surge_inside_their_window(tiny):
  log, truth = tiny
  _, item = _event_indices(log, truth)
  timestamp = log.interactions.timestamp
  trending_titles = np.unique(truth.item_title[truth.item_trending_start >= 0])
  assert trending_titles.size == TINY.num_trending
  surges = []
  for title in trending_titles:
    title_items = truth.item_title == title
    start = truth.item_trending_start[title_items][0]
    end = truth.item_trending_end[title_items][0]
    assert end - start == TINY.trending_window_days * 86400
    inside = (timestamp >= start) & (timestamp < end)
    before = timestamp < start
    hits = title_items[item]
    assert inside.sum() > 100
    share_inside = hits[inside].mean()
    share_before = hits[before].mean()
    surges.append(share_inside / max(share_before, 1e-4))
  assert np.median(surges) > 4, surges
  assert np.min(surges) > 1.5, surges


def test_clickbait_is_mostly_abandoned(tiny):
  log, truth = tiny
  _, item = _event_indices(log, truth)
  abandoned = log.interactions.engagement <= log.abandonment_threshold
  clickbait = truth.item_is_clickbait[item]
  assert clickbait.sum() > 100  # Clickbait attracts clicks ...
  assert abandoned[clickbait].mean() > 0.6  # ... that are mostly abandoned,
  assert abandoned[clickbait].mean() > 2.5 * abandoned[~clickbait].mean()  # unlike the rest.


def test_off_taste_titles_are_abandoned_more(tiny):
  log, truth = tiny
  user, item = _event_indices(log, truth)
  abandoned = log.interactions.engagement <= log.abandonment_threshold
  ordinary = ~truth.item_is_clickbait[item]
  # Fit to the long-term taste, 1 for a title of average fit.
  fit = TINY.num_genres * (truth.item_genre_weights[item] * truth.user_taste[user]).sum(axis=1)
  off_taste, on_taste = ordinary & (fit < 0.5), ordinary & (fit > 2.0)
  assert off_taste.sum() > 200 and on_taste.sum() > 200
  assert abandoned[off_taste].mean() > 3 * abandoned[on_taste].mean()


def _first_versus_last_third_distance(log, truth, rng):
  """Mean over users of the total-variation distance between the genre mix of their first and
  last third of free (non-binge) events, in time order and after shuffling each history."""
  user, item = _event_indices(log, truth)
  order = _user_time_order(log, user)
  free = truth.event_source[order] != BINGE
  user, item = user[order][free], item[order][free]
  shuffled = item[np.lexsort((rng.random(len(user)), user))]
  starts = np.flatnonzero(np.r_[True, user[1:] != user[:-1]])
  ends = np.r_[starts[1:], len(user)]

  def distance(items):
    distances = []
    for start, end in zip(starts, ends):
      third = (end - start) // 3
      if third < 10:
        continue
      first = truth.item_genre_weights[items[start:start + third]].mean(axis=0)
      last = truth.item_genre_weights[items[end - third:end]].mean(axis=0)
      distances.append(0.5 * np.abs(first - last).sum())
    return np.mean(distances)

  return distance(item), distance(shuffled)


def test_mid_term_interest_drifts(tiny):
  log, truth = tiny
  in_order, shuffled = _first_versus_last_third_distance(log, truth, np.random.default_rng(0))
  steady_log, steady_truth = synthetic.generate_watch_log(dataclasses.replace(TINY,
                                                                              drift_rate=0.0))
  steady_in_order, steady_shuffled = _first_versus_last_third_distance(
      steady_log, steady_truth, np.random.default_rng(0))
  # Drift makes the early and late genre mix differ more than a shuffled history does, and
  # by clearly more than without drift (slow trends, such as running out of favourite popular
  # titles, leave a smaller gap even then).
  assert in_order - shuffled > 0.05, (in_order, shuffled)
  assert in_order - shuffled > 1.5 * (steady_in_order - steady_shuffled)
  # The planted mid-term genre moves at about the configured rate, and never without drift.
  assert 0.2 * TINY.drift_rate < _midterm_change_rate(log, truth) < 2 * TINY.drift_rate
  assert _midterm_change_rate(steady_log, steady_truth) == 0.0


def _midterm_change_rate(log, truth):
  """Share of a user's consecutive events where the planted mid-term genre changed."""
  user, _ = _event_indices(log, truth)
  order = _user_time_order(log, user)
  midterm, user = truth.event_midterm_genre[order], user[order]
  return (midterm[1:] != midterm[:-1])[user[1:] == user[:-1]].mean()
