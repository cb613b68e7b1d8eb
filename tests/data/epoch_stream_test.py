"""Tests of EpochStream: seeded epochs end to end, resumable at any step."""

import numpy as np
import pytest
import tensorflow as tf

from tfrs_smoe.data import epoch_stream


def _batches(dataset):
  return [batch.numpy().tolist() for batch in dataset]


def _examples(count=10):
  return tf.data.Dataset.range(count)


def test_every_epoch_is_a_permutation_in_its_own_order():
  stream = epoch_stream.EpochStream(_examples(), batch_size=4, seed=3)
  assert stream.steps_per_epoch == 3
  batches = _batches(stream.dataset(epochs=3))
  assert [len(b) for b in batches] == [4, 4, 2] * 3
  epochs = [sum(batches[i:i + 3], []) for i in (0, 3, 6)]
  for order in epochs:
    assert sorted(order) == list(range(10))
  assert len({tuple(order) for order in epochs}) == 3


def test_resuming_at_any_step_continues_the_uninterrupted_stream():
  stream = epoch_stream.EpochStream(_examples(), batch_size=4, seed=3)
  whole = _batches(stream.dataset(epochs=3))
  for start_step in (0, 1, 3, 5, 9):
    # A new stream, as in a restarted process.
    restarted = epoch_stream.EpochStream(_examples(), batch_size=4, seed=3)
    assert _batches(restarted.dataset(epochs=3, start_step=start_step)) == whole[start_step:]


def test_each_dataset_of_a_stream_starts_the_same_generators_again():
  stream = epoch_stream.EpochStream(_examples(), batch_size=4, seed=3)
  assert _batches(stream.dataset(epochs=2)) == _batches(stream.dataset(epochs=2))


def test_seeds_give_different_orders_and_none_keeps_the_order():
  first = _batches(epoch_stream.EpochStream(_examples(), 10, seed=1).dataset(1))
  second = _batches(epoch_stream.EpochStream(_examples(), 10, seed=2).dataset(1))
  assert first != second
  kept = _batches(epoch_stream.EpochStream(_examples(), 4, seed=None).dataset(2))
  assert kept == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]] * 2


def test_drop_remainder_counts_whole_batches_only():
  stream = epoch_stream.EpochStream(_examples(), batch_size=4, seed=0, drop_remainder=True)
  assert stream.steps_per_epoch == 2
  assert [len(b) for b in _batches(stream.dataset(epochs=2))] == [4, 4, 4, 4]


def test_transform_draws_follow_the_epochs_when_resumed():
  def add_noise(batches):
    noise = tf.data.Dataset.random(seed=11, rerandomize_each_iteration=True)
    return tf.data.Dataset.zip((batches, noise)).map(lambda batch, draw: draw)

  stream = epoch_stream.EpochStream(_examples(4), batch_size=2, seed=0, transform=add_noise)
  whole = _batches(stream.dataset(epochs=3))
  assert len(set(whole)) == 6  # Re-drawn every epoch.
  assert _batches(stream.dataset(epochs=3, start_step=3)) == whole[3:]


def test_bad_settings_are_rejected():
  with pytest.raises(ValueError, match="batch_size"):
    epoch_stream.EpochStream(_examples(), batch_size=0, seed=0)
  with pytest.raises(ValueError, match="no batch"):
    epoch_stream.EpochStream(_examples(3), batch_size=4, seed=0, drop_remainder=True)
  stream = epoch_stream.EpochStream(_examples(), batch_size=4, seed=0)
  with pytest.raises(ValueError, match="start_step"):
    stream.dataset(epochs=2, start_step=7)
  with pytest.raises(ValueError, match="start_step"):
    stream.dataset(epochs=2, start_step=-1)


def test_dict_examples_keep_their_structure():
  examples = tf.data.Dataset.from_tensor_slices({"item": np.arange(6), "user": np.arange(6) % 2})
  batch = next(iter(epoch_stream.EpochStream(examples, 3, seed=0).dataset(1)))
  assert set(batch) == {"item", "user"} and batch["item"].shape == (3,)
  np.testing.assert_array_equal(batch["user"].numpy(), batch["item"].numpy() % 2)
