"""What every figure and table of the experiments shares: one colour per method, human axis labels
with units, readable log-scale ticks, and "mean ± std" text that says "n/a" for one seed.

Colours. A method keeps its colour in every figure of every job and notebook: `method_color` takes
a bare method name (``'lr_rewind'``), a pruning arm (``'global_magnitude:lr_rewind@5'``: the colour
of its retraining method; the pruner is drawn as a line style) or a robust method spec
(``'trades:beta=6'``: the colour of ``trades``; specs of one method differ by marker). Three
families, each with its own distinct colours:

* pruning (retraining methods of `lipprune.sparsity`): the colour-blind-safe palette of Renda et
  al.'s plotting code (vision/plot/common.py ``color_of_method``) for the three it draws, and the
  Okabe-Ito blue for ``reinit``;
* robust training (`lipprune.robust.METHODS`): matplotlib's ``tab10``, in that list's order;
* fairness models (`lipprune.fairness.training.METHODS`, plus the report's ``compas_score`` and
  ``baseline_blind`` rows): ``tab10`` as well (the colours experiments/fairness.py used); the
  COMPAS tool itself is grey.

A name appears in one family only, so one dictionary (`METHOD_COLORS`) serves all figures.

Labels. `metric_label` maps a metric key of the result rows (``test_lipschitz``, ``test_di``...) to
``'local Lipschitz constant (empirical)'``, ``'disparate impact ratio (1 = parity)'``..., and
`metric_scale` gives the factor the plotted values take for that unit (100 for percentages).

Ticks. `compression_axis` puts a compression ratio on a base-2 log scale labelled ``1x, 2x, 4x``;
`log_axis` labels any other log axis with plain numbers (``0.5, 1, 2, 5, 10``) instead of powers
of ten (``2x10^0``).

matplotlib is imported only by the functions that draw, so that importing lipprune stays light.
"""
from __future__ import annotations

import math

PRUNING_COLORS = {
    "fine_tune": "#009e73",  # (0, 158, 115)
    "weight_rewind": "#56b4e9",  # (86, 180, 233)
    "lr_rewind": "#e69f00",  # (230, 159, 0)
    "reinit": "#0072b2",  # (0, 114, 178)
}
ROBUST_COLORS = {
    "natural": "#1f77b4",
    "adversarial": "#ff7f0e",
    "rst": "#2ca02c",
    "trades": "#d62728",
    "gradient_regularization": "#9467bd",
    "llr": "#8c564b",
    "llr_yang": "#e377c2",
}
FAIRNESS_COLORS = {
    "compas_score": "#7f7f7f",
    "baseline": "#1f77b4",
    "baseline_blind": "#17becf",
    "oracle": "#2ca02c",
    "reweighing": "#ff7f0e",
    "inprocessing": "#d62728",
    "semisupervised": "#9467bd",
}
FAMILIES = {"pruning": PRUNING_COLORS, "robust": ROBUST_COLORS, "fairness": FAIRNESS_COLORS}
METHOD_COLORS = {name: color for family in FAMILIES.values() for name, color in family.items()}
# A method no family knows (a user's own): black, never a colour a known method has.
UNKNOWN_COLOR = "#000000"
# The two groups a fairness figure compares (COMPAS: African-American / Caucasian).
GROUP_COLORS = {"protected": "#d62728", "reference": "#1f77b4"}
# Line styles for the pruners of a pruning arm (the method gives the colour).
PRUNER_STYLES = {"global_magnitude": "-", "layerwise_magnitude": "-.", "filter_l1": "-",
                 "random": ":", "random_filter": ":"}
MARKERS = "osD^vP*Xhp"


def method_name(label: str) -> str:
  """The method of a plotted label: ``'trades:beta=6'`` -> ``'trades'``,
  ``'global_magnitude:lr_rewind@5'`` -> ``'lr_rewind'``, ``'weight_rewind@6'`` ->
  ``'weight_rewind'``, ``'baseline'`` -> ``'baseline'``."""
  head, _, rest = label.partition(":")
  head = head.partition("@")[0]
  if head in METHOD_COLORS or not rest:
    return head
  return rest.partition("@")[0].partition(":")[0]


def method_color(label: str) -> str:
  """The colour of ``label``'s method (`method_name`) in every figure; `UNKNOWN_COLOR` for a
  method outside `METHOD_COLORS`."""
  return METHOD_COLORS.get(method_name(label), UNKNOWN_COLOR)


def method_markers(labels) -> dict[str, str]:
  """One marker per label among the labels of the same method (``trades:beta=1`` and
  ``trades:beta=6`` share a colour and differ by marker), in order of appearance."""
  counts: dict[str, int] = {}
  out = {}
  for label in dict.fromkeys(labels):
    k = counts.get(method_name(label), 0)
    counts[method_name(label)] = k + 1
    out[label] = MARKERS[k % len(MARKERS)]
  return out


# ---------------------------------------------------------------------------------------------
# Axis labels: metric key -> (label with its unit, factor applied to the plotted values).

