"""Named variants and variant sets of the comparisons, registered in one place.

A variant is one trained configuration: a model of `models.registry` with config overrides
(PHNS on, no multitask heads, the streaming correction, ...). A variant set is the list of
variants one comparison trains, with how its table and run directories look; `experiments/
sweep.py --variant_set=NAME` trains every variant of a set over data sets and seeds (the shape
of TF Model Garden's registered experiment configs: `register`, `get`, `names`). The older
binaries `model_comparison.py`, `phns_ablation.py`, `retrieval_comparison.py` and `report.py`
are that sweep over the sets "models", "phns", "retrieval" and "report".

A variant's config is built in a fixed order (`resolve`): defaults <- the data set's settings
(data set, protocol, location) <- `--dataset_params_override` of that data set <- the set's
`overrides` <- the variant's model and `overrides` <- the seed (also the PHNS sampling seed) <-
`--params_override`. So a variant's switch wins over a data set's setting of the same field
(e.g. next_k of smoe_bst_next_k_3), and `--params_override` wins over everything.

Example:
  >>> from tfrs_smoe import variants
  >>> variants.names()
  ('models', 'phns', 'retrieval', 'report', 'next_k', 'max_len')
  >>> [v.name for v in variants.get("models").variants]
  ['popularity', 'bst', 'smoe_bst', 'sasrec']
  >>> config = variants.resolve(variants.get("phns"), "hard", {"dataset": "streaming_logs"},
  ...                           seed=1)
  >>> config.model.name, config.train.phns.preset, config.train.phns.seed
  ('smoe_bst', 'hard', 1)
"""

import copy
import dataclasses
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from tfrs_smoe import config as config_lib
from tfrs_smoe.models import registry as model_registry
from tfrs_smoe.tasks import engagement_multitask

# The columns of a quality table: next-item ranking quality at the head of the list.
RANKING_COLUMNS = ("ndcg@1", "ndcg@5", "ndcg@10", "recall@5", "recall@10", "mrr@5")
# Fields of the `run_dir` and `run_key` formats; see `VariantSet`.
FORMAT_FIELDS = ("data", "dataset", "dataset_dir", "protocol", "variant", "seed")


@dataclasses.dataclass(frozen=True)
class Variant:
  """One trained configuration of a comparison.

  Attributes:
    name: the variant's name in its set: the table's label and its run directories' prefix.
    model: a model name of `models.registry` ("popularity", "bst", "smoe_bst", "two_tower",
      "sasrec").
    overrides: nested config overrides of the variant (as `--params_override`), applied over
      the data set's and the set's; a model name in them is an error (use `model`).
    description: one line: what the variant switches on or off.
  """

  name: str
  model: str
  overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  description: str = ""

  @property
  def deterministic(self) -> bool:
    """Whether the model learns without randomness (counted): it runs once, with seed 0."""
    return model_registry.get(self.model).training == "counted"


