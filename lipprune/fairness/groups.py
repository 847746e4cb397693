"""Group reports: error rates, calibration and cut-offs per group, with replicate intervals.

The metrics a risk-assessment audit reads (ProPublica 2016; Northpointe's rebuttal; Chouldechova
2017; Kleinberg, Mullainathan & Raghavan 2016), for any number of possibly overlapping groups, in
NumPy. Inputs: a ``score`` per row (a probability, or a risk score such as COMPAS's decile), the
recorded ``label`` (0/1; 1 = the positive class), an explicit ``threshold`` (``pred = score >=
threshold``) and ``groups``, ``{name: boolean row mask}``.

Every function takes ``weights`` of shape (R, n): one row of non-negative row weights per replicate
(bootstrap resample counts from `bootstrap_weights`; ``None`` is the data itself, R = 1) and returns
arrays with a leading replicate axis, so an interval costs one matrix product, not R Python loops.

Per group g (all weighted; NaN where a denominator is 0):

* ``size`` = sum of weights, ``base_rate`` = P(label = 1), ``selection_rate`` = P(pred = 1);
* ``fpr`` = FP / (FP + TN), ``fnr`` = FN / (FN + TP), ``ppv`` = TP / (TP + FP),
  ``npv`` = TN / (TN + FN), ``accuracy`` = (TP + TN) / size;
* ``auc``: P(score of a positive > score of a negative) + 1/2 P(tie) (scikit-learn's
  ``roc_auc_score``, ties included);
* ``score_mean_neg`` / ``score_mean_pos``: mean score of the negatives / positives (Kleinberg et
  al.'s balance for the negative / positive class).

`implied_fpr` is Chouldechova's identity ``FPR = p / (1 - p) * (1 - PPV) / PPV * (1 - FNR)``;
`debiased_counts` re-scores predictions against labels freed of Wick et al.'s label bias.
"""
from __future__ import annotations

import warnings

import numpy as np

METRICS = ("size", "base_rate", "selection_rate", "fpr", "fnr", "ppv", "npv", "accuracy", "auc",
           "score_mean_neg", "score_mean_pos")


def _div(a, b):
  a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
  out = np.full(a.shape, np.nan)
  np.divide(a, b, out=out, where=b > 0)
  return out


def validate(score, label, groups: dict, threshold=None, weights=None, *, need_threshold=True):
  """Checks the inputs of every function here; raises ValueError naming the argument.

  ``score`` finite with the shape (n,) of ``label``; ``label`` 0/1; each group mask boolean of
  length n; ``threshold`` given (a score is not a prediction until a cut-off is chosen);
  ``weights`` (R, n) non-negative.
  """
  score, label = np.asarray(score), np.asarray(label)
  if score.ndim != 1 or score.shape != label.shape:
    raise ValueError(f"score and label must be 1-D of equal length; got shapes {score.shape} and "
                     f"{label.shape}")
  if not np.all(np.isfinite(score)):
    raise ValueError("score must be finite")
  bad = label[~np.isin(label, (0, 1))]
  if bad.size:
    raise ValueError(f"label must hold values in [0, 1]; got {bad.size} other value(s), e.g. {bad[:3].tolist()}")
  if not groups:
    raise ValueError("groups is empty; expected {name: boolean row mask}")
  for name, m in groups.items():
    m = np.asarray(m)
    if m.dtype != bool or m.shape != label.shape:
      raise ValueError(f"groups[{name!r}] must be a boolean mask of shape {label.shape}; got "
                       f"{m.dtype} {m.shape}")
  if need_threshold and threshold is None:
    raise ValueError("threshold is required: predictions are score >= threshold")
  if weights is not None:
    w = np.asarray(weights)
    if w.ndim != 2 or w.shape[1] != label.shape[0] or np.any(w < 0):
      raise ValueError(f"weights must be non-negative of shape (R, {label.shape[0]}); got {w.shape}")


def _weights(weights, n):
  return np.ones((1, n)) if weights is None else np.asarray(weights, np.float64)


def bootstrap_weights(rng: np.random.Generator, n: int, num: int) -> np.ndarray:
  """(num, n) resample counts: each row a bootstrap resample of n rows with replacement."""
  return rng.multinomial(n, np.full(n, 1.0 / n), size=num).astype(np.float64)


