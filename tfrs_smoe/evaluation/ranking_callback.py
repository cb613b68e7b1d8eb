"""A Keras callback that adds full-ranking validation metrics to the epoch logs."""

from typing import Optional

import tensorflow as tf

from tfrs_smoe.data import examples as examples_lib
from tfrs_smoe.evaluation import full_ranking


class RankingValidation(tf.keras.callbacks.Callback):
  """Evaluates the model by full ranking every `every` epochs; logs `val_<metric>`.

  Placed before `tf.keras.callbacks.EarlyStopping(monitor="val_ndcg@10", mode="max")` in the
  callback list, it lets early stopping and best-weight restoring work on a ranking metric.
  Epochs without an evaluation repeat the last values, so a monitor never sees a gap.

  Args:
    evaluator: the `FullRankingEvaluator` to run.
    examples: the validation examples.
    every: evaluate after every `every`-th epoch (and the first).

  In training: `model.fit(dataset, epochs=20, callbacks=[callback,
  tf.keras.callbacks.EarlyStopping("val_ndcg@10", mode="max", patience=3,
  restore_best_weights=True)])`.

  Example (one epoch's end by hand, with the popularity baseline on a tiny synthetic log):
    >>> from tfrs_smoe.data import splits, synthetic
    >>> split = splits.leave_one_out(synthetic.generate_watch_log(
    ...     synthetic.SyntheticConfig(num_users=20, num_titles=30))[0])
    >>> from tfrs_smoe.models import popularity
    >>> model = popularity.PopularityModel(split.item_vocabulary.size)
    >>> model.fit_counts(split.train.item[split.train.positive])
    >>> evaluator = full_ranking.FullRankingEvaluator(split.item_vocabulary.size, ks=(10,))
    >>> callback = RankingValidation(evaluator, split.validation, every=2)
    >>> callback.set_model(model)
    >>> logs = {"loss": 1.0}
    >>> callback.on_epoch_end(0, logs)
    >>> sorted(logs)
    ['loss', 'val_mrr@10', 'val_ndcg@10', 'val_recall@10']
  """

  def __init__(self, evaluator: full_ranking.FullRankingEvaluator,
               examples: examples_lib.EvalExamples, every: int = 1):
    super().__init__()
    if every < 1:
      raise ValueError(f"every must be >= 1, got {every}.")
    self.evaluator = evaluator
    self.examples = examples
    self.every = every
    self.history = []
    self._last: Optional[dict] = None

  def on_epoch_end(self, epoch, logs=None):
    if self._last is None or (epoch + 1) % self.every == 0:
      metrics = self.evaluator.evaluate(self.model, self.examples)
      self._last = {f"val_{name}": value for name, value in metrics.items()
                    if name != "num_examples"}
      self.history.append((epoch, dict(self._last)))
    if logs is not None:
      logs.update(self._last)
