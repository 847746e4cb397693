"""Group reports on real data; on COMPAS, the court-risk report.

`experiments.fairness` calls `write_report` after its sweeps (``config.report.enabled``); it writes
``court_report.{md,json}``, ``court_groups.csv`` and ``court_*.png`` on COMPAS, ``group_report.*``
and ``group_*.png`` on Adult and German, and skips all of it when the JSON (written last) exists.

Rows (each a way of flagging people):

* ``compas_score`` (COMPAS only): the tool itself, decile >= 5 ("medium" or "high" risk, the cut-off
  of ProPublica's analysis), and every other decile cut-off in the threshold section; evaluated on
  all 6,172 defendants, since nothing is fitted.
* ``baseline``: the unconstrained model on the recorded labels; ``baseline_blind``: the same without
  ``report.blind_features`` as inputs (COMPAS: race).
* each fair model of ``config.methods`` (reweighing, in-processing, semi-supervised; eta =
  ``fixed_eta``), trained on the recorded labels (beta = 0, sigma = 1).

Models are refitted on ``report.splits`` random train/unlabeled/test partitions (seeds ``seed,
seed+1, ...``; preprocessing fitted on each split's training rows) and score a person as positive
when ``P(positive) >= report.threshold``. Every number carries a 95 % interval: the 2.5 and 97.5
percentiles over ``splits x resamples`` replicates, each a bootstrap resample of one split's test
rows scored by the model refitted on that split (so the interval holds both the variation between
refits and the sampling of test rows); the point estimate is the mean over splits. For the COMPAS
score the point estimate is the value on all rows and the interval comes from as many bootstrap
resamples of all rows. NaN replicates (a group absent from a resample) are counted and reported.

Groups: the pair compared first (COMPAS: African-American vs Caucasian, as ProPublica did; Adult and
German: the protected group vs the rest), every category of each attribute and each cross of two
attributes with at least ``report.min_group_rows`` rows in the whole data set.
"""
from __future__ import annotations

import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from . import common
from lipprune import models
from lipprune import plotting
from lipprune.data import tabular
from lipprune.fairness import groups as gm
from lipprune.fairness import training
from lipprune.train import io

FAIR_METHODS = ("reweighing", "inprocessing", "semisupervised")
TABLE_METRICS = ("size", "base_rate", "selection_rate", "fpr", "fnr", "ppv", "npv", "accuracy", "auc")
METRIC_NAMES = {"size": "rows", "base_rate": "base rate", "selection_rate": "flagged", "fpr": "FPR",
                "fnr": "FNR", "ppv": "PPV", "npv": "NPV", "accuracy": "accuracy", "auc": "AUC"}
# Per data set: report attributes (name -> function of the table giving a str column), the crosses
# reported, and the pair compared first for each protected attribute.
PAIRS = {("compas", "race"): ("race: African-American", "race: Caucasian"),
         ("adult", "sex"): ("sex: Female", "sex: Male"),
         ("adult", "race"): ("race group: not White", "race group: White"),
         ("german", "age"): ("age: <= 25", "age: > 25"),
         ("german", "sex"): ("sex: female", "sex: male")}
DECILE_CUTOFFS = tuple(range(1, 11))
PROBABILITY_CUTOFFS = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2).tolist())
PROBABILITY_BINS = tuple(np.round(np.linspace(0.0, 1.0, 11), 1).tolist())


def validate_config(config) -> None:
  r = config.report
  common.validate_positive("report.splits", r.splits, integer=True)
  common.validate_positive("report.resamples", r.resamples, integer=True)
  common.validate_positive("report.min_group_rows", r.min_group_rows, integer=True)
  common.validate_range("report.threshold", r.threshold, 1e-6, 1 - 1e-6)
  for b in r.label_bias_betas:
    common.validate_range("report.label_bias_betas", b, 0.0, 0.99)
  if r.enabled and config.model != "logistic":
    raise ValueError("config.report needs config.model='logistic' (the report's rows are logistic "
                     "models); set config.report.enabled=False for other models")


