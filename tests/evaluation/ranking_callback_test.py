"""Tests of RankingValidation: logged metrics and evaluation cadence.

Its use by early stopping is tested in experiment_test.
"""

import numpy as np
import pytest

from tfrs_smoe.data.examples import EvalExamples, RaggedArray
from tfrs_smoe.evaluation.full_ranking import FullRankingEvaluator
from tfrs_smoe.evaluation.ranking_callback import RankingValidation
from tfrs_smoe.models.popularity import PopularityModel


def _examples():
  histories = [[2], [3]]
  return EvalExamples(
      user_index=np.arange(2, dtype=np.int32), target=np.array([4, 5], np.int32),
      target_engagement=np.ones([2], np.float32), target_timestamp=np.zeros([2], np.int64),
      history=RaggedArray.from_rows(histories, np.int32),
      history_timestamps=RaggedArray.from_rows(histories, np.int64),
      abandoned=RaggedArray.from_rows([[], []], np.int32),
      seen=RaggedArray.from_rows(histories, np.int32))


def _callback(model, every):
  callback = RankingValidation(FullRankingEvaluator(num_items=6, ks=(1, 5), max_len=3),
                               _examples(), every=every)
  callback.set_model(model)
  return callback


def test_logs_validation_metrics_every_n_epochs_and_repeats_them_between():
  model = PopularityModel(num_items=6)
  model.fit_counts(np.array([4, 4, 4, 5, 5]))  # Targets 4 and 5 rank first and second.
  callback = _callback(model, every=2)
  logs = {}
  callback.on_epoch_end(0, logs)  # The first epoch is always evaluated.
  np.testing.assert_allclose([logs["val_ndcg@1"], logs["val_ndcg@5"]],
                             [0.5, (1 + 1 / np.log2(3)) / 2])
  model.fit_counts(np.array([2, 3]))  # Now both targets tie with each other below 2 and 3.
  logs = {}
  callback.on_epoch_end(2, logs)  # Not a multiple of 2: the last values are repeated.
  assert logs["val_ndcg@1"] == 0.5
  callback.on_epoch_end(3, logs)
  assert logs["val_ndcg@1"] < 0.5
  assert [epoch for epoch, _ in callback.history] == [0, 3]


def test_every_must_be_positive():
  with pytest.raises(ValueError):
    _callback(PopularityModel(num_items=6), every=0)
