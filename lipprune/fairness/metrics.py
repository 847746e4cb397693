"""Group fairness and accuracy metrics, jit-able, against observed and clean labels.

Conventions: ``pred`` are hard predictions in {0, 1} (1 = the positive class), ``group`` is the
protected attribute (1 = protected, 0 = unprotected), ``y`` the observed labels and ``z`` the
clean labels. An optional ``mask`` (0/1 or non-negative weights) restricts every count to a subset
with fixed shapes, so splits of varying size can be evaluated under ``vmap``. Undefined ratios
(empty denominator) are NaN.

Inputs are validated: ``pred``, labels, ``group`` and ``mask`` must have equal shapes; ``pred``
and labels must hold 0/1 and ``group`` the declared codes 0/1. Probabilities are accepted only
with an explicit ``threshold`` (``pred := p >= threshold``). Outside jit a violation raises
ValueError naming the argument; under jit/vmap (values unknown at trace time) every metric of an
invalid input is NaN instead, so it is visible and counted, never a silently wrong number.

Definitions (Wick, Panda & Tristan 2019; Hardt, Price & Srebro 2016):

* selection rate of group g: ``SR_g = P(pred = 1 | group = g)`` (the positive-prediction rate;
  on COMPAS, with ProPublica's coding, the share flagged as going to re-offend).
* directional disparate impact of the *favourable* outcome ``f`` (``favorable``, default 1):
  ``DI = P(pred = f | group = 1) / P(pred = f | group = 0)`` (Wick et al.'s fairness measure:
  1 is parity, < 1 disadvantages the protected group, > 1 is overcompensation). With ``f = 1``
  it is ``SR_1 / SR_0``; with ``f = 0`` (COMPAS: not flagged) ``(1 - SR_1) / (1 - SR_0)``.
* demographic-parity difference: ``SR_1 - SR_0`` (signed).
* per-group ``TPR = TP / (TP + FN)``, ``FPR = FP / (FP + TN)``, ``FNR = 1 - TPR``, accuracy.
* equal-opportunity gap ``|TPR_1 - TPR_0|``; equalized-odds gap ``max(|TPR_1 - TPR_0|, |FPR_1 - FPR_0|)``.
* weighted F1 (scikit-learn's ``f1_score(average='weighted')``): per class c,
  ``F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c)`` (0 when the denominator is 0), averaged with weights
  equal to the support (number of true labels) of each class.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np


GROUPS = (0, 1)


def _w(pred, mask):
  return jnp.ones(pred.shape, jnp.float32) if mask is None else jnp.asarray(mask, jnp.float32)


def _concrete(x) -> bool:
  return not isinstance(x, jax.core.Tracer)


def _shape(x):
  return tuple(np.shape(x))


def binarize(pred, threshold=None):
  """Hard 0/1 predictions: ``pred`` itself, or ``p >= threshold`` when a threshold is given."""
  if threshold is None:
    return jnp.asarray(pred)
  return (jnp.asarray(pred) >= threshold).astype(jnp.int32)


def validate(pred, label=None, group=None, mask=None, *, groups=GROUPS) -> jax.Array:
  """Checks the metric inputs; returns a scalar bool that is False for invalid values.

  Shapes must agree (ValueError naming the arguments). On concrete inputs, values outside 0/1
  (``pred``, ``label``), outside ``groups`` (``group``) or negative (``mask``) raise ValueError
  naming the argument; on traced inputs the returned flag carries the check to the caller.
  """
  named = {"pred": pred, "label": label, "group": group, "mask": mask}
  named = {k: v for k, v in named.items() if v is not None}
  shapes = {k: _shape(v) for k, v in named.items()}
  if len(set(shapes.values())) > 1:
    raise ValueError(f"metric inputs must have equal shapes; got {shapes}")
  allowed = {"pred": (0, 1), "label": (0, 1), "group": tuple(groups)}
  ok = True
  for k, v in named.items():
    if _concrete(v):
      v = np.asarray(v)
      bad = v[v < 0] if k == "mask" else v[~np.isin(v, allowed[k])]
      if bad.size:
        what = ("non-negative weights" if k == "mask" else
                f"values in {list(allowed[k])}" + (" (hard predictions: pass threshold= to score "
                                                    "probabilities)" if k == "pred" else ""))
        raise ValueError(f"{k} must hold {what}; got {bad.size} other value(s), e.g. {bad[:3].tolist()}")
    else:
      ok = ok & jnp.all(v >= 0 if k == "mask" else jnp.isin(v, jnp.asarray(allowed[k])))
  return jnp.asarray(ok)


def _guard(ok, value):
  if _concrete(ok) and bool(ok):
    return value
  return jax.tree.map(lambda v: jnp.where(ok, v, jnp.nan), value)


def _div(a, b):
  return jnp.where(b > 0, a / jnp.where(b > 0, b, 1.0), jnp.nan)


def _confusion(pred, label, w):
  p = jnp.asarray(pred) == 1
  t = jnp.asarray(label) == 1
  return {"tp": jnp.sum(w * (p & t)), "fp": jnp.sum(w * (p & ~t)),
          "tn": jnp.sum(w * (~p & ~t)), "fn": jnp.sum(w * (~p & t))}


def confusion(pred, label, mask=None, *, threshold=None) -> dict:
  """Weighted confusion counts ``{'tp', 'fp', 'tn', 'fn'}`` with positive class 1."""
  pred = binarize(pred, threshold)
  ok = validate(pred, label, mask=mask)
  return _guard(ok, _confusion(pred, label, _w(pred, mask)))


def _accuracy(pred, label, w):
  return _div(jnp.sum(w * (jnp.asarray(pred) == jnp.asarray(label))), jnp.sum(w))


def accuracy(pred, label, mask=None, *, threshold=None):
  pred = binarize(pred, threshold)
  ok = validate(pred, label, mask=mask)
  return _guard(ok, _accuracy(pred, label, _w(pred, mask)))


def _weighted_f1(pred, label, w):
  c = _confusion(pred, label, w)
  f1_pos = jnp.where(2 * c["tp"] + c["fp"] + c["fn"] > 0,
                     2 * c["tp"] / jnp.maximum(2 * c["tp"] + c["fp"] + c["fn"], 1e-12), 0.0)
  # For class 0 the roles swap: TP_0 = TN, FP_0 = FN, FN_0 = FP.
  f1_neg = jnp.where(2 * c["tn"] + c["fp"] + c["fn"] > 0,
                     2 * c["tn"] / jnp.maximum(2 * c["tn"] + c["fp"] + c["fn"], 1e-12), 0.0)
  support_pos = c["tp"] + c["fn"]
  support_neg = c["tn"] + c["fp"]
  return _div(support_pos * f1_pos + support_neg * f1_neg, support_pos + support_neg)


def weighted_f1(pred, label, mask=None, *, threshold=None):
  """scikit-learn's ``f1_score(label, pred, average='weighted')`` for binary labels."""
  pred = binarize(pred, threshold)
  ok = validate(pred, label, mask=mask)
  return _guard(ok, _weighted_f1(pred, label, _w(pred, mask)))