def _attributes(table) -> tuple[dict, tuple]:
  a = table.attributes
  if table.name == "compas":
    return {"race": a["race"], "sex": a["sex"], "age": a["age_cat"]}, (("race", "sex"),)
  if table.name == "adult":
    race_group = np.where(a["race"] == "White", "White", "not White")
    return {"sex": a["sex"], "race": a["race"], "race group": race_group}, (("race", "sex"),)
  age = np.where(a["age"] <= tabular.GERMAN_YOUNG_AGE, "<= 25", "> 25")
  return {"age": age, "sex": a["sex"]}, (("age", "sex"),)


def report_groups(config, table) -> tuple[dict, tuple]:
  """``({name: boolean mask over all rows}, (protected name, reference name))``."""
  attrs, crosses = _attributes(table)
  pair = PAIRS[(table.name, config.protected or tabular.PROTECTED[table.name][0])]
  out = {}
  big = lambda m: m.sum() >= config.report.min_group_rows
  for name in pair:
    attr, value = name.split(": ")
    out[name] = attrs[attr] == value
  for attr, values in attrs.items():
    for v in sorted(set(values.tolist()), key=lambda v: -np.sum(values == v)):
      if f"{attr}: {v}" not in out and big(values == v):
        out[f"{attr}: {v}"] = values == v
  for a1, a2 in crosses:
    for v1 in sorted(set(attrs[a1].tolist()), key=lambda v: -np.sum(attrs[a1] == v)):
      for v2 in sorted(set(attrs[a2].tolist())):
        m = (attrs[a1] == v1) & (attrs[a2] == v2)
        if big(attrs[a1] == v1) and big(m):
          out[f"{a1} x {a2}: {v1}, {v2}"] = m
  return out, pair


def row_labels(config) -> dict:
  blind = ", ".join(config.report.blind_features)
  return {"compas_score": "COMPAS score, decile >= 5", "baseline": "logistic, all inputs",
          "baseline_blind": f"logistic, without {blind}", "reweighing": "reweighing (fair)",
          "inprocessing": "in-processing DP penalty (fair)",
          "semisupervised": "semi-supervised DP penalty (fair)"}


def report_rows(config) -> list[str]:
  rows = ["compas_score"] if config.dataset == "compas" else []
  return rows + ["baseline", "baseline_blind"] + [m for m in config.methods if m in FAIR_METHODS]


# ---------------------------------------------------------------------------------------------
# Fitting the model rows on repeated splits.


def fit_model_rows(config, table) -> dict:
  """``{row: {'scores': (S, n_test) probabilities, 'rows': (S, n_test) test row indices,
  'grad_norm': (S,)}}`` for every model row.

  The blind baseline sees the blind features' columns set to zero, which is the same model as
  leaving them out (a zero input gets zero weight under the L2 term) and shares the compiled fit.
  """
  from . import fairness  # pylint: disable=g-import-not-at-top
  model = models.create("logistic", 2)
  tcfg = fairness.train_cfg(config)
  num = config.report.splits
  keys = jax.random.split(jax.random.fold_in(jax.random.key(config.seed), 11), num)
  splits = fairness.real_splits(config, table, num)
  _, names = tabular.encode(table, drop=tuple(config.drop_features))
  blind = np.array([n.split("=")[0] in config.report.blind_features for n in names])
  data = {s: {k: jnp.asarray(v) for k, v in d.items() if k in ("x", "z", "group")} for s, d in splits.items()}
  blind_data = {s: {**d, "x": jnp.where(blind, 0.0, d["x"])} for s, d in data.items()}
  out = {}
  for method in ["baseline"] + [r for r in report_rows(config) if r in FAIR_METHODS]:

    def one(key, tr, un, te, method=method):
      params, ms, info = training.fit(key, model, method, {**tr, "y": tr["z"]}, un, eta=config.fixed_eta,
                                      cfg=tcfg)
      return training.predict_proba(model, params, ms, te["x"]), info["grad_norm"]

    fit = jax.jit(jax.vmap(one))
    for row, d in ((method, data),) + ((("baseline_blind", blind_data),) if method == "baseline" else ()):
      prob, grad_norm = fit(keys, d["train"], d["unlabeled"], d["test"])
      out[row] = {"scores": np.asarray(prob, np.float64), "rows": splits["test"]["rows"],
                  "grad_norm": np.asarray(grad_norm, np.float64)}
  return out


