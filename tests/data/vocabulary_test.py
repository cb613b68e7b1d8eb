"""Tests of the id vocabulary and its agreement with the in-graph StringLookup."""

import numpy as np
import pytest
import tensorflow as tf

from tfrs_smoe.data import vocabulary


def test_reserved_indices_and_sorted_ids():
  vocab = vocabulary.IdVocabulary(["m", "b", "x"])
  assert vocab.size == 5
  np.testing.assert_array_equal(vocab.lookup(["b", "m", "x", "nope", ""]), [2, 3, 4, 1, 0])
  np.testing.assert_array_equal(vocab.to_ids([0, 1, 2, 4]), ["", "[UNK]", "b", "x"])


def test_keras_lookup_matches_numpy_lookup():
  vocab = vocabulary.IdVocabulary([str(i) for i in range(50)])
  queries = np.array(["3", "49", "", "unknown", "10", "7"])
  graph = vocab.keras_lookup()(tf.constant(queries)).numpy()
  np.testing.assert_array_equal(graph, vocab.lookup(queries))


@pytest.mark.parametrize("ids, message", [(["a", "a"], "distinct"), (["a", ""], "padding")])
def test_rejects_bad_ids(ids, message):
  with pytest.raises(ValueError, match=message):
    vocabulary.IdVocabulary(ids)