@dataclasses.dataclass(frozen=True)
class VariantSet:
  """A named comparison: its variants and the shape of its outputs.

  Attributes:
    name: the set's name (`--variant_set`).
    description: one line: what the comparison answers.
    variants: the variants, in table order; names unique in the set.
    columns: the metrics of the table, per evaluation protocol.
    label: header of the table's variant column ("model", "PHNS", "correction", "variant").
    stem: file name of the outputs: <stem>.md / .json / .png over every data set, or
      <stem>_<data set>.md / .json / _metrics.png ... with `per_dataset`.
    per_dataset: one report per data set (as the quality report: table, metric, gate and
      validation-curve plots, and a README section of its own) instead of one table over all
      data sets.
    show_protocol: the table has a protocol column and several protocols may run; without it
      the set runs one protocol.
    protocols: the protocols run when the sweep names none: "default" (engagement for the
      embedded default, implicit for MovieLens), "implicit", "engagement".
    overrides: config overrides of every variant of the set, under each variant's own.
    run_dir: format of a run's directory under the output directory, from the fields
      data (the --datasets key), dataset (the config's data set), dataset_dir (the same with
      "/" as "_"), protocol, variant and seed.
    run_key: format of a variant's key in the .json outputs (same fields, without seed).
    plot: with one table over all data sets: also <stem>.png, NDCG@1 per variant under full
      ranking beside the PHNS test, one panel per data set.
    readme_section: name of the README section(s) the sweep writes with --readme: the text
      between `<!-- begin NAME -->` and `<!-- end NAME -->`, with " <data set>" appended per
      data set under `per_dataset`.
    pairs: (variant, baseline) pairs whose paired per-user differences the report discusses;
      given to `Sweep`'s `pair_comparison` hook when both ran.
  """

  name: str
  description: str
  variants: Tuple[Variant, ...]
  columns: Tuple[str, ...] = RANKING_COLUMNS
  label: str = "variant"
  stem: str = ""
  per_dataset: bool = False
  show_protocol: bool = True
  protocols: Tuple[str, ...] = ("default",)
  overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  run_dir: str = "{dataset_dir}/{variant}_{protocol}_seed{seed}"
  run_key: str = "{dataset}/{protocol}/{variant}"
  plot: bool = False
  readme_section: str = ""
  pairs: Tuple[Tuple[str, str], ...] = ()

  def __post_init__(self):
    names = [variant.name for variant in self.variants]
    if not names or len(set(names)) != len(names):
      raise ValueError(f"Variant set {self.name!r} needs variants with distinct names, got "
                       f"{names}.")
    for variant in self.variants:
      model_registry.get(variant.model)  # A ValueError listing the models for a typo.
      if "name" in variant.overrides.get("model", {}):
        raise ValueError(f"Variant {self.name}/{variant.name}: set the model with `model`, not "
                         "in overrides.")
    for first, second in self.pairs:
      if first not in names or second not in names:
        raise ValueError(f"Variant set {self.name!r}: pair ({first}, {second}) names a variant "
                         f"outside the set; its variants: {', '.join(names)}.")
    for field_name, fields in (("run_dir", FORMAT_FIELDS), ("run_key", FORMAT_FIELDS[:-1])):
      try:
        getattr(self, field_name).format(**{f: "x" for f in fields})
      except (KeyError, IndexError) as error:
        raise ValueError(f"Variant set {self.name!r}: {field_name} may use only "
                         f"{{{'}, {'.join(fields)}}}, got {getattr(self, field_name)!r}."
                         ) from error
    if not self.show_protocol and len(self.protocols) != 1:
      raise ValueError(f"Variant set {self.name!r} shows no protocol, so it runs one; got "
                       f"{list(self.protocols)}.")
    if not self.stem:
      object.__setattr__(self, "stem", self.name)
    if not self.readme_section:
      object.__setattr__(self, "readme_section", f"experiments/sweep.py {self.name}")

  def variant(self, name: str) -> Variant:
    """The variant `name`; a ValueError listing the set's variants for an unknown one."""
    for variant in self.variants:
      if variant.name == name:
        return variant
    raise ValueError(f"Unknown variant {name!r} in variant set {self.name!r}; use "
                     f"{', '.join(v.name for v in self.variants)}.")

  def select(self, names: Optional[Sequence[str]] = None) -> "VariantSet":
    """This set with only the variants `names` (all when None or empty), in that order;
    pairs keep those whose both variants stay."""
    if not names:
      return self
    chosen = tuple(self.variant(name) for name in names)
    kept = {v.name for v in chosen}
    return dataclasses.replace(self, variants=chosen,
                               pairs=tuple(p for p in self.pairs if set(p) <= kept))

  def with_model(self, model: str) -> "VariantSet":
    """This set with every variant training `model` (e.g. the PHNS presets on BST)."""
    return dataclasses.replace(self, variants=tuple(
        dataclasses.replace(v, model=model) for v in self.variants))


def _merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> Dict[str, Any]:
  """`base` with `update` merged in, nested mappings key by key (copies; inputs unchanged)."""
  merged = copy.deepcopy(dict(base))
  for key, value in update.items():
    if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
      merged[key] = _merge(merged[key], value)
    else:
      merged[key] = copy.deepcopy(value)
  return merged