def _selection_rates(pred, group, w):
  g = jnp.asarray(group)
  pos = (jnp.asarray(pred) == 1).astype(jnp.float32)
  return jnp.stack([_div(jnp.sum(w * pos * (g == k)), jnp.sum(w * (g == k))) for k in GROUPS])


def selection_rates(pred, group, mask=None, *, threshold=None) -> jax.Array:
  """``[SR_0, SR_1]``: the rate of positive predictions in the unprotected and protected groups."""
  pred = binarize(pred, threshold)
  ok = validate(pred, group=group, mask=mask)
  return _guard(ok, _selection_rates(pred, group, _w(pred, mask)))


def _favourable_ratio(sr, favorable):
  if favorable not in (0, 1):
    raise ValueError(f"favorable={favorable!r}; expected 0 or 1")
  rate = sr if favorable == 1 else 1.0 - sr
  return _div(rate[1], rate[0])


def disparate_impact(pred, group, mask=None, *, favorable: int = 1, threshold=None):
  """Directional DI of the favourable outcome: ``P(pred = f | protected) / P(pred = f | unprotected)``."""
  return _favourable_ratio(selection_rates(pred, group, mask, threshold=threshold), favorable)


def demographic_parity_difference(pred, group, mask=None, *, threshold=None):
  """``SR_protected - SR_unprotected``."""
  sr = selection_rates(pred, group, mask, threshold=threshold)
  return sr[1] - sr[0]


def _group_rates(pred, label, group, w) -> dict:
  g = jnp.asarray(group)
  out = {"tpr": [], "fpr": [], "fnr": [], "accuracy": []}
  for k in GROUPS:
    c = _confusion(pred, label, w * (g == k))
    out["tpr"].append(_div(c["tp"], c["tp"] + c["fn"]))
    out["fpr"].append(_div(c["fp"], c["fp"] + c["tn"]))
    out["fnr"].append(_div(c["fn"], c["tp"] + c["fn"]))
    out["accuracy"].append(_div(c["tp"] + c["tn"], c["tp"] + c["tn"] + c["fp"] + c["fn"]))
  return {k: jnp.stack(v) for k, v in out.items()}


