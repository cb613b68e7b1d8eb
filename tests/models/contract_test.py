"""Tests of the model contract: which models evaluation and serving accept, and the message."""

import numpy as np
import pytest
import tensorflow as tf

from tfrs_smoe.models import contract
from tfrs_smoe.models import popularity
from tfrs_smoe.models import smoe_bst
from tfrs_smoe.models import two_tower
from tfrs_smoe.tasks import engagement_multitask

_TABLES = {"genres": np.zeros([7, 1], np.int32), "year_bucket": np.zeros([7], np.int32)}
_ENCODER = smoe_bst.SMoEBSTConfig(item_dim=8, genre_dim=4, year_dim=4, user_dim=4,
                                  expert_windows=(2, 0), num_blocks=1, feed_forward_dim=8)


def test_trained_rankers_meet_the_serving_contract_and_popularity_does_not():
  ranker = smoe_bst.SMoEBST(7, 3, _TABLES, _ENCODER, engagement_multitask.MultitaskConfig(),
                            max_len=4)
  ranker.initialize()
  retriever = two_tower.TwoTower(7, 3, _TABLES, _ENCODER, two_tower.TwoTowerConfig(), max_len=4)
  counted = popularity.PopularityModel(num_items=7)
  for model in (ranker, retriever):
    assert isinstance(model, contract.ServableRanker)
    contract.require_servable(model)
  assert isinstance(counted, contract.Ranker)
  assert not isinstance(counted, contract.ServableRanker)
  features = {"history": tf.constant([[0, 0, 2, 3]]), "user_index": tf.constant([1])}
  # The contract's two catalogue paths agree: call == score_catalogue(item_table()).
  np.testing.assert_allclose(ranker.score_catalogue(features, ranker.item_table()),
                             ranker(features), rtol=1e-5, atol=1e-6)


def test_require_servable_names_the_model_and_what_it_lacks():
  with pytest.raises(TypeError, match=r"popularity cannot be served: it lacks item_table, "
                     r"score_catalogue of the ServableRanker contract"):
    contract.require_servable(popularity.PopularityModel(num_items=7), "popularity")
  with pytest.raises(TypeError, match="object cannot be served"):
    contract.require_servable(object())


def test_build_module_refuses_a_model_outside_the_serving_contract():
  # pylint: disable=g-import-not-at-top
  from tfrs_smoe.serving import export
  with pytest.raises(TypeError, match="PopularityModel cannot be served"):
    export.build_module(None, popularity.PopularityModel(num_items=7), max_len=4)