# ---------------------------------------------------------------------------------------------
# Statistics over replicates.


def _replicate_sets(config, table, fitted, masks, row):
  """Per split: ``(score, label, {group: mask}, biased label, bootstrap weights)``."""
  num, per = config.report.splits, config.report.resamples
  fav = _favorable(config)
  protected = tabular.protected_group(table, config.protected or None)
  biased = np.where(protected == 1, 1 - fav, fav)
  if row == "compas_score":
    rng = np.random.default_rng([config.seed, 1])
    n = len(table)
    return [(table.attributes["decile_score"].astype(np.float64), table.label, masks, biased,
             gm.bootstrap_weights(rng, n, num * per))]
  sets = []
  for s in range(num):
    rows = fitted[row]["rows"][s]
    rng = np.random.default_rng([config.seed, 2, s])  # the same resamples for every row: paired
    sets.append((fitted[row]["scores"][s], table.label[rows], {k: m[rows] for k, m in masks.items()},
                 biased[rows], gm.bootstrap_weights(rng, len(rows), per)))
  return sets


def _summarize(points: list, reps: list) -> dict:
  point = np.concatenate(points)
  rep = np.concatenate(reps)
  iv = gm.interval(rep)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    estimate = np.nanmean(point, 0)
    spread = np.nanstd(point, 0, ddof=1) if len(point) > 1 else np.full(point.shape[1:], np.nan)
  return {"estimate": estimate, "low": iv["low"], "high": iv["high"],
          "undefined": iv["undefined"], "replicates": int(rep.shape[0]),
          "split_std": spread}


def over_replicates(sets, fn) -> dict:
  """``fn(score, label, masks, biased, weights) -> {key: (R, ...)}`` summarized over every split's
  point estimate (weights None) and bootstrap replicates."""
  points, reps = {}, {}
  for score, label, masks, biased, weights in sets:
    for k, v in fn(score, label, masks, biased, None).items():
      points.setdefault(k, []).append(v)
    for k, v in fn(score, label, masks, biased, weights).items():
      reps.setdefault(k, []).append(v)
  return {k: _summarize(points[k], reps[k]) for k in points}


def _favorable(config):
  from . import fairness  # pylint: disable=g-import-not-at-top
  return fairness.FAVORABLE[config.dataset]


def _threshold(config, row):
  return 5.0 if row == "compas_score" else config.report.threshold