def group_rates(pred, label, group, mask=None, *, threshold=None) -> dict:
  """Per-group ``{'tpr', 'fpr', 'fnr', 'accuracy'}``, each of shape (2,): [unprotected, protected]."""
  pred = binarize(pred, threshold)
  ok = validate(pred, label, group, mask)
  return _guard(ok, _group_rates(pred, label, group, _w(pred, mask)))


def equal_opportunity_gap(pred, label, group, mask=None, *, threshold=None):
  """``|TPR_protected - TPR_unprotected|``."""
  r = group_rates(pred, label, group, mask, threshold=threshold)
  return jnp.abs(r["tpr"][1] - r["tpr"][0])


def equalized_odds_gap(pred, label, group, mask=None, *, threshold=None):
  """``max(|TPR_1 - TPR_0|, |FPR_1 - FPR_0|)``."""
  r = group_rates(pred, label, group, mask, threshold=threshold)
  return jnp.maximum(jnp.abs(r["tpr"][1] - r["tpr"][0]), jnp.abs(r["fpr"][1] - r["fpr"][0]))


def _label_metrics(pred, label, group, w, suffix):
  r = _group_rates(pred, label, group, w)
  out = {"accuracy": _accuracy(pred, label, w), "f1": _weighted_f1(pred, label, w),
         "eo_gap": jnp.abs(r["tpr"][1] - r["tpr"][0]),
         "eodds_gap": jnp.maximum(jnp.abs(r["tpr"][1] - r["tpr"][0]), jnp.abs(r["fpr"][1] - r["fpr"][0]))}
  for name, v in r.items():
    out[f"{name}_g0"] = v[0]
    out[f"{name}_g1"] = v[1]
  return {k + suffix: v for k, v in out.items()}


def label_metrics(pred, label, group, mask=None, suffix: str = "", *, threshold=None) -> dict:
  """Accuracy, weighted F1, per-group rates and the gaps against one set of labels."""
  pred = binarize(pred, threshold)
  ok = validate(pred, label, group, mask)
  return _guard(ok, _label_metrics(pred, label, group, _w(pred, mask), suffix))


def evaluate(pred, y, group, z=None, mask=None, *, favorable: int = 1, threshold=None) -> dict:
  """All metrics as a flat dict of scalars.

  Keys: ``sr_g0, sr_g1, di, dp_diff`` (label-free; ``di`` of the ``favorable`` outcome); and for
  the observed labels ``*_y`` and, when ``z`` is given, the clean labels ``*_z``: ``accuracy, f1,
  eo_gap, eodds_gap, tpr_g0, tpr_g1, fpr_g0, fpr_g1, fnr_g0, fnr_g1, accuracy_g0, accuracy_g1``.
  """
  pred = binarize(pred, threshold)
  ok = validate(pred, y, group, mask) & (True if z is None else validate(pred, z, group, mask))
  w = _w(pred, mask)
  sr = _selection_rates(pred, group, w)
  out = {"sr_g0": sr[0], "sr_g1": sr[1], "di": _favourable_ratio(sr, favorable), "dp_diff": sr[1] - sr[0]}
  out.update(_label_metrics(pred, y, group, w, "_y"))
  if z is not None:
    out.update(_label_metrics(pred, z, group, w, "_z"))
  return _guard(ok, out)


def bootstrap_ci(key: jax.Array, stat_fn: Callable, arrays: dict, *, num_resamples: int = 1000,
                 level: float = 0.95) -> dict:
  """Percentile bootstrap intervals of the statistics ``stat_fn(arrays) -> {name: scalar}``.

  Resamples the rows of every array in ``arrays`` (same leading dimension n) with replacement
  ``num_resamples`` times, under ``vmap``.

  Returns:
    ``{name: {'estimate', 'low', 'high', 'std', 'undefined'}}`` as Python floats: the interval and
    std over the finite replicates, and ``undefined``, how many replicates were NaN (e.g. a group
    absent from a resample): counted, never dropped silently.
  """
  arrays = {k: jnp.asarray(v) for k, v in arrays.items()}
  n = len(next(iter(arrays.values())))
  idx = jax.random.randint(key, (num_resamples, n), 0, n)
  reps = jax.jit(jax.vmap(lambda i: stat_fn({k: v[i] for k, v in arrays.items()})))(idx)
  point = stat_fn(arrays)
  tail = (1.0 - level) / 2.0 * 100.0
  out = {}
  for name, values in reps.items():
    v = np.asarray(values, np.float64)
    finite = v[np.isfinite(v)]
    low, high = (np.percentile(finite, [tail, 100.0 - tail]) if finite.size else (np.nan, np.nan))
    out[name] = {"estimate": float(point[name]), "low": float(low), "high": float(high),
                 "std": float(np.std(finite)) if finite.size else float("nan"),
                 "undefined": int(v.size - finite.size)}
  return out
