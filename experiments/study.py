"""The summary statistics and plots of a pruning study (experiments.prune, experiments.joint), as
Renda, Frankle & Carbin (ICLR 2020) report them and as their plotting code computes them
(lottery-ticket/rewinding-iclr20-public, vision/plot/common.py).

Input: result rows, one per (arm, seed, round), round 0 being the dense network of that seed.

* `aggregate`: per (arm, round) over seeds, ``<field>_mean``, ``_std`` (sample std, ``None`` =
  "n/a" for one seed), ``_median``, ``_min``, ``_max``.
* `select_t`: when several arms share a pruner and a retraining method and differ only in the
  retraining time ``t`` (``'global_magnitude:lr_rewind@10'``, ``...@20``), the best ``t`` is chosen
  per round (density) by the **median validation accuracy** over seeds, and the test accuracy of
  that ``t`` is reported; the selected rows get the arm ``'pruner:retrain@val'`` and the field
  ``selected_arm``. This is the official plotting code's choice (``lth_plot``: group by retrain
  time, sort by median ``val_acc``, report the test accuracy's median, min and max); the paper
  selects the retraining time on the validation set.
* `matching`: per arm, the largest compression ratio at which the arm still matches the dense
  network, two ways: the mean test accuracy over seeds is at least the dense mean minus one dense
  standard deviation (the paper's "within one standard deviation"; n/a with one seed), and the
  median is at least the dense minimum (within the dense min/max band, the statistic the paper's
  figures draw). The dense network itself (compression 1) always matches.
* `paired_differences`: for comparisons ``'arm_a - arm_b'``, per round, the test accuracy of ``a``
  minus ``b`` paired by seed (both arms prune the same dense network of a seed), with its mean,
  sample std and 95% Student-t confidence interval (n - 1 degrees of freedom; n/a for one seed).
* `plot`: test accuracy against the compression ratio (log x), one colour per retraining method,
  one line style per pruner, the median with a min/max band (the paper's figures) or the mean with
  a +-1 std band (``band='mean_std'``); the dense network as a grey band.
* `plot_layer_density`: per arm, every layer's density against the round, with the collapse
  threshold.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from lipprune import plotting

# Fields aggregated over seeds in every study (extra ``test_<name>`` metrics are added by hooks).
AGG_FIELDS = ("density", "compression", "param_compression", "flops_ratio", "train_accuracy",
              "test_accuracy", "test_loss", "pruned_test_accuracy", "val_accuracy")
BANDS = ("median_minmax", "mean_std")
SELECTED_SUFFIX = "@val"


def extra_fields(rows: list[dict]) -> tuple[str, ...]:
  """The ``test_<name>`` metrics that an ``extra_eval`` hook added to every row."""
  keys = set.intersection(*(set(r) for r in rows)) if rows else set()
  return tuple(sorted(k for k in keys if k.startswith("test_") and k not in AGG_FIELDS))


def describe(values) -> dict[str, float | None]:
  """``mean``, ``std`` (ddof 1; ``None`` for one value), ``median``, ``min``, ``max``."""
  v = np.asarray(values, np.float64)
  return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else None,
          "median": float(np.median(v)), "min": float(v.min()), "max": float(v.max())}


def aggregate(rows: list[dict]) -> list[dict]:
  """Statistics over seeds of every (arm, round), for the fields every row has."""
  fields = [f for f in AGG_FIELDS if rows and all(f in r for r in rows)] + list(extra_fields(rows))
  groups: dict[tuple, list[dict]] = {}
  for r in rows:
    groups.setdefault((r["arm"], r["round"]), []).append(r)
  out = []
  for (arm, rnd), rs in sorted(groups.items()):
    rec: dict[str, Any] = {"arm": arm, "round": rnd, "num_seeds": len(rs)}
    for f in fields:
      rec.update({f"{f}_{k}": v for k, v in describe([x[f] for x in rs]).items()})
    out.append(rec)
  return out


def method_of(arm: str) -> str:
  """``'pruner:retrain@t'`` -> ``'pruner:retrain'``."""
  return arm.partition("@")[0]


def t_groups(arms) -> dict[str, list[str]]:
  """The methods listed with several retraining times: ``{method: [arm, ...]}``."""
  groups: dict[str, list[str]] = {}
  for a in dict.fromkeys(arms):
    groups.setdefault(method_of(a), []).append(a)
  return {m: arms for m, arms in groups.items() if len(arms) > 1}


def select_t(summary: list[dict]) -> list[dict]:
  """For each method with several ``t``: per round, the summary row of the ``t`` with the highest
  median validation accuracy (ties: the first listed), renamed ``'<method>@val'`` and carrying
  ``selected_arm``. Needs ``val_accuracy`` (a validation split); returns ``[]`` without it."""
  if not summary or "val_accuracy_median" not in summary[0]:
    return []
  by_key = {(s["arm"], s["round"]): s for s in summary}
  out = []
  for method, arms in t_groups([s["arm"] for s in summary]).items():
    for rnd in sorted({s["round"] for s in summary if s["arm"] in arms}):
      cands = [by_key[(a, rnd)] for a in arms if (a, rnd) in by_key]
      best = max(cands, key=lambda s: s["val_accuracy_median"])  # max keeps the first of ties
      out.append({**best, "arm": method + SELECTED_SUFFIX, "selected_arm": best["arm"]})
  return out


def matching(summary: list[dict]) -> list[dict]:
  """Per arm of ``summary`` (selected ``@val`` rows included): the largest compression at which the
  test accuracy still matches the dense network's (see the module docstring)."""
  out = []
  for arm in dict.fromkeys(s["arm"] for s in summary):
    rs = sorted((s for s in summary if s["arm"] == arm), key=lambda s: s["round"])
    dense = rs[0]
    rec: dict[str, Any] = {"arm": arm, "num_seeds": dense["num_seeds"]}
    for k in ("mean", "std", "median", "min", "max"):
      rec[f"dense_test_accuracy_{k}"] = dense[f"test_accuracy_{k}"]
    rules = {"mean_std": None if dense["test_accuracy_std"] is None else
             (lambda s, d=dense: s["test_accuracy_mean"] >= d["test_accuracy_mean"]
              - d["test_accuracy_std"]),
             "median_minmax": (lambda s, d=dense:
                               s["test_accuracy_median"] >= d["test_accuracy_min"])}
    for name, rule in rules.items():
      center = "mean" if name == "mean_std" else "median"
      best = None if rule is None else max((s for s in rs if rule(s)),
                                           key=lambda s: s["compression_mean"])
      rec[f"max_compression_{name}"] = None if best is None else best["compression_mean"]
      rec[f"round_{name}"] = None if best is None else best["round"]
      rec[f"test_accuracy_{center}_at_{name}"] = (None if best is None
                                                  else best[f"test_accuracy_{center}"])
    out.append(rec)
  return out