def compute(config, table) -> dict:
  """Every number of the report (arrays inside; `write_report` turns them into files)."""
  masks, pair = report_groups(config, table)
  names = list(masks)
  fitted = fit_model_rows(config, table)
  out = {"groups": names, "pair": list(pair), "rows": report_rows(config), "n_rows": len(table), "group_rows":
         {k: int(m.sum()) for k, m in masks.items()}, "metrics": {}, "calibration": {},
         "thresholds": {}, "label_bias": {}, "impossibility": {},
         "grad_norm_max": {r: float(np.max(f["grad_norm"])) for r, f in fitted.items()}}
  i, j = names.index(pair[0]), names.index(pair[1])
  for row in out["rows"]:
    sets = _replicate_sets(config, table, fitted, masks, row)
    t = _threshold(config, row)
    out["metrics"][row] = over_replicates(
        sets, lambda s, y, m, b, w: gm.group_metrics(s, y, m, threshold=t, weights=w))
    edges = np.arange(0.5, 11.0) if row == "compas_score" else PROBABILITY_BINS
    out["calibration"][row] = over_replicates(
        sets, lambda s, y, m, b, w: gm.calibration(s, y, m, edges, weights=w))
    cutoffs = DECILE_CUTOFFS if row == "compas_score" else PROBABILITY_CUTOFFS
    out["thresholds"][row] = {"cutoffs": list(cutoffs), **over_replicates(
        sets, lambda s, y, m, b, w: gm.threshold_curves(s, y, m, cutoffs, weights=w))}

    def debiased(s, y, m, b, w):
      per_beta = [gm.rates_from_counts(gm.debiased_counts(s, y, m, b, beta, threshold=t, weights=w))
                  for beta in config.report.label_bias_betas]
      return {k: np.stack([p[k] for p in per_beta], 1) for k in per_beta[0]}  # (R, betas, G)

    out["label_bias"][row] = over_replicates(sets, debiased)

    def impossibility(s, y, m, b, w):
      g = gm.group_metrics(s, y, m, threshold=t, weights=w)
      p = g["base_rate"]
      return {"implied_fpr": gm.implied_fpr(p, g["ppv"], g["fnr"]),
              # The FPR the protected group would need with the reference group's PPV and FNR.
              "fpr_at_reference_ppv_fnr": gm.implied_fpr(p[:, i], g["ppv"][:, j], g["fnr"][:, j]),
              "odds_ratio": (p[:, i] / (1 - p[:, i])) / (p[:, j] / (1 - p[:, j])),
              "calibrated_score_mean_neg": p / (1 - p) * (1 - g["score_mean_pos"]),
              "score_mean_neg": g["score_mean_neg"], "score_mean_pos": g["score_mean_pos"]}

    out["impossibility"][row] = over_replicates(sets, impossibility)
  return out


# ---------------------------------------------------------------------------------------------
# Writing: JSON, CSV, markdown, plots.


def _fmt(x, digits=3):
  return "n/a" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _ci(stat, index, digits=3, scale=1.0):
  """``'0.423 [0.401, 0.446]'`` for ``stat[...][index]`` (a group, or a tuple of indices)."""
  e, lo, hi = (float(np.asarray(stat[k])[index]) * scale for k in ("estimate", "low", "high"))
  und = int(np.asarray(stat["undefined"])[index])
  if not np.isfinite(e):
    return "n/a"
  d = 0 if scale >= 100 else digits
  text = f"{e:.{d}f} [{_fmt(lo, d)}, {_fmt(hi, d)}]"
  return text + (f" ({und} of {stat['replicates']} undefined)" if und else "")


def _table(header, rows):
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _positive(config, short=False):
  from . import fairness  # pylint: disable=g-import-not-at-top
  return (fairness.POSITIVE_SHORT if short else fairness.POSITIVE_CLASS)[config.dataset]


def _prefix(config):
  return "court" if config.dataset == "compas" else "group"