def _auc(w, score, label, rows):
  """Weighted AUC for the rows ``rows`` under each replicate's weights: (R,)."""
  s = score[rows]
  order = np.argsort(s, kind="stable")
  s_sorted = s[order]
  starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
  wr = w[:, rows][:, order]
  y = label[rows][order]
  pos = np.add.reduceat(wr * y, starts, axis=1)  # weight of positives per score level
  neg = np.add.reduceat(wr * (1 - y), starts, axis=1)
  neg_below = np.cumsum(neg, axis=1) - neg
  wins = np.sum(pos * (neg_below + 0.5 * neg), axis=1)
  return _div(wins, pos.sum(1) * neg.sum(1))


def group_metrics(score, label, groups: dict, *, threshold, weights=None, auc: bool = True) -> dict:
  """``{metric: (R, G)}`` for every metric in ``METRICS`` and group in ``groups`` (in order);
  ``auc=False`` skips the AUC (NaN), the one metric that needs a sort per group."""
  validate(score, label, groups, threshold, weights)
  score = np.asarray(score, np.float64)
  label = np.asarray(label).astype(np.float64)
  w = _weights(weights, len(label))
  pred = (score >= threshold).astype(np.float64)
  masks = np.stack([np.asarray(m, np.float64) for m in groups.values()], 1)  # (n, G)
  count = lambda v: w @ (masks * v[:, None])
  tp, fp = count(pred * label), count(pred * (1 - label))
  fn, tn = count((1 - pred) * label), count((1 - pred) * (1 - label))
  size = tp + fp + fn + tn
  out = {"size": size, "base_rate": _div(tp + fn, size), "selection_rate": _div(tp + fp, size),
         "fpr": _div(fp, fp + tn), "fnr": _div(fn, fn + tp), "ppv": _div(tp, tp + fp),
         "npv": _div(tn, tn + fn), "accuracy": _div(tp + tn, size),
         "score_mean_neg": _div(count(score * (1 - label)), fp + tn),
         "score_mean_pos": _div(count(score * label), tp + fn)}
  out["auc"] = (np.stack([_auc(w, score, label, np.flatnonzero(m)) for m in groups.values()], 1) if auc
                else np.full(size.shape, np.nan))
  return {k: out[k] for k in METRICS}


def calibration(score, label, groups: dict, bin_edges, *, weights=None) -> dict:
  """Observed positive rate per score bin and group (the calibration curve).

  Bin ``b`` holds ``bin_edges[b] <= score < bin_edges[b + 1]`` (the last bin also includes its
  right edge). Returns ``{'rate', 'count', 'score_mean'}``, each (R, G, B): the weighted share of
  label 1, the weight and the mean score of each bin.
  """
  validate(score, label, groups, weights=weights, need_threshold=False)
  score = np.asarray(score, np.float64)
  label = np.asarray(label).astype(np.float64)
  edges = np.asarray(bin_edges, np.float64)
  if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
    raise ValueError(f"bin_edges must be increasing with at least 2 entries; got {bin_edges}")
  w = _weights(weights, len(label))
  b = np.clip(np.searchsorted(edges, score, side="right") - 1, 0, edges.size - 2)
  inside = (score >= edges[0]) & (score <= edges[-1])
  onehot = (b[:, None] == np.arange(edges.size - 1)) & inside[:, None]  # (n, B)
  masks = np.stack([np.asarray(m, bool) for m in groups.values()], 1)  # (n, G)
  cell = (masks[:, :, None] & onehot[:, None, :]).reshape(len(label), -1).astype(np.float64)
  shape = (w.shape[0], masks.shape[1], edges.size - 1)
  count = (w @ cell).reshape(shape)
  positives = (w @ (cell * label[:, None])).reshape(shape)
  score_sum = (w @ (cell * score[:, None])).reshape(shape)
  return {"rate": _div(positives, count), "count": count, "score_mean": _div(score_sum, count)}


def threshold_curves(score, label, groups: dict, thresholds, *, weights=None) -> dict:
  """``{'fpr', 'fnr', 'selection_rate'}``, each (R, G, T): the rates when ``pred = score >= t``
  for each cut-off ``t`` in ``thresholds``."""
  validate(score, label, groups, weights=weights, need_threshold=False)
  per_t = [group_metrics(score, label, groups, threshold=t, weights=weights, auc=False) for t in thresholds]
  return {k: np.stack([m[k] for m in per_t], -1) for k in ("fpr", "fnr", "selection_rate")}


def implied_fpr(base_rate, ppv, fnr):
  """Chouldechova's (2017) identity: the FPR forced by a group's base rate ``p``, PPV and FNR,
  ``p / (1 - p) * (1 - PPV) / PPV * (1 - FNR)``. Equal PPV and FNR across groups with different
  base rates therefore force different FPRs."""
  p = np.asarray(base_rate, np.float64)
  return _div(p, 1 - p) * _div(1 - np.asarray(ppv, np.float64), ppv) * (1 - np.asarray(fnr, np.float64))


