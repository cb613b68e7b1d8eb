r"""Exports a trained model of --model_dir as a TensorFlow Serving SavedModel version.

Restores the ranker from --model_dir (params.yaml + checkpoint of tfrs-smoe-train) and, with
--retrieval_model_dir, a two-tower retriever for two-stage recommendation; writes
<--export_dir>/<version>/ atomically (signatures recommend / serving_default,
recommend_for_user, recommend_with_options and recommend_for_user_with_options (per-request k
and exclude), rank, rank_for_user, explain; the id vocabularies in assets/ and TF Serving
warm-up requests in assets.extra/; see tfrs_smoe/serving/recommender_module.py) and prints how
to serve and query it. The configs are checked whole, and a model that cannot be served, or data
that is not the run's, is refused, before anything is written.

TensorFlow's C++ logs (its import's included) are off unless TF_CPP_MIN_LOG_LEVEL is set: 0
shows them all, 2 its errors. --verbosity=0 shows absl's INFO logs.

Example:
  tfrs-smoe-export --model_dir=runs/smoe_bst --export_dir=exports/smoe_bst --k=10
  python -m tfrs_smoe.binaries.export --model_dir=runs/smoe_bst --export_dir=exports/two_stage \
      --retrieval_model_dir=runs/two_tower --num_candidates=200
"""

import sys

from absl import app
from absl import flags

from tfrs_smoe import cli
from tfrs_smoe import config as config_lib
from tfrs_smoe import experiment as experiment_lib
from tfrs_smoe import run_directory
from tfrs_smoe.data import schema
from tfrs_smoe.models import registry
from tfrs_smoe.serving import export

cli.define_flags()
flags.DEFINE_string("export_dir", None, "Base path of the exported versions (TF Serving's "
                    "base_path).")
flags.DEFINE_integer("version", None, "Version number; default: one more than the newest.")
flags.DEFINE_integer("k", 10, "Items per recommendation.")
flags.DEFINE_string("retrieval_model_dir", None, "A trained two_tower model_dir for the first "
                    "stage (optional).")
flags.DEFINE_integer("num_candidates", 100, "First-stage candidates re-ranked by the ranker.")
flags.mark_flag_as_required("export_dir")
FLAGS = flags.FLAGS


def _config(model_dir: str) -> config_lib.ExperimentConfig:
  """The config of the run in `model_dir` under the flags, checked whole."""
  config = cli.resolve_config(config_lib.load_params(model_dir), FLAGS)
  experiment_lib.check_data_source(config.data)
  return config


def _restore(config: config_lib.ExperimentConfig, model_dir: str):
  experiment = experiment_lib.Experiment(config, model_dir)
  split = experiment.prepare_data()
  return split, experiment.restore(split)


def _check_servable(config, flag: str, retriever: bool = False) -> None:
  """A UsageError, before any data is loaded, when --`flag`'s model cannot take its role."""
  spec = registry.get(config.model.name)
  able = [n for n in registry.names() if (registry.get(n).retriever if retriever
                                           else registry.get(n).servable)]
  if not (spec.retriever if retriever else spec.servable):
    role = "be the first stage" if retriever else "be served"
    raise app.UsageError(f"--{flag} holds a {spec.name} model, which cannot {role}; use a "
                         f"{' or '.join(able)} model.")


def main(argv):
  """Restores the ranker (and retriever), builds the serving module and writes its version."""
  del argv
  cli.set_up_logging()
  try:
    config = _config(FLAGS.model_dir)
    retriever_config = _config(FLAGS.retrieval_model_dir) if FLAGS.retrieval_model_dir else None
  except (FileNotFoundError, ValueError) as error:
    cli.exit_with(error)
  _check_servable(config, "model_dir")
  if retriever_config is not None:
    _check_servable(retriever_config, "retrieval_model_dir", retriever=True)
    if retriever_config.data.max_len != config.data.max_len:
      raise app.UsageError("The retriever and the ranker need the same data.max_len.")
  try:
    split, ranker = _restore(config, FLAGS.model_dir)
    retriever, retriever_split = None, None
    if retriever_config is not None:
      retriever_split, retriever = _restore(retriever_config, FLAGS.retrieval_model_dir)
  except (run_directory.DataMismatchError, schema.DataError) as error:
    cli.exit_with(error)
  module = export.build_module(split, ranker, config.data.max_len, FLAGS.k, retriever,
                               retriever_split, FLAGS.num_candidates)
  path = export.save_version(module, FLAGS.export_dir, FLAGS.version)
  print(export.serving_instructions(path, module.most_popular_ids))


def run() -> None:
  """The console script `tfrs-smoe-export`."""
  cli.run(main, __doc__, [sys.modules[__name__], cli])


if __name__ == "__main__":
  run()