def markdown(config, rep) -> str:
  names, pair, labels = rep["groups"], rep["pair"], row_labels(config)
  i, j = names.index(pair[0]), names.index(pair[1])
  pos = _positive(config)
  court = config.dataset == "compas"
  who = "defendants" if court else "people"
  flagged = "flagged high-risk" if court else "predicted positive"
  prefix = _prefix(config)
  r = config.report
  title = "Court-risk report: COMPAS" if court else f"Group report: {config.dataset}"
  lines = [
      f"# {title} (positive class: {pos})", "",
      f"Every rate below counts **{pos}** as the positive class: FPR = share of {who} who did *not* "
      f"have the positive outcome but were {flagged}; FNR = share of those who had it but were not; "
      f"PPV = share of the {flagged} who had it; NPV = share of the others who did not; base rate = "
      f"share with the positive outcome; flagged = share {flagged}.", "",
      "**Uncertainty.** Each cell: estimate [95 % interval]. Model rows: estimate = mean over "
      f"{r.splits} random train/test splits, each with the model refitted on its training rows; "
      f"interval = 2.5th-97.5th percentile over {r.splits} x {r.resamples} replicates (bootstrap "
      "resamples of each split's test rows, scored by that split's model), so it holds both the "
      "refitting and the test-row sampling." + (
          f" COMPAS score rows: value on all {rep['n_rows']:,} defendants (nothing is fitted), "
          f"interval from {r.splits * r.resamples} bootstrap resamples of all rows."
          if court else "") + " '(k of R undefined)' counts replicates where a rate had an empty "
      "denominator (never dropped silently).", "",
      f"Models: logistic regression fitted to convergence (L-BFGS, L2 = {config.train.l2}; largest "
      "final gradient norm per row: " + ", ".join(f"{k} {v:.2e}" for k, v in rep["grad_norm_max"].items())
      + f"), trained on the recorded labels; fair models with eta = {config.fixed_eta}; a person is "
      f"{flagged} when P({pos}) >= {r.threshold}.", ""]
  lines += [f"## The pair: {pair[0]} vs {pair[1]} (positive class: {pos})", "",
            f"Groups of {rep['group_rows'][pair[0]]:,} and {rep['group_rows'][pair[1]]:,} rows.", ""]
  header = ["row", "group"] + [METRIC_NAMES[m] for m in TABLE_METRICS if m != "size"]
  body = []
  for row in rep["rows"]:
    for g in (i, j):
      body.append([labels[row], names[g]] + [_ci(rep["metrics"][row][m], g) for m in TABLE_METRICS
                                            if m != "size"])
  lines += [_table(header, body), "", f"![error rates]({prefix}_error_rates.png)", ""]
  # Plain language.
  lines += [f"## In plain numbers (positive class: {pos})", "",
            f"Of 1,000 {who} in a group who did **not** have the positive outcome, how many were "
            f"{flagged} (1,000 x FPR); of 1,000 who **did**, how many were not (1,000 x FNR).", ""]
  body = []
  for row in rep["rows"]:
    for g in range(len(names)):
      if g not in (i, j) and not names[g].startswith(names[i].split(":")[0] + ":"):
        continue
      body.append([labels[row], names[g], _ci(rep["metrics"][row]["fpr"], g, scale=1000),
                   _ci(rep["metrics"][row]["fnr"], g, scale=1000)])
  lines += [_table(["row", "group", f"of 1,000 without it, {flagged}", f"of 1,000 with it, not {flagged}"],
                   body), ""]
  # All groups.
  lines += [f"## Every group (positive class: {pos})", "",
            f"Groups with at least {r.min_group_rows} rows in the data: " + ", ".join(
                f"{n} ({rep['group_rows'][n]:,})" for n in names) + ".", ""]
  for row in rep["rows"]:
    body = [[n] + [_ci(rep["metrics"][row][m], g) if m != "size" else
                   _fmt(float(rep["metrics"][row]["size"]["estimate"][g]), 0)
                   for m in TABLE_METRICS] for g, n in enumerate(names)]
    lines += [f"### {labels[row]}", "", _table(["group"] + [METRIC_NAMES[m] for m in TABLE_METRICS], body), ""]
  # Calibration.
  lines += [f"## Calibration: does a score mean the same risk in every group? (positive class: {pos})", "",
            f"Observed share with the positive outcome per score bin, {pair[0]} vs {pair[1]}.", "",
            f"![calibration]({prefix}_calibration.png)", ""]
  for row in rep["rows"][:2]:
    cal = rep["calibration"][row]
    bins = (list(range(1, 11)) if row == "compas_score" else
            [f"{a:.1f}-{b:.1f}" for a, b in zip(PROBABILITY_BINS[:-1], PROBABILITY_BINS[1:])])
    body = [[str(b)] + [_ci(cal["rate"], (g, k)) for g in (i, j)]
            + [_fmt(float(cal["count"]["estimate"][g, k]), 0) for g in (i, j)] for k, b in enumerate(bins)]
    lines += [f"### {labels[row]}", "", _table(
        ["decile" if row == "compas_score" else "P(positive)", f"observed rate, {pair[0]}",
         f"observed rate, {pair[1]}", f"rows, {pair[0]}", f"rows, {pair[1]}"], body), ""]
  # Thresholds.
  lines += [f"## Moving the cut-off (positive class: {pos})", "",
            "FPR and FNR per group as the cut-off moves; the marked point is where the tool "
            "operates.", "", f"![thresholds]({prefix}_thresholds.png)", ""]
  row0 = rep["rows"][0]
  th = rep["thresholds"][row0]
  body = [[str(c)] + [_ci(th[m], (g, k)) for m in ("fpr", "fnr") for g in (i, j)]
          for k, c in enumerate(th["cutoffs"])]
  lines += [f"{labels[row0]}: flagged when the score >= cut-off.", "", _table(
      ["cut-off", f"FPR {pair[0]}", f"FPR {pair[1]}", f"FNR {pair[0]}", f"FNR {pair[1]}"], body), ""]
  lines += _impossibility_section(config, rep, i, j)
  lines += _label_bias_section(config, rep, i, j)
  return "\n".join(lines) + "\n"