def resolve(variant_set: VariantSet, variant: str, data: Mapping[str, Any], seed: int = 0,
            dataset_overrides: Optional[Mapping[str, Any]] = None,
            params_override: str = "") -> config_lib.ExperimentConfig:
  """The `ExperimentConfig` of one run of a variant, built in the order of the module docstring.

  Args:
    variant_set: the set holding the variant.
    variant: the variant's name in that set.
    data: `DataConfig` overrides of the data set (`reporting.data_configs`).
    seed: the run's seed, also the seed of its PHNS sampling (so the runs of one setting are
      the same runs in every set and --resume shares them).
    dataset_overrides: `--dataset_params_override` of this data set.
    params_override: `--params_override` (YAML/JSON text or a file), applied last.

  Raises:
    ValueError: for an unknown variant, or overrides naming unknown config keys or values of
      the wrong type.
  """
  chosen = variant_set.variant(variant)
  config = config_lib.apply_overrides(config_lib.ExperimentConfig(), {"data": dict(data)})
  config = config_lib.apply_overrides(config, dict(dataset_overrides or {}))
  overrides = _merge(_merge(variant_set.overrides, {"model": {"name": chosen.model}}),
                     chosen.overrides)
  config = config_lib.apply_overrides(config, {**overrides, "seed": seed},
                                      f"{variant_set.name}/{variant}: ")
  config = config_lib.apply_overrides(config, {"train": {"phns": {"seed": seed}}})
  return config_lib.override(config, params_override)


_REGISTRY: Dict[str, VariantSet] = {}


def register(variant_set: VariantSet) -> VariantSet:
  """Adds `variant_set` under its name; a name is registered once."""
  if variant_set.name in _REGISTRY:
    raise ValueError(f"A variant set named {variant_set.name!r} is registered already.")
  _REGISTRY[variant_set.name] = variant_set
  return variant_set


def names() -> Tuple[str, ...]:
  """The registered variant set names, in registration order."""
  return tuple(_REGISTRY)


def get(name: str) -> VariantSet:
  """The variant set `name`; a ValueError listing the registered sets for an unknown one."""
  if name not in _REGISTRY:
    raise ValueError(f"Unknown variant set {name!r}; available: {', '.join(_REGISTRY)}.")
  return _REGISTRY[name]


_POPULARITY = Variant("popularity", "popularity", description="most popular training positives")
_BST = Variant("bst", "bst", description="BST: one expert over the whole history")
_SMOE_BST = Variant("smoe_bst", "smoe_bst", description="S-MoE-BST with its defaults")
_SASREC = Variant("sasrec", "sasrec", description="SASRec with full softmax cross-entropy")
# Retrieval trains on many more (history, next item) pairs than there are sequences, and its
# in-batch softmax wants large batches.
_TWO_TOWER_TRAIN = {"batch_size": 512, "epochs": 20}

register(VariantSet(
    "models", "popularity, BST, S-MoE-BST and SASRec on the same split",
    (_POPULARITY, _BST, _SMOE_BST, _SASREC), label="model", stem="model_comparison",
    pairs=(("smoe_bst", "sasrec"), ("smoe_bst", "bst"))))

# PHNS negatives reach S-MoE-BST through the paper's CTR and hinge terms, which its default
# task (the softmax alone) leaves out.
_PAPER_TASK = {"model": {"task": dict(engagement_multitask.PAPER_MULTITASK)}}

register(VariantSet(
    "phns", "the paper's PHNS ablation: training negatives none / EASY / MEDIUM / HARD, with "
    "the paper's multitask loss",
    tuple(Variant(preset, "smoe_bst", {"train": {"phns": {"preset": preset}}, **_PAPER_TASK},
                  f"PHNS preset {preset}") for preset in ("none", "easy", "medium", "hard")),
    columns=("ndcg@1", "ndcg@5", "recall@5", "mrr@5"), label="PHNS", stem="phns_ablation",
    show_protocol=False, protocols=("engagement",), run_dir="{data}/{variant}_seed{seed}",
    run_key="{dataset}|{variant}", plot=True,
    pairs=(("easy", "none"), ("medium", "none"), ("hard", "none"))))

register(VariantSet(
    "retrieval", "two-tower retrieval without and with sampling-bias (logQ) correction",
    tuple(Variant(correction, "two_tower", {"model": {"two_tower": {"correction": correction}}},
                  f"two-tower, correction {correction}")
          for correction in ("none", "counts", "streaming")),
    columns=("recall@10", "recall@50", "recall@100", "ndcg@10"), label="correction",
    stem="retrieval_comparison",
    # Recall@10 is what the paper reports.
    overrides={"train": {**_TWO_TOWER_TRAIN, "monitor": "recall@10"},
               "eval": {"ks": [1, 5, 10, 50, 100], "phns_test": False}},
    pairs=(("counts", "none"), ("streaming", "none"))))

