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


@pytest.mark.parametrize("ids, message", [(["a", "a"], "distinct"), (["a", ""], "padding"),
                                         (["a", "b\nc"], "line breaks")])
def test_rejects_bad_ids(ids, message):
  with pytest.raises(ValueError, match=message):
    vocabulary.IdVocabulary(ids)


def test_written_file_reads_back_and_initialises_a_graph_table_with_the_same_indices(tmp_path):
  vocab = vocabulary.IdVocabulary(["tt9", "café", "a b", "12"])
  path = vocab.write(str(tmp_path / "vocab" / "item_ids.txt"))
  with open(path, encoding="utf-8") as f:
    assert f.read() == "12\na b\ncafé\ntt9\n"  # Index order, one id a line.
  assert vocabulary.IdVocabulary.read(path) == vocab
  assert vocabulary.IdVocabulary.read(path) != vocabulary.IdVocabulary(["12"])
  table = tf.lookup.StaticHashTable(
      tf.lookup.TextFileInitializer(path, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                                    tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER,
                                    value_index_offset=vocabulary.NUM_RESERVED),
      default_value=vocabulary.OOV_INDEX)
  queries = ["café", "tt9", "zz", "12", "a b"]
  np.testing.assert_array_equal(table.lookup(tf.constant(queries)).numpy(),
                                vocab.lookup(queries))


def test_reading_a_file_out_of_index_order_is_an_error(tmp_path):
  path = tmp_path / "ids.txt"
  path.write_text("b\na\n", encoding="utf-8")
  with pytest.raises(ValueError, match="not in index order"):
    vocabulary.IdVocabulary.read(str(path))