def debiased_counts(score, label, groups: dict, biased_label, beta: float, *, threshold,
                    weights=None) -> dict:
  """Expected confusion counts against labels freed of label bias ``beta`` (Wick et al. 2019).

  The bias model: a row whose clean label differs from its ``biased_label`` (per row: Wick et
  al.'s bias pushes protected rows to the unfavourable label and the others to the favourable one)
  was recorded as ``biased_label`` with probability ``beta``, independently of everything else.
  So the recorded rows with ``label != biased_label`` are a random ``1 - beta`` share of the rows
  whose clean label is ``label``, and the flipped rows (recorded ``biased_label``) have the same
  prediction distribution: each of their prediction counts ``c`` stands for ``c / (1 - beta)``
  rows with that clean label, of which ``c beta / (1 - beta)`` sit among the recorded
  ``biased_label`` rows. Counts are summed over the two values of ``biased_label`` within each
  group.

  Returns ``{'tp', 'fp', 'tn', 'fn'}``, each (R, G), and ``'feasible'`` (R, G) bool: False where a
  corrected count is negative (the recorded labels hold fewer ``biased_label`` rows than ``beta``
  implies); the rates from such counts are undefined.
  """
  validate(score, label, groups, threshold, weights)
  if not 0.0 <= beta < 1.0:
    raise ValueError(f"beta={beta!r} must lie in [0, 1)")
  biased_label = np.asarray(biased_label)
  if biased_label.shape != np.shape(label) or not np.all(np.isin(biased_label, (0, 1))):
    raise ValueError("biased_label must hold 0/1 with the shape of label")
  label = np.asarray(label).astype(np.float64)
  pred = (np.asarray(score, np.float64) >= threshold).astype(np.float64)
  w = _weights(weights, len(label))
  masks = np.stack([np.asarray(m, np.float64) for m in groups.values()], 1)
  total = {k: 0.0 for k in ("tp", "fp", "tn", "fn")}
  feasible = True
  moved = beta / (1.0 - beta)
  for b in (0, 1):
    sel = masks * (biased_label == b)[:, None]
    count = lambda v: w @ (sel * v[:, None])
    c = {"tp": count(pred * label), "fp": count(pred * (1 - label)),
         "fn": count((1 - pred) * label), "tn": count((1 - pred) * (1 - label))}
    if b == 1:  # clean 0 recorded as 1: FP/TN rows stand for more, TP/FN rows hold the flips
      new = {"fp": c["fp"] / (1 - beta), "tn": c["tn"] / (1 - beta),
             "tp": c["tp"] - moved * c["fp"], "fn": c["fn"] - moved * c["tn"]}
    else:  # clean 1 recorded as 0
      new = {"tp": c["tp"] / (1 - beta), "fn": c["fn"] / (1 - beta),
             "fp": c["fp"] - moved * c["tp"], "tn": c["tn"] - moved * c["fn"]}
    feasible = feasible & (new["tp"] >= -1e-9) & (new["fn"] >= -1e-9) & (new["fp"] >= -1e-9) \
        & (new["tn"] >= -1e-9)
    total = {k: total[k] + new[k] for k in total}
  return {**total, "feasible": np.broadcast_to(feasible, total["tp"].shape)}


def rates_from_counts(counts: dict) -> dict:
  """``{'accuracy', 'fpr', 'fnr', 'ppv'}`` from confusion counts; NaN where infeasible or empty."""
  tp, fp, tn, fn = (np.asarray(counts[k], np.float64) for k in ("tp", "fp", "tn", "fn"))
  ok = np.asarray(counts.get("feasible", True))
  out = {"accuracy": _div(tp + tn, tp + fp + tn + fn), "fpr": _div(fp, fp + tn), "fnr": _div(fn, fn + tp),
         "ppv": _div(tp, tp + fp)}
  return {k: np.where(ok, v, np.nan) for k, v in out.items()}


def interval(replicates, *, level: float = 0.95, axis: int = 0) -> dict:
  """Percentile interval over ``axis`` ignoring NaN replicates, and how many were NaN.

  Returns ``{'low', 'high', 'undefined'}``: ``undefined`` counts the NaN replicates (reported,
  never dropped silently); all-NaN positions give NaN bounds.
  """
  v = np.asarray(replicates, np.float64)
  tail = (1.0 - level) / 2.0 * 100.0
  undefined = np.sum(np.isnan(v), axis=axis)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: NaN bounds, counted above
    low, high = np.nanpercentile(v, [tail, 100.0 - tail], axis=axis)
  return {"low": low, "high": high, "undefined": undefined}
