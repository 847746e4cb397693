"""Group fairness and accuracy metrics, jit-able, against observed and clean labels.

Conventions: ``pred`` are hard predictions in {0, 1} (1 = the favourable / positive outcome),
``group`` is the protected attribute (1 = protected, 0 = unprotected), ``y`` the observed labels
and ``z`` the clean labels. An optional ``mask`` (0/1 or non-negative weights) restricts every
count to a subset with fixed shapes, so splits of varying size can be evaluated under ``vmap``.
Undefined ratios (empty denominator) are NaN.

Definitions (Wick, Panda & Tristan 2019; Hardt, Price & Srebro 2016):

* selection rate of group g: ``SR_g = P(pred = 1 | group = g)``.
* directional disparate impact: ``DI = SR_1 / SR_0`` (1 is parity; > 1 is overcompensation).
* demographic-parity difference: ``SR_1 - SR_0`` (signed).
* per-group ``TPR = TP / (TP + FN)``, ``FPR = FP / (FP + TN)``, ``FNR = 1 - TPR``, accuracy.
* equal-opportunity gap ``|TPR_1 - TPR_0|``; equalized-odds gap ``max(|TPR_1 - TPR_0|, |FPR_1 - FPR_0|)``.
* weighted F1 (scikit-learn's ``f1_score(average='weighted')``): per class c,
  ``F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c)`` (0 when the denominator is 0), averaged with weights
  equal to the support (number of true labels) of each class.
"""
from __future__ import annotations

from typing import Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np


def _w(pred, mask):
  return jnp.ones(pred.shape, jnp.float32) if mask is None else jnp.asarray(mask, jnp.float32)


def _div(a, b):
  return jnp.where(b > 0, a / jnp.where(b > 0, b, 1.0), jnp.nan)


def confusion(pred, label, mask=None) -> dict:
  """Weighted confusion counts ``{'tp', 'fp', 'tn', 'fn'}`` with positive class 1."""
  chex.assert_equal_shape([pred, label])
  w = _w(pred, mask)
  p = jnp.asarray(pred) == 1
  t = jnp.asarray(label) == 1
  return {"tp": jnp.sum(w * (p & t)), "fp": jnp.sum(w * (p & ~t)),
          "tn": jnp.sum(w * (~p & ~t)), "fn": jnp.sum(w * (~p & t))}


def accuracy(pred, label, mask=None):
  w = _w(pred, mask)
  return _div(jnp.sum(w * (jnp.asarray(pred) == jnp.asarray(label))), jnp.sum(w))


def weighted_f1(pred, label, mask=None):
  """scikit-learn's ``f1_score(label, pred, average='weighted')`` for binary labels."""
  c = confusion(pred, label, mask)
  f1_pos = jnp.where(2 * c["tp"] + c["fp"] + c["fn"] > 0,
                     2 * c["tp"] / jnp.maximum(2 * c["tp"] + c["fp"] + c["fn"], 1e-12), 0.0)
  # For class 0 the roles swap: TP_0 = TN, FP_0 = FN, FN_0 = FP.
  f1_neg = jnp.where(2 * c["tn"] + c["fp"] + c["fn"] > 0,
                     2 * c["tn"] / jnp.maximum(2 * c["tn"] + c["fp"] + c["fn"], 1e-12), 0.0)
  support_pos = c["tp"] + c["fn"]
  support_neg = c["tn"] + c["fp"]
  return _div(support_pos * f1_pos + support_neg * f1_neg, support_pos + support_neg)


def selection_rates(pred, group, mask=None) -> jax.Array:
  """``[SR_0, SR_1]``: the rate of positive predictions in the unprotected and protected groups."""
  chex.assert_equal_shape([pred, group])
  w = _w(pred, mask)
  g = jnp.asarray(group)
  pos = (jnp.asarray(pred) == 1).astype(jnp.float32)
  return jnp.stack([_div(jnp.sum(w * pos * (g == k)), jnp.sum(w * (g == k))) for k in (0, 1)])


def disparate_impact(pred, group, mask=None):
  """Directional DI ratio ``SR_protected / SR_unprotected``."""
  sr = selection_rates(pred, group, mask)
  return _div(sr[1], sr[0])


