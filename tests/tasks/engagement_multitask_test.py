"""Tests of EngagementMultitask: every loss against a NumPy computation, weights and masks."""

import numpy as np
import pytest
import tensorflow as tf

from tfrs_smoe.layers import candidate_scorer
from tfrs_smoe.tasks import engagement_multitask as multitask

NUM_ITEMS = 9


def _batch(seed=0):
  rng = np.random.RandomState(seed)
  return {
      "query": rng.normal(size=[3, 4]).astype(np.float32),
      "targets": np.array([[2, 3], [4, 0], [5, 6]], np.int32),
      "target_weights": np.array([[1.0, 0.6], [1.0, 0.0], [1.0, 0.6]], np.float32),
      "target_engagement": np.array([[0.9, 0.2], [0.5, 0.0], [0.1, 1.0]], np.float32),
      "negatives": np.array([[7, 3], [8, 0], [2, 7]], np.int32),  # 3 is a hit of row 0.
      "item_table": rng.normal(size=[NUM_ITEMS, 4]).astype(np.float32),
      "completion": np.array([0.5, 0.4, 0.3], np.float32),
  }


def _task(**weights):
  config = multitask.MultitaskConfig(**{"softmax_weight": 0.0, "ctr_weight": 0.0,
                                        "hinge_weight": 0.0, "completion_weight": 0.0,
                                        **weights})
  return multitask.EngagementMultitask(config, candidate_scorer.CandidateScorer("dot"))


def _loss(task, batch):
  return float(task(batch["query"], batch["targets"], batch["target_weights"],
                    batch["target_engagement"], batch["negatives"], batch["item_table"],
                    batch["completion"]).numpy())


def _reference_parts(batch, slope=1.0, threshold=0.5):
  scores = batch["query"] @ batch["item_table"].T
  positive = np.take_along_axis(scores, batch["targets"], axis=1)
  negative = np.take_along_axis(scores, batch["negatives"], axis=1)
  weights = batch["target_weights"] * np.maximum(
      0, 1 + slope * (batch["target_engagement"] - threshold))
  hit = (batch["negatives"][:, :, None] == batch["targets"][:, None, :]).any(-1)
  valid = ((batch["negatives"] > 0) & ~hit).astype(np.float32)
  return scores, positive, negative, weights, valid


def test_engagement_weights():
  np.testing.assert_allclose(
      multitask.engagement_weights(tf.constant([0.0, 0.5, 1.0]), 2.0, 0.5).numpy(),
      [0.0, 1.0, 2.0])


def test_full_softmax_matches_numpy():
  batch = _batch()
  scores, positive, _, weights, _ = _reference_parts(batch)
  logits = scores.copy()
  logits[:, :2] = -1e9  # Padding and OOV never compete.
  lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
  expected = np.sum(weights * (lse[:, None] - positive)) / weights.sum()
  np.testing.assert_allclose(_loss(_task(softmax="full", softmax_weight=1.0), batch), expected,
                             rtol=1e-5)


def test_sampled_softmax_matches_numpy():
  batch = _batch()
  _, positive, negative, weights, valid = _reference_parts(batch)
  cross_entropy = np.zeros_like(positive)
  for row in range(3):
    competing = negative[row][valid[row] > 0]
    for k in range(2):
      logits = np.concatenate([[positive[row, k]], competing])
      cross_entropy[row, k] = np.log(np.exp(logits).sum()) - positive[row, k]
  expected = np.sum(weights * cross_entropy) / weights.sum()
  np.testing.assert_allclose(_loss(_task(softmax="sampled", softmax_weight=1.0), batch),
                             expected, rtol=1e-5)


def test_in_batch_softmax_matches_numpy():
  batch = _batch()
  _, _, _, weights, _ = _reference_parts(batch)
  pairs = [(row, k) for row in range(3) for k in range(2) if weights[row, k] > 0]
  queries = np.stack([batch["query"][row] for row, _ in pairs])
  items = np.array([batch["targets"][row, k] for row, k in pairs])
  logits = queries @ batch["item_table"][items].T
  total = 0.0
  for i, (row, k) in enumerate(pairs):
    # Candidates are the other pairs' targets, except the same row's other targets.
    keep = [j for j, (other, _) in enumerate(pairs) if other != row or j == i]
    row_logits = logits[i, keep]
    total += weights[row, k] * (np.log(np.exp(row_logits).sum()) - logits[i, i])
  expected = total / sum(weights[row, k] for row, k in pairs)
  np.testing.assert_allclose(_loss(_task(softmax="in_batch", softmax_weight=1.0), batch),
                             expected, rtol=1e-5)