def parse_comparison(text: str) -> tuple[str, str]:
  """``'arm_a - arm_b'`` -> ``(arm_a, arm_b)``."""
  a, sep, b = text.partition(" - ")
  if not sep or not a.strip() or not b.strip():
    raise ValueError(f"comparison {text!r} must look like "
                     "'pruner:retrain[@t] - pruner:retrain[@t]'")
  return a.strip(), b.strip()


def t_interval(d) -> tuple[float, float] | None:
  """The 95% Student-t confidence interval ``(low, high)`` of the mean of ``d`` (n - 1 degrees of
  freedom), or ``None`` for fewer than two values."""
  from scipy import stats  # pylint: disable=g-import-not-at-top
  d = np.asarray(d, np.float64)
  if len(d) < 2:
    return None
  half = float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))
  return float(d.mean()) - half, float(d.mean()) + half


def paired_differences(rows: list[dict], comparisons, field: str = "test_accuracy") -> list[dict]:
  """Per comparison ``'a - b'`` and round: ``field`` of arm ``a`` minus arm ``b`` over the seeds
  both have, ``diff_mean``, ``diff_std``, ``ci95_low``, ``ci95_high`` (``None`` for one seed)."""
  value = {(r["arm"], r["round"], r["seed"]): r for r in rows}
  out = []
  for text in comparisons:
    a, b = parse_comparison(text)
    for rnd in sorted({r["round"] for r in rows if r["arm"] == a}):
      seeds = sorted(k[2] for k in value if k[:2] == (a, rnd) and (b, rnd, k[2]) in value)
      if not seeds:
        continue
      d = np.asarray([value[(a, rnd, s)][field] - value[(b, rnd, s)][field] for s in seeds])
      rec = {"comparison": text, "round": rnd, "num_seeds": len(seeds),
             "density_a": float(np.mean([value[(a, rnd, s)]["density"] for s in seeds])),
             "compression_a": float(np.mean([value[(a, rnd, s)]["compression"] for s in seeds])),
             f"{field}_diff_mean": float(d.mean()), f"{field}_diff_std": None,
             "ci95_low": None, "ci95_high": None}
      interval = t_interval(d)
      if interval is not None:
        rec.update({f"{field}_diff_std": float(d.std(ddof=1)), "ci95_low": interval[0],
                    "ci95_high": interval[1]})
      out.append(rec)
  return out