def _impossibility_section(config, rep, i, j):
  names, labels, pos = rep["groups"], row_labels(config), _positive(config)
  lines = [f"## Why calibration and equal error rates cannot all hold here (positive class: {pos})", "",
           "Chouldechova (2017): in every group, FPR = p / (1 - p) x (1 - PPV) / PPV x (1 - FNR), "
           "with p the base rate. So if two groups have different base rates, equal PPV (what "
           "calibration delivers at a cut-off) and equal FNR force different FPRs. Computed on "
           "this data (the identity column reproduces the observed FPR):", ""]
  body = []
  for row in rep["rows"]:
    m, imp = rep["metrics"][row], rep["impossibility"][row]
    for g in (i, j):
      body.append([labels[row], names[g], _ci(m["base_rate"], g), _ci(m["ppv"], g), _ci(m["fnr"], g),
                   _ci(m["fpr"], g), _ci(imp["implied_fpr"], g)])
  lines += [_table(["row", "group", "base rate p", "PPV", "FNR", "FPR observed", "FPR from the identity"],
                   body), ""]
  body = [[labels[row], _ci(rep["impossibility"][row]["odds_ratio"], ()),
           _ci(rep["metrics"][row]["fpr"], i), _ci(rep["impossibility"][row]["fpr_at_reference_ppv_fnr"], ())]
          for row in rep["rows"]]
  lines += [f"If {names[i]} had exactly {names[j]}'s PPV and FNR, its FPR would have to be the last "
            f"column: higher than {names[j]}'s whenever its base-rate odds are higher (odds ratio "
            "p/(1-p) between the groups):", "",
            _table(["row", "base-rate odds ratio", f"FPR {names[i]} observed",
                    f"FPR {names[i]} forced by {names[j]}'s PPV and FNR"], body), ""]
  lines += ["Kleinberg, Mullainathan & Raghavan (2016): a score calibrated within a group has mean "
            "score among the negatives E[s | y=0] = p / (1 - p) x (1 - E[s | y=1]); with different "
            "base rates, calibration and equal means among negatives and among positives ('balance') "
            "cannot all hold unless prediction is perfect. The model rows, scored by their "
            "probability:", ""]
  body = []
  for row in rep["rows"]:
    if row == "compas_score":
      continue
    m, imp = rep["metrics"][row], rep["impossibility"][row]
    for g in (i, j):
      body.append([labels[row], names[g], _ci(m["base_rate"], g), _ci(imp["score_mean_pos"], g),
                   _ci(imp["score_mean_neg"], g), _ci(imp["calibrated_score_mean_neg"], g)])
  lines += [_table(["row", "group", "base rate p", "E[s | y=1]", "E[s | y=0] observed",
                    "E[s | y=0] if calibrated"], body), ""]
  return lines