def demographic_parity_difference(pred, group, mask=None):
  """``SR_protected - SR_unprotected``."""
  sr = selection_rates(pred, group, mask)
  return sr[1] - sr[0]


def group_rates(pred, label, group, mask=None) -> dict:
  """Per-group ``{'tpr', 'fpr', 'fnr', 'accuracy'}``, each of shape (2,): [unprotected, protected]."""
  w = _w(pred, mask)
  g = jnp.asarray(group)
  out = {"tpr": [], "fpr": [], "fnr": [], "accuracy": []}
  for k in (0, 1):
    c = confusion(pred, label, w * (g == k))
    out["tpr"].append(_div(c["tp"], c["tp"] + c["fn"]))
    out["fpr"].append(_div(c["fp"], c["fp"] + c["tn"]))
    out["fnr"].append(_div(c["fn"], c["tp"] + c["fn"]))
    out["accuracy"].append(_div(c["tp"] + c["tn"], c["tp"] + c["tn"] + c["fp"] + c["fn"]))
  return {k: jnp.stack(v) for k, v in out.items()}


def equal_opportunity_gap(pred, label, group, mask=None):
  """``|TPR_protected - TPR_unprotected|``."""
  r = group_rates(pred, label, group, mask)
  return jnp.abs(r["tpr"][1] - r["tpr"][0])


def equalized_odds_gap(pred, label, group, mask=None):
  """``max(|TPR_1 - TPR_0|, |FPR_1 - FPR_0|)``."""
  r = group_rates(pred, label, group, mask)
  return jnp.maximum(jnp.abs(r["tpr"][1] - r["tpr"][0]), jnp.abs(r["fpr"][1] - r["fpr"][0]))


def label_metrics(pred, label, group, mask=None, suffix: str = "") -> dict:
  """Accuracy, weighted F1, per-group rates and the gaps against one set of labels."""
  r = group_rates(pred, label, group, mask)
  out = {"accuracy": accuracy(pred, label, mask), "f1": weighted_f1(pred, label, mask),
         "eo_gap": jnp.abs(r["tpr"][1] - r["tpr"][0]),
         "eodds_gap": jnp.maximum(jnp.abs(r["tpr"][1] - r["tpr"][0]), jnp.abs(r["fpr"][1] - r["fpr"][0]))}
  for name, v in r.items():
    out[f"{name}_g0"] = v[0]
    out[f"{name}_g1"] = v[1]
  return {k + suffix: v for k, v in out.items()}


def evaluate(pred, y, group, z=None, mask=None) -> dict:
  """All metrics as a flat dict of scalars.

  Keys: ``sr_g0, sr_g1, di, dp_diff`` (label-free); and for the observed labels ``*_y`` and, when
  ``z`` is given, the clean labels ``*_z``: ``accuracy, f1, eo_gap, eodds_gap, tpr_g0, tpr_g1,
  fpr_g0, fpr_g1, fnr_g0, fnr_g1, accuracy_g0, accuracy_g1``.
  """
  sr = selection_rates(pred, group, mask)
  out = {"sr_g0": sr[0], "sr_g1": sr[1], "di": _div(sr[1], sr[0]), "dp_diff": sr[1] - sr[0]}
  out.update(label_metrics(pred, y, group, mask, "_y"))
  if z is not None:
    out.update(label_metrics(pred, z, group, mask, "_z"))
  return out


def bootstrap_ci(key: jax.Array, stat_fn: Callable, arrays: dict, *, num_resamples: int = 1000,
                 level: float = 0.95) -> dict:
  """Percentile bootstrap intervals of the statistics ``stat_fn(arrays) -> {name: scalar}``.

  Resamples the rows of every array in ``arrays`` (same leading dimension n) with replacement
  ``num_resamples`` times, under ``vmap``.

  Returns:
    ``{name: {'estimate', 'low', 'high', 'std'}}`` as Python floats; NaN replicates are ignored.
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
    v = v[np.isfinite(v)]
    low, high = (np.percentile(v, [tail, 100.0 - tail]) if v.size else (np.nan, np.nan))
    out[name] = {"estimate": float(point[name]), "low": float(low), "high": float(high),
                 "std": float(np.std(v)) if v.size else float("nan")}
  return out
