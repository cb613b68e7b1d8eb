"""Tests of the window and whole-sequence pipelines against hand-built sequences."""

import numpy as np
import pytest
import tensorflow as tf

from tfrs_smoe.data import sequences
from tfrs_smoe.data import splits


def _log():
  # User 4: positives 10, 11, 12, 13 (one abandonment, 99, in between); user 5: a single positive
  # (no example); user 6: positives 20, 21.
  user = np.array([4, 4, 4, 4, 4, 5, 6, 6], np.int32)
  item = np.array([10, 11, 99, 12, 13, 30, 20, 21], np.int32)
  return splits.IndexedLog(
      user=user, item=item, timestamp=np.arange(8, dtype=np.int64) * 10,
      engagement=np.array([1.0, 0.9, 0.0, 0.8, 0.7, 1.0, 0.6, 0.5], np.float32),
      positive=item != 99)


def _as_list(dataset):
  return [{k: v.numpy() for k, v in example.items()} for example in dataset]


def test_windows_hold_recent_history_and_soft_labelled_next_k():
  pipeline = sequences.SequencePipeline(max_len=2, next_k=3, soft_labels=(1.0, 0.6, 0.3))
  windows = _as_list(pipeline.windows(_log()))
  assert len(windows) == 3 + 1  # positions 1..3 of user 4, position 1 of user 6.
  first, last, user6 = windows[0], windows[2], windows[3]
  np.testing.assert_array_equal(first["history"], [0, 10])
  np.testing.assert_array_equal(first["targets"], [11, 12, 13])
  np.testing.assert_allclose(first["target_weights"], [1.0, 0.6, 0.3])
  np.testing.assert_allclose(first["target_engagement"], [0.9, 0.8, 0.7])
  assert first["timestamp"] == 10 and first["user_index"] == 4
  np.testing.assert_array_equal(first["history_timestamps"], [0, 0])
  np.testing.assert_array_equal(last["history"], [11, 12])
  np.testing.assert_array_equal(last["history_timestamps"], [10, 30])
  np.testing.assert_array_equal(last["targets"], [13, 0, 0])
  np.testing.assert_allclose(last["target_weights"], [1.0, 0.0, 0.0])
  np.testing.assert_array_equal(user6["history"], [0, 20])
  np.testing.assert_array_equal(user6["targets"], [21, 0, 0])


def test_sequences_give_next_k_targets_at_every_position():
  pipeline = sequences.SequencePipeline(max_len=4, next_k=2, soft_labels=(1.0, 0.5))
  user4, user6 = _as_list(pipeline.sequences(_log()))
  # Positives 10 11 12 13: inputs are the first three, left-padded to 4.
  np.testing.assert_array_equal(user4["history"], [0, 10, 11, 12])
  np.testing.assert_array_equal(user4["targets"], [[0, 0], [11, 12], [12, 13], [13, 0]])
  np.testing.assert_allclose(user4["target_weights"],
                             [[0, 0], [1.0, 0.5], [1.0, 0.5], [1.0, 0.0]])
  np.testing.assert_array_equal(user4["timestamp"][1:], [10, 30, 40])
  np.testing.assert_array_equal(user6["history"], [0, 0, 0, 20])
  np.testing.assert_array_equal(user6["targets"][-1], [21, 0])


def test_sequences_keep_the_most_recent_items_of_long_users():
  pipeline = sequences.SequencePipeline(max_len=2, next_k=1, soft_labels=(1.0,))
  user4 = _as_list(pipeline.sequences(_log()))[0]
  np.testing.assert_array_equal(user4["history"], [11, 12])
  np.testing.assert_array_equal(user4["targets"], [[12], [13]])


def test_all_chunks_make_every_later_positive_a_target_once():
  pipeline = sequences.SequencePipeline(max_len=2, next_k=1, soft_labels=(1.0,))
  recent, oldest, user6 = _as_list(pipeline.sequences(_log(), all_chunks=True))
  # Positives 10 11 12 13 in chunks of three overlapping by one: [11 12 13] and [10 11].
  np.testing.assert_array_equal(recent["history"], [11, 12])
  np.testing.assert_array_equal(recent["targets"], [[12], [13]])
  np.testing.assert_array_equal(oldest["history"], [0, 10])
  np.testing.assert_array_equal(oldest["targets"], [[0], [11]])
  assert recent["user_index"] == oldest["user_index"] != user6["user_index"]
  np.testing.assert_array_equal(user6["targets"], [[0], [21]])


def test_item_features_are_gathered_for_history_and_targets():
  year = np.arange(100, dtype=np.int32) + 1900
  pipeline = sequences.SequencePipeline(max_len=2, next_k=1, soft_labels=(1.0,),
                                        item_features={"year": year})
  first = _as_list(pipeline.windows(_log()))[0]
  np.testing.assert_array_equal(first["history_year"], [1900, 1910])
  np.testing.assert_array_equal(first["target_year"], [1911])


def test_batched_windows_have_static_inner_shapes():
  pipeline = sequences.SequencePipeline(max_len=5, next_k=3)
  dataset = pipeline.batched(pipeline.windows(_log()), batch_size=3, shuffle_seed=1)
  assert dataset.element_spec["history"].shape.as_list() == [None, 5]
  assert dataset.element_spec["targets"].shape.as_list() == [None, 3]
  batch = next(iter(dataset))
  assert batch["history"].shape == (3, 5) and batch["targets"].shape == (3, 3)


def test_without_leading_padding_cuts_a_batch_to_its_longest_sequence():
  pipeline = sequences.SequencePipeline(max_len=6, next_k=2, soft_labels=(1.0, 0.5))
  batch = next(iter(pipeline.sequences(_log()).batch(8)))
  assert batch["history"].shape[1] == 6
  cut = sequences.SequencePipeline.without_leading_padding(batch)
  # The longest user has 4 positives: 3 history positions, the first 3 of 6 are padding.
  np.testing.assert_array_equal(cut["history"], batch["history"][:, 3:])
  for name, value in batch.items():
    expected = value[:, 3:] if value.shape.rank >= 2 else value
    np.testing.assert_array_equal(cut[name], expected)
  empty = {"history": tf.zeros([2, 4], tf.int32), "user_index": tf.range(2)}
  assert sequences.SequencePipeline.without_leading_padding(empty)["history"].shape == (2, 4)


def test_rejects_mismatched_soft_labels():
  with pytest.raises(ValueError, match="soft_labels"):
    sequences.SequencePipeline(max_len=5, next_k=2, soft_labels=(1.0, 0.6, 0.3))