def _label_bias_section(config, rep, i, j):
  names, labels, pos = rep["groups"], row_labels(config), _positive(config)
  fav = _favorable(config)
  betas = list(config.report.label_bias_betas)
  lines = [f"## If the recorded labels are biased (positive class: {pos})", "",
           f"Wick et al.'s label bias: with probability beta the label of a person in the protected "
           f"group ({names[i]}) was recorded as the unfavourable outcome and anyone else's as the "
           f"favourable one (favourable = label {fav}). The rows below re-score each row's predictions against "
           "labels freed of that bias (expected counts, `lipprune.fairness.groups.debiased_counts`); "
           "beta = 0 is the recorded labels. n/a: the recorded labels hold fewer biased labels than "
           "beta implies.", "", f"![label bias]({_prefix(config)}_label_bias.png)", ""]
  header = ["row", "beta"] + [f"{k} {names[g]}" for k in ("accuracy", "FPR", "FNR") for g in (i, j)]
  body = []
  for row in rep["rows"]:
    lb = rep["label_bias"][row]
    for b, beta in enumerate(betas):
      body.append([labels[row], f"{beta:g}"] + [_ci(lb[k], (b, g)) for k in ("accuracy", "fpr", "fnr")
                                                for g in (i, j)])
  return lines + [_table(header, body), ""]