def test_ctr_hinge_and_completion_match_numpy():
  batch = _batch()
  _, positive, negative, weights, valid = _reference_parts(batch)
  softplus = lambda x: np.log1p(np.exp(x))
  ctr = ((weights * softplus(-positive)).sum() + (valid * softplus(negative)).sum()) / (
      weights.sum() + valid.sum())
  pair_weights = weights[:, :, None] * valid[:, None, :]
  hinge = (pair_weights * np.maximum(0, 1 - (positive[:, :, None] - negative[:, None, :]))
           ).sum() / pair_weights.sum()
  completion = np.mean((batch["completion"] - batch["target_engagement"][:, 0]) ** 2)
  task = _task(ctr_weight=0.5, hinge_weight=0.25, completion_weight=2.0)
  np.testing.assert_allclose(_loss(task, batch), 0.5 * ctr + 0.25 * hinge + 2.0 * completion,
                             rtol=1e-5)
  logged = {metric.name: float(metric.result()) for metric in task.metrics}
  np.testing.assert_allclose([logged["loss_ctr"], logged["loss_hinge"],
                              logged["loss_completion"]], [ctr, hinge, completion], rtol=1e-5)


def test_slope_zero_weighs_every_positive_by_its_soft_label():
  batch = _batch()
  _, positive, _, _, _ = _reference_parts(batch, slope=0.0)
  task = _task(softmax="sampled", softmax_weight=0.0, ctr_weight=1.0, engagement_slope=0.0)
  batch["negatives"] = np.zeros_like(batch["negatives"])  # Only positive terms remain.
  weights = batch["target_weights"]
  expected = (weights * np.log1p(np.exp(-positive))).sum() / weights.sum()
  np.testing.assert_allclose(_loss(task, batch), expected, rtol=1e-5)


def test_in_batch_negatives_come_from_other_rows():
  positives = tf.constant([[10, 11], [20, 21], [30, 31], [40, 41]])
  negatives = multitask.in_batch_negatives(positives, 50, seed=1).numpy()
  assert negatives.shape == (4, 50)
  for row, first in enumerate([10, 20, 30, 40]):
    assert first not in negatives[row]
    assert set(negatives[row]) <= {10, 20, 30, 40}


def test_full_softmax_needs_the_dot_scorer():
  with pytest.raises(ValueError, match="dot scorer"):
    multitask.EngagementMultitask(multitask.MultitaskConfig(softmax="full"),
                                  candidate_scorer.CandidateScorer("mlp"))


@pytest.mark.parametrize("kwargs", [{"softmax": "bpr"}, {"ctr_weight": -1.0},
                                    {"num_negatives": 0}])
def test_bad_config_is_an_error(kwargs):
  with pytest.raises(ValueError):
    multitask.MultitaskConfig(**kwargs)


def _mlp_task():
  config = multitask.MultitaskConfig(softmax="sampled", engagement_slope=2.0, hinge_margin=0.5)
  return multitask.EngagementMultitask(
      config, candidate_scorer.CandidateScorer("mlp", hidden_units=(6,)), name="task")


def test_serialization_round_trip():
  task = _mlp_task()
  restored = tf.keras.utils.deserialize_keras_object(
      tf.keras.utils.serialize_keras_object(task))
  assert isinstance(restored, multitask.EngagementMultitask)
  assert restored.config == task.config
  assert restored.get_config() == task.get_config()


def test_saved_model_round_trip(tmp_path):
  batch = _batch()
  task = _mlp_task()
  names = ("query", "targets", "target_weights", "target_engagement", "negatives", "item_table",
           "completion")
  module = tf.Module()
  module.task = task
  module.loss = tf.function(
      lambda *inputs: task(*inputs),
      input_signature=[tf.TensorSpec(batch[name].shape, batch[name].dtype) for name in names])
  expected = _loss(task, batch)
  tf.saved_model.save(module, str(tmp_path / "task"))
  loaded = tf.saved_model.load(str(tmp_path / "task"))
  np.testing.assert_allclose(loaded.loss(*[batch[name] for name in names]).numpy(), expected,
                             rtol=1e-5)