def _style(arm: str, marker: str) -> dict:
  """One colour per retraining method (`lipprune.plotting.method_color`), one line style per
  pruner."""
  pruner = arm.partition(":")[0]
  return {"color": plotting.method_color(arm),
          "linestyle": plotting.PRUNER_STYLES.get(pruner, "--"), "marker": marker,
          "linewidth": 2.5 if arm.endswith(SELECTED_SUFFIX) else 1.5}


def _center_band(rows, field: str, band: str, scale: float):
  center = "median" if band == "median_minmax" else "mean"
  y = np.asarray([scale * s[f"{field}_{center}"] for s in rows])
  if band == "median_minmax":
    lo = np.asarray([scale * s[f"{field}_min"] for s in rows])
    hi = np.asarray([scale * s[f"{field}_max"] for s in rows])
  else:
    e = np.asarray([scale * (s[f"{field}_std"] or 0.0) for s in rows])
    lo, hi = y - e, y + e
  return y, lo, hi


def _save(fig, path: str) -> None:
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  from lipprune.train import io  # pylint: disable=g-import-not-at-top
  fig.tight_layout()
  io.save_figure(fig, path, dpi=120)
  plt.close(fig)


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def plot(summary: list[dict], path: str, title: str = "", metric: str = "test_accuracy",
         band: str = "median_minmax") -> None:
  """``metric`` (accuracies in %) against the compression ratio, one line per arm; arms of a method
  with several ``t`` are drawn once, as the validation-selected ``'<method>@val'`` line."""
  if band not in BANDS:
    raise ValueError(f"band must be one of {list(BANDS)}, got {band!r}")
  plt = _pyplot()
  grouped = {a for arms in t_groups([s["arm"] for s in summary
                                     if not s["arm"].endswith(SELECTED_SUFFIX)]).values()
             for a in arms}
  has_selection = any(s["arm"].endswith(SELECTED_SUFFIX) for s in summary)
  arms = [a for a in dict.fromkeys(s["arm"] for s in summary)
          if not (has_selection and a in grouped)]
  scale = plotting.metric_scale(metric)
  fig, ax = plt.subplots(figsize=(7.5, 4.8))
  dense = [s for s in summary if s["round"] == 0][:1]
  if dense:
    y, lo, hi = _center_band(dense, metric, band, scale)
    ax.axhspan(lo[0], hi[0], color="0.85", zorder=0)
    ax.axhline(y[0], color="0.4", linewidth=1, linestyle="--", label="dense network", zorder=1)
  markers = plotting.method_markers(arms)
  for arm in arms:
    rs = sorted((s for s in summary if s["arm"] == arm), key=lambda s: s["round"])
    style = _style(arm, markers[arm])
    x = np.asarray([s["compression_mean"] for s in rs])
    y, lo, hi = _center_band(rs, metric, band, scale)
    ax.plot(x, y, ms=4, label=arm, **style)
    if len(rs) and rs[0]["num_seeds"] > 1:
      ax.fill_between(x, lo, hi, color=style["color"], alpha=0.15, linewidth=0)
  plotting.compression_axis(ax)
  ax.set_xlabel("compression ratio (x): prunable weights dense / alive, log scale")
  what = ("median, band min/max" if band == "median_minmax" else "mean, band ± 1 std")
  ax.set_ylabel(f"{plotting.metric_label(metric)}\n{what} over seeds")
  ax.set_title(title)
  ax.grid(True, which="both", alpha=0.3)
  ax.legend(fontsize=7)
  _save(fig, path)


