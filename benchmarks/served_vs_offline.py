r"""Served vs offline metrics: the exported recommender against `Experiment.evaluate`.

Restores a run of experiments/train.py (--model_dir), exports it (`export.build_module` +
`export.save_version`, into --export_dir or a temporary directory), loads the SavedModel back
with `tf.saved_model.load` as a server would, and sends every evaluation user of --split as a
streaming service would: the WHOLE history as raw item ids, oldest first, with the user id,
through `recommend_for_user_with_options` (--signature=recommend_with_options sends no user id;
a model with a user embedding then scores differently from offline). NDCG, Recall and MRR at
the run's eval.ks come from the returned top-k, and are printed next to the offline full-ranking
metrics of the same users (`Experiment.evaluate(...)["full_ranking"]`).

Both sides follow the same rules. The user's history is excluded (offline by the evaluator, served
by the export), and ties count in expectation over a random order (`metrics.ranking_metrics` of
the items above and level with the target, counted from the returned scores). Each user is first
asked for max(--k, max(ks) + 1) items; where the returned list cannot settle that count (the
target ties with the last returned item, or is not returned while the last two returned items
tie), the user is asked again with k = the whole catalogue. A target the user already consumed
competes offline but is never served (the export excludes the history): such users are counted,
and score 0 on the served side.

  python benchmarks/served_vs_offline.py --model_dir=runs/smoe_bst --split=test --k=10
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

# pylint: disable=g-import-not-at-top,wrong-import-position
import dataclasses
import tempfile
from typing import Callable, Dict, Optional, Sequence, Tuple

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

import machine
from tfrs_smoe import config as config_lib
from tfrs_smoe import experiment as experiment_lib
from tfrs_smoe.evaluation import metrics as metrics_lib
from tfrs_smoe.serving import export

SIGNATURES = ("recommend_for_user_with_options", "recommend_with_options")
FLAGS = flags.FLAGS
# (item_ids [batch, k] str, scores [batch, k] float) of histories [batch, length] str, user ids
# [batch] str (or None) and k.
RecommendFn = Callable[[np.ndarray, Optional[np.ndarray], int], Tuple[np.ndarray, np.ndarray]]


def served_rank_counts(item_ids: Sequence[str], scores: Sequence[float], target: str,
                       max_k: int, complete: bool = False) -> Optional[Tuple[int, int]]:
  """(greater, ties) of `target` among one returned top-k, or None when it cannot tell.

  Args:
    item_ids: [k] returned ids, best first; "" marks an empty slot (fewer items were left).
    scores: [k] their scores.
    target: the held-out item's raw id.
    max_k: the largest metric cutoff; a target certainly ranked below it needs no exact count.
    complete: the list holds every item the server could return (requested with k = the
      catalogue); an empty slot implies it too.

  Returns:
    The number of returned items scoring above the target and level with it (the target
    excluded), as `metrics.rank_counts` counts them over the catalogue, or counts that put it
    below max_k when it certainly is; None when an item left out of the list may still be
    above or level with it, and when a complete list does not hold it (it is not eligible).

  Example:
    >>> print(served_rank_counts(["a", "b", "c"], [3.0, 2.0, 2.0], "b", max_k=3))  # More ties?
    None
    >>> served_rank_counts(["a", "b", "c"], [3.0, 2.0, 1.0], "b", max_k=3)
    (1, 0)
  """
  item_ids = np.asarray(item_ids).astype(str)
  scores = np.asarray(scores, np.float64)
  returned = item_ids != ""
  complete = complete or not returned.all()
  item_ids, scores = item_ids[returned], scores[returned]
  hits = np.flatnonzero(item_ids == target)
  if hits.size:
    score = scores[hits[0]]
    if not complete and scores[-1] >= score:  # Items not returned may tie with the target.
      return None
    return int(np.sum(scores > score)), int(np.sum(scores == score)) - 1
  if complete or not scores.size:
    return None
  # Not returned: the target scores at most the last returned score, so at least the items
  # above that score are above the target. Enough of them settle every metric at 0.
  above_last = int(np.sum(scores > scores[-1]))
  return (above_last, 0) if above_last >= max_k else None


def _padded(rows):
  width = max((len(row) for row in rows), default=0)
  out = np.full([len(rows), max(width, 1)], "", dtype=object)
  for i, row in enumerate(rows):
    out[i, :len(row)] = row
  return out


def served_metrics(recommend: RecommendFn, split, subset: str, ks: Sequence[int], k: int,
                   with_user_ids: bool = True, batch_size: int = 256) -> Dict[str, float]:
  """Metrics of the served recommendations for every example of `split.<subset>`.

  Args:
    recommend: calls the served signature (see `saved_model_recommend`).
    split: the run's `Split`.
    subset: "validation" or "test".
    ks: metric cutoffs.
    k: items per first request; at least max(ks) + 1 are asked for.
    with_user_ids: send each user's raw id.
    batch_size: users per request.

  Returns:
    "ndcg@k", "recall@k", "mrr@k" means, "num_examples", "target_in_history" (users whose
    target is in their own history, which the server never returns) and "re_requested" (users
    asked again with the whole catalogue to settle a tie).
  """
  ks = metrics_lib.validate_ks(ks)
  max_k = max(ks)
  # One more than the largest cutoff: a target left out of the list is then certainly below
  # it, unless the last two returned items tie.
  k = max(k, max_k + 1)
  examples = getattr(split, subset)
  items, users = split.item_vocabulary, split.user_vocabulary
  histories = [items.to_ids(examples.history.row(i)) for i in range(len(examples))]
  user_ids = users.to_ids(examples.user_index) if with_user_ids else None
  targets = items.to_ids(examples.target)
  catalogue = items.size - metrics_lib.NUM_RESERVED_ITEMS

  def request(rows, request_k, complete):
    counts = {}
    for start in range(0, len(rows), batch_size):
      batch = rows[start:start + batch_size]
      returned, scores = recommend(_padded([histories[i] for i in batch]),
                                   None if user_ids is None else user_ids[batch], request_k)
      for row, row_ids, row_scores in zip(batch, returned, scores):
        counts[row] = served_rank_counts(row_ids, row_scores, targets[row], max_k, complete)
    return counts

  counts = request(list(range(len(examples))), k, complete=False)
  unsettled = [row for row, value in counts.items() if value is None]
  counts.update(request(unsettled, catalogue, complete=True))
  # Not even in the whole catalogue's list: the target is one of the history's, never served.
  greater, ties = (np.array(values, np.int32) for values in zip(
      *[(catalogue, 0) if counts[row] is None else counts[row] for row in range(len(examples))]))
  results = {name: float(np.mean(value.numpy().astype(np.float64)))
             for name, value in metrics_lib.ranking_metrics(greater, ties, ks).items()}
  return {**results, "num_examples": len(examples),
          "target_in_history": targets_in_history(split, subset), "re_requested": len(unsettled)}


def saved_model_recommend(path: str, signature: str = SIGNATURES[0]) -> RecommendFn:
  """A `RecommendFn` over `signature` of the SavedModel at `path`, loaded as a server would."""
  function = tf.saved_model.load(path).signatures[signature]
  no_exclusions = tf.constant([], tf.string)

  def recommend(histories, user_ids, k):
    inputs = {"history": tf.constant(histories, tf.string), "k": tf.constant(k, tf.int32),
              "exclude": no_exclusions}
    if user_ids is not None:
      inputs["user_id"] = tf.constant(user_ids, tf.string)
    outputs = function(**inputs)
    return outputs["item_ids"].numpy().astype(str), outputs["scores"].numpy()

  return recommend


def targets_in_history(split, subset: str) -> int:
  """Examples of `split.<subset>` whose target is among their own history's items."""
  examples = getattr(split, subset)
  return sum(int(examples.target[i] in examples.history.row(i)) for i in range(len(examples)))