register(VariantSet(
    "report", "the quality report: every model and S-MoE-BST component",
    (_POPULARITY,
     Variant("two_tower_none", "two_tower", {"model": {"two_tower": {"correction": "none"}},
                                             "train": _TWO_TOWER_TRAIN},
             "two-tower, plain in-batch softmax"),
     Variant("two_tower_streaming", "two_tower",
             {"model": {"two_tower": {"correction": "streaming"}}, "train": _TWO_TOWER_TRAIN},
             "two-tower, logQ from the streaming frequency estimator"),
     _BST, _SMOE_BST,
     Variant("smoe_bst_phns", "smoe_bst", {"train": {"phns": {"preset": "medium"}},
                                           **_PAPER_TASK},
             "S-MoE-BST trained with PHNS (MEDIUM) and the paper's multitask loss"),
     Variant("smoe_bst_paper_task", "smoe_bst", _PAPER_TASK,
             "S-MoE-BST with the paper's multitask loss (CTR, hinge, completion, engagement "
             "weights) instead of the softmax alone"),
     Variant("smoe_bst_next_k_3", "smoe_bst",
             {"data": {"next_k": 3, "soft_labels": [1.0, 0.6, 0.3]},
              "model": {"task": {"next_k_mode": "joint"}}},
             "S-MoE-BST trained on the next 3 items jointly (the paper's soft labels)"),
     Variant("smoe_bst_max_len_200", "smoe_bst", {"data": {"max_len": 200}},
             "S-MoE-BST seeing the last 200 items"),
     _SASREC,
     Variant("sasrec_max_len_200", "sasrec", {"data": {"max_len": 200}},
             "SASRec seeing the last 200 items")),
    stem="report", per_dataset=True, show_protocol=False,
    run_dir="{dataset_dir}/{variant}_seed{seed}",
    run_key="{dataset}/{variant}", readme_section="experiments/report.py",
    # The PHNS run against the same (paper's) task without the negatives: PHNS reaches the
    # model through that task's CTR and hinge terms.
    pairs=(("smoe_bst", "sasrec"), ("smoe_bst", "bst"), ("smoe_bst_phns", "smoe_bst_paper_task"),
           ("smoe_bst_paper_task", "smoe_bst"), ("smoe_bst_next_k_3", "smoe_bst"),
           ("smoe_bst_max_len_200", "smoe_bst"), ("sasrec_max_len_200", "sasrec"))))

register(VariantSet(
    "next_k", "S-MoE-BST on the next item only, and on the next 3 items jointly or as an "
    "auxiliary head",
    (Variant("next_k_1", "smoe_bst", {"data": {"next_k": 1, "soft_labels": [1.0]}},
             "the next item only"),
     Variant("next_k_3_joint", "smoe_bst",
             {"data": {"next_k": 3, "soft_labels": [1.0, 0.6, 0.3]},
              "model": {"task": {"next_k_mode": "joint"}}},
             "next 3 items, one user vector for all (the paper's)"),
     Variant("next_k_3_auxiliary", "smoe_bst",
             {"data": {"next_k": 3, "soft_labels": [1.0, 0.6, 0.3]},
              "model": {"task": {"next_k_mode": "auxiliary", "next_k_weight": 0.2}}},
             "next item in the main terms, items 2-3 through a separate head (weight 0.2)")),
    label="next-K", stem="next_k", per_dataset=True, show_protocol=False,
    run_dir="{dataset_dir}/{variant}_seed{seed}", run_key="{dataset}/{variant}",
    pairs=(("next_k_3_auxiliary", "next_k_1"), ("next_k_3_joint", "next_k_1"))))

register(VariantSet(
    "max_len", "BST, S-MoE-BST and SASRec seeing the last 50 and the last 200 items",
    tuple(Variant(f"{model}_max_len_{max_len}", model, {"data": {"max_len": max_len}},
                  f"{model} at max_len {max_len}")
          for model in ("bst", "smoe_bst", "sasrec") for max_len in (50, 200)),
    per_dataset=True, show_protocol=False, run_dir="{dataset_dir}/{variant}_seed{seed}",
    run_key="{dataset}/{variant}",
    pairs=tuple((f"{model}_max_len_200", f"{model}_max_len_50")
                for model in ("bst", "smoe_bst", "sasrec"))))