def plot_layer_density(rows: list[dict], arm: str, path: str, title: str = "",
                       collapse_density: float | None = None) -> None:
  """Per-layer density (log scale, median over seeds) of ``arm`` against the round; layers in
  data-flow order from dark to light; the collapse threshold dashed."""
  plt = _pyplot()
  rs = [r for r in rows if r["arm"] == arm]
  rounds = sorted({r["round"] for r in rs})
  layers = list(rs[0]["layer_density"])
  fig, ax = plt.subplots(figsize=(7.5, 4.8))
  cmap = plt.get_cmap("viridis")
  for i, layer in enumerate(layers):
    y = [float(np.median([r["layer_density"][layer] for r in rs if r["round"] == k]))
         for k in rounds]
    ax.plot(rounds, np.maximum(y, 1e-6), marker="o", ms=3,
            color=cmap(i / max(len(layers) - 1, 1)), label=layer if len(layers) <= 12 else None)
  if collapse_density:
    ax.axhline(collapse_density, color="red", linestyle="--", linewidth=1,
               label=f"collapse threshold ({collapse_density:g})")
  plotting.log_axis(ax, "y")
  from matplotlib import ticker  # pylint: disable=g-import-not-at-top
  ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
  ax.set_xlabel("pruning round (0 = dense)")
  ax.set_ylabel("layer density (alive / size, log scale)")
  ax.set_title(f"{title}\n{arm}: per-layer density, median over seeds" if title else arm)
  ax.grid(True, which="both", alpha=0.3)
  if len(layers) > 12:
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, len(layers) - 1))
    fig.colorbar(sm, ax=ax, label="layer index (data-flow order)")
  ax.legend(fontsize=7)
  _save(fig, path)


def flat_row(row: dict) -> dict:
  """A result row for CSV: per-layer densities as ``layer_density/<path>`` columns, the collapsed
  layers joined by ``;``."""
  out = {k: v for k, v in row.items() if k not in ("layer_density", "collapsed_layers")}
  out["collapsed_layers"] = ";".join(row.get("collapsed_layers", []))
  out.update({f"layer_density/{k}": v for k, v in row.get("layer_density", {}).items()})
  return out


def safe_name(arm: str) -> str:
  """An arm label as a file-name part: ``'random:lr_rewind@7.5'`` -> ``'random_lr_rewind_t7.5'``."""
  return arm.replace(":", "_").replace("@", "_t")


def write(workdir: str, rows: list[dict], *, title: str = "", band: str = "median_minmax",
          collapse_density: float | None = None, comparisons=()) -> dict:
  """Writes results.csv (one row per arm, seed and round), summary.csv (statistics over seeds, the
  validation-selected ``@val`` rows appended), matching.csv, paired.csv (with ``comparisons``),
  results.json and the plots (from process 0); returns the results dict."""
  import jax  # pylint: disable=g-import-not-at-top
  from lipprune.train import io  # pylint: disable=g-import-not-at-top
  summary = aggregate(rows)
  summary += select_t(summary)
  match = matching(summary)
  paired = paired_differences(rows, comparisons)
  results = {"finished": True, "rows": rows, "summary": summary, "matching": match,
             "paired": paired}
  if jax.process_index() == 0:
    io.write_csv(os.path.join(workdir, "results.csv"), [flat_row(r) for r in rows])
    io.write_csv(os.path.join(workdir, "summary.csv"), summary)
    io.write_csv(os.path.join(workdir, "matching.csv"), match)
    if paired:
      io.write_csv(os.path.join(workdir, "paired.csv"), paired)
    plot(summary, os.path.join(workdir, "accuracy_vs_compression.png"), title, band=band)
    for field in extra_fields(rows):
      plot(summary, os.path.join(workdir, f"{field}_vs_compression.png"), title, metric=field,
           band=band)
    for arm in dict.fromkeys(r["arm"] for r in rows):
      if rows[0].get("layer_density"):
        plot_layer_density(rows, arm, os.path.join(workdir, f"layer_density_{safe_name(arm)}.png"),
                           title, collapse_density)
    io.write_json(os.path.join(workdir, "results.json"), results)
  return results