def restore_run(model_dir: str):
  """(experiment, split, model) of a run of experiments/train.py, PHNS test switched off."""
  config = config_lib.load_params(model_dir)
  config = dataclasses.replace(config, eval=dataclasses.replace(config.eval, phns_test=False))
  experiment = experiment_lib.Experiment(config, model_dir)
  split = experiment.prepare_data()
  return experiment, split, experiment.restore(split)


def compare(experiment, split, model, subset: str, k: int, export_dir: str,
            signature: str = SIGNATURES[0]) -> Dict[str, Dict[str, float]]:
  """Exports `model` to `export_dir` and returns {"served": ..., "offline": ...} metrics."""
  module = export.build_module(split, model, experiment.config.data.max_len, k)
  path = export.save_version(module, export_dir)
  served = served_metrics(saved_model_recommend(path, signature), split, subset,
                          experiment.config.eval.ks, k,
                          with_user_ids=signature == "recommend_for_user_with_options")
  offline = experiment.evaluate(model, split, subset)["full_ranking"]
  return {"served": served, "offline": offline, "export": path}


def table_rows(results: Dict[str, Dict[str, float]], ks: Sequence[int]):
  """One row per metric: served, offline and their difference."""
  return [{"metric": name, "served": results["served"][name],
           "offline": results["offline"][name],
           "difference": results["served"][name] - results["offline"][name]}
          for name in metrics_lib.metric_names(ks)]


def _define_flags():
  flags.DEFINE_string("model_dir", None, "A run of experiments/train.py.")
  flags.DEFINE_enum("split", "test", ["test", "validation"], "Users to evaluate.")
  flags.DEFINE_integer("k", 10, "The export's default k, and the items per first request "
                       "(at least max(eval.ks) + 1 are asked for).")
  flags.DEFINE_string("export_dir", None, "Export base path; default: a temporary directory.")
  flags.DEFINE_enum("signature", SIGNATURES[0], SIGNATURES, "The served signature.")
  flags.DEFINE_string("output", "", "JSON output path (optional).")
  flags.mark_flag_as_required("model_dir")


def main(argv):
  del argv
  experiment, split, model = restore_run(FLAGS.model_dir)
  with tempfile.TemporaryDirectory() as directory:
    results = compare(experiment, split, model, FLAGS.split, FLAGS.k,
                      FLAGS.export_dir or os.path.join(directory, "served"), FLAGS.signature)
  served = results["served"]
  machine.report(
      f"Served ({FLAGS.signature}, whole histories as raw ids) vs offline full ranking, "
      f"{experiment.config.model.name} of {FLAGS.model_dir} on {experiment.config.data.dataset} "
      f"{FLAGS.split}",
      [("metric", "metric", "s"), ("served", "served", ".6f"), ("offline", "offline", ".6f"),
       ("served - offline", "difference", ".1e")],
      table_rows(results, experiment.config.eval.ks), FLAGS.output,
      extra={"counts": {key: served[key] for key in
                        ("num_examples", "target_in_history", "re_requested")}})
  print(f"users: {served['num_examples']} served, {results['offline']['num_examples']} offline; "
        f"target in their own history (never served): {served['target_in_history']}; asked "
        f"again with the whole catalogue to settle a tie: {served['re_requested']}")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