METRICS: dict[str, tuple[str, float]] = {
    "test_accuracy": ("test accuracy (%)", 100.0),
    "train_accuracy": ("train accuracy (%)", 100.0),
    "val_accuracy": ("validation accuracy (%)", 100.0),
    "pruned_test_accuracy": ("test accuracy right after pruning (%)", 100.0),
    "test_adv_accuracy": ("adversarial test accuracy (%)", 100.0),
    "train_adv_accuracy": ("adversarial train accuracy (%)", 100.0),
    "test_lipschitz": ("local Lipschitz constant (empirical)", 1.0),
    "train_lipschitz": ("local Lipschitz constant on train points (empirical)", 1.0),
    "compression": ("compression ratio (x)", 1.0),
    "density": ("density (alive / prunable weights)", 1.0),
    "sparsity": ("sparsity (%)", 100.0),
    # Fairness (experiments.fairness, and experiments.joint's per-round ``test_<name>``): y are the
    # observed labels, z the clean ones; group 1 is the protected group.
    "f1_y": ("weighted F1 vs observed labels y (0-1)", 1.0),
    "f1_z": ("weighted F1 vs clean labels z (0-1)", 1.0),
    "di": ("disparate impact ratio (1 = parity)", 1.0),
    "dp_diff": ("demographic parity difference (0-1)", 1.0),
    "accuracy_z": ("accuracy vs clean labels z (%)", 100.0),
    "fpr_g0_z": ("false positive rate, unprotected, vs z (%)", 100.0),
    "fpr_g1_z": ("false positive rate, protected, vs z (%)", 100.0),
    "fnr_g0_z": ("false negative rate, unprotected, vs z (%)", 100.0),
    "fnr_g1_z": ("false negative rate, protected, vs z (%)", 100.0),
    "eodds_gap_z": ("equalized-odds gap vs clean labels z (0-1)", 1.0),
}


# Norms of distances and threat models, as axis labels write them.
NORM_LABELS = {"linf": "ℓ∞", "l2": "ℓ2", "l1": "ℓ1"}


def _metric(key: str) -> tuple[str, float] | None:
  if key in METRICS:
    return METRICS[key]
  if key.startswith("test_") and key[5:] in METRICS:  # joint's per-round fairness metrics
    label, scale = METRICS[key[5:]]
    return f"test {label}", scale
  return None


def metric_label(key: str) -> str:
  """The human label, with its unit, of metric ``key``; a key no table knows (a user's hook) is
  shown with spaces for underscores."""
  found = _metric(key)
  return found[0] if found else key.replace("_", " ")


def metric_scale(key: str) -> float:
  """The factor the values of ``key`` are multiplied by to match `metric_label`'s unit."""
  found = _metric(key)
  return found[1] if found else 1.0


# ---------------------------------------------------------------------------------------------
# Log axes with readable ticks.


def _plain(value: float, suffix: str = "") -> str:
  return f"{value:g}{suffix}"


def compression_axis(ax, axis: str = "x") -> None:
  """A compression-ratio axis: log scale, base 2, ticks ``1x, 2x, 4x, ...`` (thinned to at most
  about 10 labels over wide ranges), no minor labels."""
  from matplotlib import ticker  # pylint: disable=g-import-not-at-top
  which = ax.xaxis if axis == "x" else ax.yaxis
  (ax.set_xscale if axis == "x" else ax.set_yscale)("log", base=2)
  which.set_major_locator(ticker.LogLocator(base=2, numticks=11))
  which.set_major_formatter(ticker.FuncFormatter(lambda v, _: _plain(v, "x")))
  which.set_minor_locator(ticker.NullLocator())


def log_axis(ax, axis: str = "x") -> None:
  """A log-scale axis labelled with plain numbers at 1, 2 and 5 times each power of ten (only the
  powers of ten when the axis spans more than three decades)."""
  from matplotlib import ticker  # pylint: disable=g-import-not-at-top
  which = ax.xaxis if axis == "x" else ax.yaxis
  (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
  lo, hi = (ax.get_xlim() if axis == "x" else ax.get_ylim())
  decades = math.log10(hi / lo) if lo > 0 and hi > lo else 0.0
  subs = (1.0,) if decades > 3 else (1.0, 2.0, 5.0)
  which.set_major_locator(ticker.LogLocator(base=10, subs=subs, numticks=12))
  which.set_major_formatter(ticker.FuncFormatter(lambda v, _: _plain(v)))
  which.set_minor_formatter(ticker.NullFormatter())


# ---------------------------------------------------------------------------------------------
# Numbers as text.


def mean_std(mean: float, std: float | None, scale: float = 1.0, digits: int = 2) -> str:
  """``'mean ± std'`` with ``digits`` decimals after scaling; the std reads ``n/a`` when it is
  undefined (``None`` or NaN: one seed), never ``± 0``."""
  spread = "n/a" if std is None or not math.isfinite(std) else f"{scale * std:.{digits}f}"
  return f"{scale * mean:.{digits}f} ± {spread}"