def _plots(config, rep, workdir):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  from .fairness import save_figure  # pylint: disable=g-import-not-at-top
  protected_color, reference_color = (plotting.GROUP_COLORS[g] for g in ("protected", "reference"))
  names, pair, labels, pos = rep["groups"], rep["pair"], row_labels(config), _positive(config)
  i, j = names.index(pair[0]), names.index(pair[1])
  prefix = _prefix(config)
  rows = rep["rows"]

  def finish(fig, title, filename):
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, os.path.join(workdir, filename))

  err = lambda s, idx: [[s["estimate"][idx] - s["low"][idx]], [s["high"][idx] - s["estimate"][idx]]]

  fig, axes = plt.subplots(1, 2, figsize=(13, 4.6))
  for ax, metric in zip(axes, ("fpr", "fnr")):
    for k, row in enumerate(rows):
      s = rep["metrics"][row][metric]
      for off, g, hatch in ((-0.2, i, None), (0.2, j, "//")):
        ax.bar(k + off, s["estimate"][g], 0.38, yerr=err(s, g), capsize=3,
               color=plotting.method_color(row),
               hatch=hatch, edgecolor="k", lw=0.5)
    ax.set_xticks(range(len(rows)), [labels[r] for r in rows], rotation=25, ha="right", fontsize=8)
    ax.set_ylabel(f"{METRIC_NAMES[metric]} (share, 0-1)")
    ax.set_title(f"{METRIC_NAMES[metric]}: plain = {pair[0]}, hatched = {pair[1]}", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
  finish(fig, f"Error rates with 95 % intervals; positive class: {pos}", f"{prefix}_error_rates.png")

  fig, axes = plt.subplots(1, 2, figsize=(13, 4.6))
  for ax, row in zip(axes, rows[:2]):
    th = rep["thresholds"][row]
    cut = np.asarray(th["cutoffs"], float)
    for g, color in ((i, protected_color), (j, reference_color)):
      for metric, ls in (("fpr", "-"), ("fnr", "--")):
        s = th[metric]
        ax.plot(cut, s["estimate"][g], ls, color=color, label=f"{METRIC_NAMES[metric]}, {names[g]}")
        ax.fill_between(cut, s["low"][g], s["high"][g], color=color, alpha=0.15)
    op = _threshold(config, row)
    ax.axvline(op, color="k", lw=0.8, ls=":")
    for g in (i, j):
      for metric in ("fpr", "fnr"):
        ax.plot([op], [rep["metrics"][row][metric]["estimate"][g]], "ko", ms=4)
    ax.set_xlabel("cut-off: flagged when decile >= cut-off" if row == "compas_score"
                  else f"cut-off: flagged when P({_positive(config, True)}) >= cut-off")
    ax.set_ylabel("error rate (share, 0-1)")
    ax.set_title(f"{labels[row]} (dotted line: operating point)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  finish(fig, f"FPR (solid) and FNR (dashed) as the cut-off moves; positive class: {pos}",
         f"{prefix}_thresholds.png")

  fig, axes = plt.subplots(1, 2, figsize=(13, 4.6))
  for ax, row in zip(axes, rows[:2]):
    cal = rep["calibration"][row]
    for g, color in ((i, protected_color), (j, reference_color)):
      x = (np.arange(1, 11) if row == "compas_score" else cal["score_mean"]["estimate"][g])
      ax.errorbar(x, cal["rate"]["estimate"][g],
                  yerr=[np.nan_to_num(cal["rate"]["estimate"][g] - cal["rate"]["low"][g]),
                        np.nan_to_num(cal["rate"]["high"][g] - cal["rate"]["estimate"][g])],
                  marker="o", ms=4, capsize=2, color=color, label=names[g])
    if row != "compas_score":
      ax.plot([0, 1], [0, 1], "k:", lw=0.8, label="perfect calibration")
    short = _positive(config, True)
    ax.set_xlabel("COMPAS decile score (1-10)" if row == "compas_score" else f"mean predicted P({short}) in bin")
    ax.set_ylabel(f"observed share {short} (0-1)")
    ax.set_title(labels[row], fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  finish(fig, f"Calibration by group with 95 % intervals; positive class: {pos}", f"{prefix}_calibration.png")

  betas = np.asarray(config.report.label_bias_betas, float)
  fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
  for ax, metric in zip(axes, ("accuracy", "fpr", "fnr")):
    for row in rows:
      s = rep["label_bias"][row][metric]
      for g, ls in ((i, "-"), (j, "--")):
        ax.errorbar(betas + (0.003 if g == j else 0), s["estimate"][:, g],
                    yerr=[np.nan_to_num(s["estimate"][:, g] - s["low"][:, g]),
                          np.nan_to_num(s["high"][:, g] - s["estimate"][:, g])],
                    ls=ls, marker="o", ms=3, capsize=2, color=plotting.method_color(row),
                    label=f"{labels[row]}, {names[g]}" if metric == "accuracy" else None)
    ax.set_xlabel("assumed label bias beta in the recorded labels")
    ax.set_ylabel(f"{metric if metric == 'accuracy' else METRIC_NAMES[metric]} vs de-biased labels (0-1)")
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=6)
  finish(fig, f"Scored against labels freed of label bias beta (solid {pair[0]}, dashed {pair[1]}); "
         f"positive class: {pos}", f"{prefix}_label_bias.png")


def _csv_rows(config, rep):
  labels = row_labels(config)
  out = []
  for row in rep["rows"]:
    for g, name in enumerate(rep["groups"]):
      for m in gm.METRICS:
        s = rep["metrics"][row][m]
        out.append({"row": row, "row_label": labels[row], "group": name, "metric": m,
                    "estimate": s["estimate"][g], "low": s["low"][g], "high": s["high"][g],
                    "undefined": s["undefined"][g], "replicates": s["replicates"],
                    "split_std": s["split_std"][g]})
  return out


def write_report(config, table, workdir) -> dict:
  """Computes and writes the report unless its JSON (written last) is already in ``workdir``."""
  prefix = "court_report" if config.dataset == "compas" else "group_report"
  path = os.path.join(workdir, f"{prefix}.json")
  done = common.finished_result(workdir, f"{prefix}.json")
  if done is not None:
    return done
  rep = compute(config, table)
  _plots(config, rep, workdir)
  io.write_csv(os.path.join(workdir, f"{_prefix(config)}_groups.csv"), _csv_rows(config, rep))
  io.write_text(os.path.join(workdir, f"{prefix}.md"), markdown(config, rep))
  io.write_json(path, rep)
  return io.read_json(path)
