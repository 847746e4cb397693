r"""One command per published artifact: every table and figure of README.md and docs/*.md that
a run produced.

  python -m experiments.reproduce --list
  python -m experiments.reproduce pruning_digits_mlp ['joint_*' ...] [--workdir_root=DIR]
  python -m experiments.reproduce robust_separation_digits --check

An artifact is made by one or more runs (a job module, its config and the overrides that the docs
state) and written to the repository: a figure is copied from its run's workdir to
docs/img/<name>.png; a table is rendered as Markdown from the runs' result files and written
between the marker comments ``<!-- reproduce:<name> -->`` and ``<!-- /reproduce -->`` of its docs
file, so a rerun replaces exactly that block. Each run has one workdir,
``<workdir_root>/<run name>`` (default workdirs/reproduce), shared by every artifact made from it
and started once per invocation; the jobs resume unfinished work and skip finished work, and a run
whose finished-marker file exists is not started at all.

``--check`` reruns a table into a temporary workdir (or ``--workdir_root``) and compares it with
the block committed in its docs file, number by number within the artifact's stated tolerance (0:
the text must be identical), printing a diff and exiting with status 1 on a mismatch. Only tables
that state a tolerance can be checked; ``--list`` marks them.

The registry (``RUNS``, ``ARTIFACTS``) is the one place that names configs and overrides.
"""
from __future__ import annotations

import csv
import dataclasses
import difflib
import fnmatch
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Callable

from absl import app, flags
import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_DIR = "experiments/configs"
MARKER_OPEN = "<!-- reproduce:{name} -->"
MARKER_CLOSE = "<!-- /reproduce -->"
MARKER_RE = re.compile(r"<!-- reproduce:([A-Za-z0-9_]+) -->")

_LIST = flags.DEFINE_bool("list", False, "List the registered artifacts, their runs and commands.")
_CHECK = flags.DEFINE_bool("check", False, "Rerun the named tables into a temporary workdir and "
                           "compare them with the committed blocks instead of writing them.")
_WORKDIR_ROOT = flags.DEFINE_string(
    "workdir_root", None, "Folder holding one workdir per run (default: workdirs/reproduce under "
    "the repository; with --check, a temporary folder).")
_DOCS_ROOT = flags.DEFINE_string(
    "docs_root", REPO_ROOT, "Folder holding README.md and docs/, read by --check and written "
    "otherwise (default: this repository).")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", os.environ.get("LIPPRUNE_DATA_DIR", ""),
    "Folder with the tabular data files (compas-scores-two-years.csv, adult.data, adult.test, "
    "german.data) for the runs that need them; default $LIPPRUNE_DATA_DIR.")


@dataclasses.dataclass(frozen=True)
class Run:
  """One job invocation: ``python -m experiments.<job> --config=<config> --config.k=v ...``.

  ``finished``: the workdir file whose presence means the job finished (then it is not started);
  ``None`` for jobs without one (fairness: the job itself skips its finished settings).
  ``data_dir``: the run reads tabular data and gets ``--config.data_dir=<--data_dir>``.
  """
  job: str
  config: str
  overrides: tuple[tuple[str, str], ...] = ()
  finished: str | None = None
  data_dir: bool = False

  @property
  def config_path(self) -> str:
    return os.path.join(CONFIG_DIR, self.config)

  def args(self, workdir: str, data_dir: str = "") -> list[str]:
    extra = (("data_dir", data_dir),) if self.data_dir else ()
    return ([f"--config={self.config_path}"] +
            [f"--config.{k}={v}" for k, v in self.overrides + extra] + [f"--workdir={workdir}"])

  def command(self, workdir: str) -> str:
    args = self.args(workdir, "DATA_DIR")
    return " ".join(["python -m experiments." + self.job] + [_shell_quote(a) for a in args])


def _shell_quote(arg: str) -> str:
  key, _, value = arg.partition("=")
  return arg if re.fullmatch(r"[\w.,/:@+=-]*", value) else f"{key}='{value}'"


_PRUNE = dict(job="prune", finished="results.json")
_JOINT = dict(job="joint", finished="results.json")
_ROBUST = dict(job="robust", finished="table.csv")
_SEPARATION = dict(job="separation", finished="separation.json")
_FAIR = dict(job="fairness", data_dir=True)
_SEEDS10 = ("num_seeds", "10")
# The pruning and joint studies in docs/ were run before lipprune 0.2 made the select the default
# way to mask a gradient (lipprune.train.make_train_step's fuse_masks): their commands pin lipprune
# 0.1's product, so that rerunning them gives the published numbers bit for bit.
_MASKS01 = ("fuse_masks", "False")


def _compare(t: str) -> tuple[str, str]:
  return ("compare", f'("global_magnitude:lr_rewind - global_magnitude:weight_rewind@{t}",'
          f'"global_magnitude:weight_rewind@{t} - global_magnitude:fine_tune")')


def _oneshot(density: str, t: str) -> tuple[tuple[str, str], ...]:
  """One-shot pruning to ``density`` (e.g. '0.02'), 10 seeds, every arm, the paired comparisons."""
  return (("prune.mode", "one_shot"), ("prune.target_sparsity", f"{1 - float(density):.2f}"),
          _SEEDS10, _compare(t), _MASKS01)


# Every run behind a published artifact, with the overrides its docs command states (replicates:
# `num_seeds`, the one name every job uses).
RUNS: dict[str, Run] = {
    # docs/pruning.md, "Initialization and layer collapse": one-shot to 2% density, four recipes
    # (the default one is the 2% run of "The CPU experiment").
    "prune_digits_oneshot_nofloor": Run(
        config="prune_digits_mlp.py",
        overrides=_oneshot("0.02", "22.5") + (("prune.min_density", "0"),), **_PRUNE),
    "prune_digits_oneshot_lamp": Run(
        config="prune_digits_mlp.py",
        overrides=_oneshot("0.02", "22.5") + (("prune.min_density", "0"),
                                              ("prune.normalize", "lamp")), **_PRUNE),
    "prune_digits_oneshot_he": Run(
        config="prune_digits_mlp.py",
        overrides=_oneshot("0.02", "22.5") + (("prune.min_density", "0"),
                                              ("model_kwargs.kernel_init", "he_normal")), **_PRUNE),
    # docs/pruning.md, "The CPU experiment": one-shot at 5%, 2%, 1% and iterative, 10 seeds, paired
    # comparisons (weight rewinding at t = 0.75 T: @22.5 on digits, @15 on mnist5k).
    **{f"prune_{data}_oneshot_{d[2:]}": Run(config=f"prune_{data}_mlp.py",
                                            overrides=_oneshot(d, t), **_PRUNE)
       for data, t in (("digits", "22.5"), ("mnist5k", "15")) for d in ("0.05", "0.02", "0.01")},
    "prune_digits_iterative": Run(config="prune_digits_mlp.py",
                                  overrides=(_SEEDS10, _compare("22.5"), _MASKS01), **_PRUNE),
    "prune_mnist5k_iterative": Run(config="prune_mnist5k_mlp.py",
                                   overrides=(_SEEDS10, _compare("15"), _MASKS01), **_PRUNE),
    # docs/robustness.md.
    "robust_digits_check": Run(
        config="robust_digits_mlp.py",
        overrides=(("methods", "natural,trades:beta=6"), ("num_seeds", "1")), **_ROBUST),
    "robust_digits_mlp": Run(config="robust_digits_mlp.py", overrides=(("num_seeds", "5"),),
                             **_ROBUST),
    "robust_mnist5k_mlp": Run(config="robust_mnist5k_mlp.py", overrides=(("num_seeds", "5"),),
                              **_ROBUST),
    "separation_digits": Run(config="separation_digits.py", **_SEPARATION),
    "separation_mnist5k": Run(config="separation_mnist5k.py", **_SEPARATION),
    # docs/fairness.md, "Run it".
    "fair_syn": Run(config="fairness_synthetic.py", job="fairness"),
    "fair_mlp": Run(config="fairness_synthetic.py:mlp", job="fairness"),
    "fair_syn_subsample": Run(config="fairness_synthetic.py", job="fairness", overrides=(
        ("generator.selection", "subsample"), ("sweeps", "('sigma',)"))),
    "fair_compas": Run(config="fairness_compas.py", **_FAIR),
    "fair_adult": Run(config="fairness_adult.py", **_FAIR),
    "fair_german": Run(config="fairness_german.py", **_FAIR),
    # docs/joint.md.
    "joint_trades": Run(config="joint_robust_digits.py", overrides=(_SEEDS10, _MASKS01),
                        **_JOINT),
    "joint_trades_control": Run(config="joint_robust_digits.py", overrides=(
        _SEEDS10, ("prune.fraction", "0"), ("arms", "('global_magnitude:lr_rewind',)"), _MASKS01),
        **_JOINT),
    "joint_natural": Run(config="joint_robust_digits.py:natural", overrides=(_SEEDS10, _MASKS01),
                         **_JOINT),
    "joint_fair": Run(config="joint_fair_compas.py", data_dir=True,
                      overrides=(_SEEDS10, _MASKS01), **_JOINT),
    "joint_fair_baseline": Run(config="joint_fair_compas.py:baseline", data_dir=True,
                               overrides=(_SEEDS10, _MASKS01), **_JOINT),
}


# ---------------------------------------------------------------------------------------------
# Reading result files and formatting numbers.


def read_csv(path: str) -> list[dict]:
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


def number(text) -> float:
  """A CSV/JSON cell as a float; empty or ``None`` (an undefined std) is NaN."""
  if text is None or text == "":
    return math.nan
  return float(text)


def mean_std(mean, std, digits: int = 2, scale: float = 1.0) -> str:
  """``mean ± std``; a missing or undefined std (one replicate) shows ``n/a``, never ``0``."""
  m, s = number(mean), number(std)
  spread = "n/a" if math.isnan(s) else f"{scale * s:.{digits}f}"
  return f"{scale * m:.{digits}f} ± {spread}"


def table_lines(header: list[str], rows: list[list[str]]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(r) + " |" for r in rows]
  return "\n".join(lines) + "\n"


def markdown_rows(path: str) -> str:
  """The table lines of a Markdown file a job wrote (its caption lines dropped)."""
  with open(path) as f:
    return "".join(line for line in f if line.startswith("|"))


# ---------------------------------------------------------------------------------------------
# Renderers: (workdirs by run name) -> Markdown table.


def _prune_summary(workdir: str) -> dict[tuple[str, int], dict]:
  """summary.csv by (arm, round), in the order of the config's ``arms``."""
  rows = [r for r in read_csv(os.path.join(workdir, "summary.csv"))
          if not r["arm"].endswith("@val")]
  with open(os.path.join(workdir, "config.json")) as f:
    order = {arm: i for i, arm in enumerate(json.load(f)["arms"])}
  rows.sort(key=lambda r: (order.get(r["arm"], len(order)), int(r["round"])))
  return {(r["arm"], int(r["round"])): r for r in rows}


def _arms(summary) -> list[str]:
  return list(dict.fromkeys(arm for arm, _ in summary))


def _percent(fraction: float) -> str:
  return f"{100 * fraction:.1f}" if fraction >= 1e-3 else f"{100 * fraction:.2f}"


def _collapsed(rows: list[dict]) -> str:
  """'k of n' rows reporting a collapsed layer, with each such layer's density range."""
  hits = [r for r in rows if r["collapsed_layers"]]
  layers = dict.fromkeys(l for r in hits for l in r["collapsed_layers"].split(";"))
  where = []
  for layer in layers:
    values = sorted(number(r[f"layer_density/{layer}"]) for r in hits)
    low, high = _percent(values[0]), _percent(values[-1])
    where.append(f"{layer} at {low}%" if low == high else f"{layer} at {low}-{high}%")
  return f"{len(hits)} of {len(rows)}" + (f" ({', '.join(where)})" if where else "")


def _last_round(summary) -> int:
  return max(r for _, r in summary)


def prune_rounds(run: str, rounds: tuple[int, ...]):
  """Test accuracy (%) per arm at the given rounds (mean ± std over seeds), density in the head;
  rounds beyond the run's last are dropped."""
  def render(workdirs):
    summary = _prune_summary(workdirs[run])
    arms = _arms(summary)
    kept = [r for r in rounds if (arms[0], r) in summary]
    head = ["arm"] + [f"round {r} ({100 * number(summary[arms[0], r]['density_mean']):.1f}%)"
                      for r in kept]
    rows = [[f"`{a}`"] + [mean_std(summary[a, r]["test_accuracy_mean"],
                                   summary[a, r]["test_accuracy_std"], scale=100) for r in kept]
            for a in arms]
    return table_lines(head, rows)
  return render


def prune_final_round(columns: dict[str, str], rows: tuple[tuple[str, dict[str, str]], ...]):
  """Test accuracy (%) at each run's last round; ``rows``: (label, {column: arm}); the arm
  ``None`` is the dense network (round 0)."""
  def render(workdirs):
    summaries = {c: _prune_summary(workdirs[run]) for c, run in columns.items()}
    out = []
    for label, arms in rows:
      cells = []
      for c, summary in summaries.items():
        arm = arms[c]
        key = (_arms(summary)[0], 0) if arm is None else (arm, _last_round(summary))
        cells.append(mean_std(summary[key]["test_accuracy_mean"], summary[key]["test_accuracy_std"],
                              scale=100))
      out.append([label] + cells)
    return table_lines(["arm"] + list(columns), out)
  return render


def prune_oneshot(recipes: tuple[tuple[str, str], ...], arms: tuple[str, ...]):
  """One row per recipe (run): per arm of ``arms`` at the last round 'mean ± std, median [min, max]'
  of the test accuracy (%), and how many (seed, arm) rows of any arm report a collapsed layer."""
  def render(workdirs):
    out = []
    head = ["recipe"] + [f"`{a}`" for a in arms] + ["collapsed"]
    for label, run in recipes:
      summary = _prune_summary(workdirs[run])
      last = _last_round(summary)
      cells = []
      for a in arms:
        s = summary[a, last]
        cells.append(f"{mean_std(s['test_accuracy_mean'], s['test_accuracy_std'], scale=100)}, "
                     f"{100 * number(s['test_accuracy_median']):.2f} "
                     f"[{100 * number(s['test_accuracy_min']):.2f}, "
                     f"{100 * number(s['test_accuracy_max']):.2f}]")
      rows = [r for r in read_csv(os.path.join(workdirs[run], "results.csv"))
              if int(r["round"]) == last]
      out.append([label] + cells + [_collapsed(rows)])
    return table_lines(head, out)
  return render


def _interval(row: dict, scale: float = 100.0, digits: int = 2) -> str:
  """'mean [low, high]' of a paired difference from paired.csv; 'n/a' bounds for one seed."""
  m, lo, hi = (scale * number(row[k]) for k in ("test_accuracy_diff_mean", "ci95_low", "ci95_high"))
  return _mean_interval(m, lo, hi, digits)


def _mean_interval(mean: float, low: float, high: float, digits: int) -> str:
  if math.isnan(low):
    return f"{_signed_points(mean, digits)} [n/a]"
  return (f"{_signed_points(mean, digits)} [{_signed_points(low, digits)}, "
          f"{_signed_points(high, digits)}]")


def _signed_points(value: float, digits: int) -> str:
  return f"{value:+.{digits}f}".replace("-", "\u2212")


def prune_matching(runs: tuple[tuple[str, str], ...]):
  """Renda et al.'s summary: per arm, the largest compression whose test accuracy still matches the
  dense network's (mean within one std of the dense mean; median within the dense min/max), from
  each run's matching.csv; ``runs``: (column label, run)."""
  def render(workdirs):
    tables = {label: {r["arm"]: r for r in read_csv(os.path.join(workdirs[run], "matching.csv"))}
              for label, run in runs}
    arms = list(dict.fromkeys(a for t in tables.values() for a in t))
    head = ["arm"] + [f"{label}: {rule}" for label, _ in runs
                      for rule in ("mean ± std rule", "median, min/max rule")]
    out = []
    for arm in arms:
      cells = []
      for label, _ in runs:
        row = tables[label].get(arm)
        for rule in ("mean_std", "median_minmax"):
          cells.append("-" if row is None else f"{number(row[f'max_compression_{rule}']):.1f}x "
                       f"(round {row[f'round_{rule}']})")
      out.append([f"`{arm}`"] + cells)
    return table_lines(head, out)
  return render


def prune_paired(settings: tuple[tuple[str, str, tuple[int, ...]], ...],
                 comparisons: tuple[tuple[str, str], ...]):
  """Paired test-accuracy differences (points, mean over seeds [95% Student-t interval], from each
  run's paired.csv); ``settings``: (label, run, rounds), one row per (setting, round);
  ``comparisons``: (column head, ``config.compare`` entry)."""
  def render(workdirs):
    out = []
    for label, run, rounds in settings:
      paired = {(r["comparison"], int(r["round"])): r
                for r in read_csv(os.path.join(workdirs[run], "paired.csv"))}
      for rnd in rounds:
        first = paired[comparisons[0][1], rnd]
        density = f"{100 * number(first['density_a']):.1f}%"
        out.append([label if len(rounds) == 1 else f"{label}, round {rnd}", density,
                    first["num_seeds"]] + [_interval(paired[c, rnd]) for _, c in comparisons])
    head = ["schedule", "density", "seeds"] + [h for h, _ in comparisons]
    return table_lines(head, out)
  return render


def joint_paired_control(run: str, control: str, rounds: tuple[int, ...],
                         metrics: tuple[tuple[str, str, float, int], ...]):
  """Each arm of ``run`` minus the unpruned control (``control``'s only arm) at the same round,
  paired by seed: mean [95% Student-t interval] per metric (``metrics`` as in `joint_rounds`)."""
  def render(workdirs):
    pruned = read_csv(os.path.join(workdirs[run], "results.csv"))
    ref = {(int(r["round"]), r["seed"]): r
           for r in read_csv(os.path.join(workdirs[control], "results.csv"))}
    out = []
    for arm in dict.fromkeys(r["arm"] for r in pruned):
      for rnd in rounds:
        rows = [r for r in pruned if r["arm"] == arm and int(r["round"]) == rnd
                and (rnd, r["seed"]) in ref]
        if not rows:
          continue
        cells = []
        for _, field, scale, digits in metrics:
          d = np.asarray([number(r[field]) - number(ref[rnd, r["seed"]][field]) for r in rows])
          cells.append(_paired_cell(scale * d, digits))
        density = np.mean([number(r["density"]) for r in rows])
        out.append([arm.split(":", 1)[-1], str(rnd), f"{100 * density:.1f}%", str(len(rows))]
                   + cells)
    return table_lines(["arm", "round", "density", "seeds"] + [h for h, *_ in metrics], out)
  return render


def _paired_cell(d: np.ndarray, digits: int) -> str:
  """'mean [95% Student-t interval]' of paired differences ``d`` (as study.paired_differences)."""
  from . import study  # pylint: disable=g-import-not-at-top
  low, high = study.t_interval(d) or (math.nan, math.nan)
  return _mean_interval(float(d.mean()), low, high, digits)


def workdir_markdown(run: str, filename: str):
  def render(workdirs):
    return markdown_rows(os.path.join(workdirs[run], filename))
  return render


def robust_columns(run: str, methods: tuple[tuple[str, str], ...]):
  """Test accuracy, adversarial test accuracy (%) and test Lipschitz constant per method."""
  def render(workdirs):
    with open(os.path.join(workdirs[run], "table.json")) as f:
      table = {e["method"]: e for e in json.load(f)}
    rows = []
    for label, method in methods:
      e = table[method]
      rows.append([label] + [mean_std(e[k], e[k + "_std"], digits=1, scale=scale) for k, scale in
                             (("test_accuracy", 100), ("test_adv_accuracy", 100),
                              ("test_lipschitz", 1))])
    return table_lines(["method", "test acc", "adv test acc", "test Lipschitz"], rows)
  return render


def _sweep_rows(workdir: str, table: str, keep: tuple[float, ...] = ()) -> list[dict]:
  """The test-split rows of ``tables/<table>.csv``; with ``keep``, only the settings whose swept
  value (beta or sigma) is listed."""
  sweep = table.split("_")[0]
  return [r for r in read_csv(os.path.join(workdir, "tables", table + ".csv"))
          if r["test"] == "test" and (not keep or number(r[sweep]) in keep)]


def _signed(value) -> str:
  """A difference with its sign, the minus typeset as in the docs' prose (U+2212)."""
  return _signed_points(number(value), 3)


FAIR_MODELS = (("reweighing", "reweighing"), ("in-processing", "inprocessing"),
               ("semi-supervised", "semisupervised"))


def fairness_paired_beta(run: str, keep: tuple[float, ...] = ()):
  """Per beta and fair model: paired F1 difference to the baseline on z (± s.e., data sets with a
  positive difference) / on y."""
  def render(workdirs):
    paired = _sweep_rows(workdirs[run], "beta_paired", keep)
    n = int(_sweep_rows(workdirs[run], "beta")[0]["n"])
    betas = list(dict.fromkeys(r["beta"] for r in paired))
    by = {(r["beta"], r["method"]): r for r in paired}
    rows = []
    for beta in betas:
      cells = []
      for _, m in FAIR_MODELS:
        r = by[beta, m]
        cells.append(f"{_signed(r['f1_z_diff'])} ± {number(r['f1_z_diff_se']):.3f} "
                     f"({r['f1_z_diff_positive']}/{n}) / {_signed(r['f1_y_diff'])}")
      rows.append([f"{number(beta):g}"] + cells)
    return table_lines(["beta"] + [f"{label}: on z / on y" for label, _ in FAIR_MODELS], rows)
  return render


def fairness_sigma_di(run: str, keep: tuple[float, ...] = ()):
  """Per sigma: DI (± s.e.) of every model, F1 on z of the baseline, oracle and semi-supervised."""
  def render(workdirs):
    by = {(r["sigma"], r["method"]): r for r in _sweep_rows(workdirs[run], "sigma", keep)}
    models = ("baseline", "oracle") + tuple(m for _, m in FAIR_MODELS)
    rows = []
    for sigma in dict.fromkeys(s for s, _ in by):
      di = [f"{number(by[sigma, m]['di']):.2f} ± {number(by[sigma, m]['di_se']):.2f}"
            for m in models]
      f1 = " / ".join(f"{number(by[sigma, m]['f1_z']):.3f}"
                      for m in ("baseline", "oracle", "semisupervised"))
      rows.append([f"{number(sigma):g}"] + di + [f1])
    head = (["sigma", "baseline DI", "oracle DI"] + [f"{label} DI" for label, _ in FAIR_MODELS]
            + ["F1 on z: baseline / oracle / semi"])
    return table_lines(head, rows)
  return render


def fairness_beta_f1_di(run: str, keep: tuple[float, ...] = ()):
  """Per beta: F1 on z and DI of every model (test split, mean over the data sets)."""
  def render(workdirs):
    by = {(r["beta"], r["method"]): r for r in _sweep_rows(workdirs[run], "beta", keep)}
    f1_models = ("baseline",) + tuple(m for _, m in FAIR_MODELS) + ("oracle",)
    di_models = ("baseline",) + tuple(m for _, m in FAIR_MODELS)
    rows = []
    for beta in dict.fromkeys(b for b, _ in by):
      rows.append([f"{number(beta):g}",
                   " / ".join(f"{number(by[beta, m]['f1_z']):.3f}" for m in f1_models),
                   " / ".join(f"{number(by[beta, m]['di']):.2f}" for m in di_models)])
    return table_lines(["beta", "F1 on z: baseline / reweighing / in-proc. / semi-sup. / oracle",
                        "DI: baseline / reweighing / in-proc. / semi-sup."], rows)
  return render


def fairness_selection_share(measured: tuple[tuple[str, str], ...], keep: tuple[float, ...] = ()):
  """Favourable share among protected training rows after selection: the two definitions'
  expected values at p = 0.5 and the share measured in each run's sigma sweep."""
  def render(workdirs):
    columns = []
    for _, run in measured:
      rows = _sweep_rows(workdirs[run], "sigma", keep)
      columns.append({number(r["sigma"]): number(r["protected_favourable_share"]) for r in rows})
    rows = []
    for sigma in columns[0]:
      expected = [0.5 / (0.5 + sigma * 0.5), 0.5 / sigma]  # bias.selected_share 'paper', 'share'
      rows.append([f"{sigma:g}"] + [f"{v:.3f}" for v in expected]
                  + [f"{c[sigma]:.3f}" for c in columns])
    return table_lines(["sigma", "paper, p = 0.5", "share, p = 0.5"]
                       + [f"{label} (measured)" for label, _ in measured], rows)
  return render


def court_report(run: str, groups: tuple[str, ...]):
  """Per model row and group: FPR, FNR, PPV, accuracy, AUC and share flagged, estimate [95 %]."""
  metrics = (("FPR", "fpr"), ("FNR", "fnr"), ("PPV", "ppv"), ("accuracy", "accuracy"),
             ("AUC", "auc"), ("flagged", "selection_rate"))

  def render(workdirs):
    cells = {(r["row_label"], r["group"], r["metric"]): r
             for r in read_csv(os.path.join(workdirs[run], "court_groups.csv"))}
    rows = []
    for label in dict.fromkeys(k[0] for k in cells):
      for group in groups:
        rows.append([label, group.split(": ", 1)[-1]] + [
            f"{number(c['estimate']):.3f} [{number(c['low']):.2f}, {number(c['high']):.2f}]"
            for c in (cells[label, group, m] for _, m in metrics)])
    return table_lines(["row", "group"] + [h for h, _ in metrics], rows)
  return render


def joint_rounds(parts: tuple[tuple[str, str, bool], ...], rounds: tuple[int, ...],
                 metrics: tuple[tuple[str, str, float, int], ...], first: str):
  """Rows per arm and round of joint runs; ``parts``: (run, row-label prefix, with the dense row);
  ``metrics``: (header, summary field, scale, digits)."""
  def render(workdirs):
    rows = []
    for run, prefix, dense in parts:
      summary = _prune_summary(workdirs[run])
      per_seed = read_csv(os.path.join(workdirs[run], "results.csv"))
      keys = [(_arms(summary)[0], 0)] if dense else []
      keys += [(a, r) for a in _arms(summary) for r in rounds if (a, r) in summary]
      for arm, r in keys:
        s = summary[arm, r]
        seeds = [x for x in per_seed if x["arm"] == arm and int(x["round"]) == r]
        label = f"{prefix}dense (all arms)" if r == 0 else prefix + arm.split(":", 1)[-1]
        rows.append([label, str(r), f"{100 * number(s['density_mean']):.1f}%"] + [
            _metric_cell(s, seeds, f, scale, d) for _, f, scale, d in metrics])
    return table_lines([first, "round", "density"] + [h for h, *_ in metrics], rows)
  return render


def _metric_cell(summary_row: dict, seed_rows: list[dict], field: str, scale: float,
                 digits: int) -> str:
  """mean ± std over seeds, or how many seeds left the metric undefined (NaN, e.g. DI of a
  constant predictor), never a mean over the defined ones only."""
  undefined = sum(math.isnan(number(x[field])) for x in seed_rows)
  if undefined:
    return f"undefined in {undefined} of {len(seed_rows)} seeds"
  return mean_std(summary_row[field + "_mean"], summary_row[field + "_std"], digits, scale)


JOINT_ROBUST_METRICS = (("test acc (%)", "test_accuracy", 100, 1),
                        ("adv test acc (%)", "test_adv_accuracy", 100, 1),
                        ("test Lipschitz", "test_lipschitz", 1, 1))
JOINT_FAIR_METRICS = (("acc on y", "test_accuracy", 100, 1),
                      ("acc on z", "test_accuracy_z", 100, 1), ("DI", "test_di", 1, 2),
                      ("FPR AA", "test_fpr_g1_z", 100, 0),
                      ("FPR other", "test_fpr_g0_z", 100, 0), ("FNR AA", "test_fnr_g1_z", 100, 0),
                      ("FNR other", "test_fnr_g0_z", 100, 0))


# ---------------------------------------------------------------------------------------------
# The registry.


@dataclasses.dataclass(frozen=True)
class Figure:
  """``source`` of the run's workdir, copied to ``docs/img/<name>.png``."""
  run: str
  source: str

  @property
  def runs(self) -> tuple[str, ...]:
    return (self.run,)


@dataclasses.dataclass(frozen=True)
class Table:
  """A Markdown table rendered from the runs' workdirs into the marker block of ``doc``.
  ``tolerance``: largest allowed absolute difference of a number under ``--check`` (0: identical
  text); ``None``: not checkable (too expensive for a check)."""
  runs: tuple[str, ...]
  doc: str
  render: Callable[[dict[str, str]], str]
  tolerance: float | None = None


_DIGITS_ARMS = {"digits": "prune_digits_iterative", "mnist5k": "prune_mnist5k_iterative"}
_SEPARATION_TOLERANCE = 0.0  # an exact computation: the rendered text must not change

ARTIFACTS: dict[str, Figure | Table] = {
    # Pruning.
    "pruning_digits_oneshot": Table(
        runs=("prune_digits_oneshot_02", "prune_digits_oneshot_nofloor",
              "prune_digits_oneshot_lamp", "prune_digits_oneshot_he"),
        doc="docs/pruning.md", render=prune_oneshot((
            ("default: Glorot init, 1% floor", "prune_digits_oneshot_02"),
            ("Glorot init, no floor (`min_density=0`)", "prune_digits_oneshot_nofloor"),
            ("Glorot init, LAMP scores (`normalize='lamp'`, no floor)",
             "prune_digits_oneshot_lamp"),
            ("He init, no floor", "prune_digits_oneshot_he")),
            ("global_magnitude:fine_tune", "global_magnitude:weight_rewind@22.5",
             "global_magnitude:lr_rewind"))),
    **{f"pruning_{data}_paired": Table(
        runs=tuple(f"prune_{data}_oneshot_{d}" for d in ("05", "02", "01")) + iterative,
        doc="docs/pruning.md", render=prune_paired(
            tuple((f"one-shot {int(d)}%", f"prune_{data}_oneshot_{d}", (1,))
                  for d in ("05", "02", "01"))
            + tuple(("iterative", run, (5, 10, 14)) for run in iterative),
            (("LR rewinding − weight rewinding (points)",
              f"global_magnitude:lr_rewind - global_magnitude:weight_rewind@{t}"),
             ("weight rewinding − fine-tuning (points)",
              f"global_magnitude:weight_rewind@{t} - global_magnitude:fine_tune"))))
       for data, t, iterative in (("digits", "22.5", ("prune_digits_iterative",)),
                                  ("mnist5k", "15", ("prune_mnist5k_iterative",)))},
    "pruning_matching": Table(
        runs=("prune_digits_iterative", "prune_mnist5k_iterative"), doc="docs/pruning.md",
        render=prune_matching((("digits", "prune_digits_iterative"),
                               ("mnist5k", "prune_mnist5k_iterative")))),
    "pruning_digits_rounds": Table(runs=("prune_digits_iterative",), doc="docs/pruning.md",
                                   render=prune_rounds("prune_digits_iterative",
                                                       (0, 4, 8, 10, 12, 13, 14))),
    "pruning_mnist5k_rounds": Table(runs=("prune_mnist5k_iterative",), doc="docs/pruning.md",
                                    render=prune_rounds("prune_mnist5k_iterative",
                                                        (0, 4, 8, 10, 12, 13, 14))),
    "pruning_digits_mlp": Figure("prune_digits_iterative", "accuracy_vs_compression.png"),
    "pruning_mnist5k_mlp": Figure("prune_mnist5k_iterative", "accuracy_vs_compression.png"),
    "readme_pruning": Table(
        runs=tuple(_DIGITS_ARMS.values()), doc="README.md", render=prune_final_round(_DIGITS_ARMS, (
            ("dense", {"digits": None, "mnist5k": None}),
            ("lr_rewind (t = T)", {"digits": "global_magnitude:lr_rewind",
                                   "mnist5k": "global_magnitude:lr_rewind"}),
            ("weight_rewind to step 0 (Lottery Ticket)", {
                "digits": "global_magnitude:weight_rewind@30",
                "mnist5k": "global_magnitude:weight_rewind@20"}),
            ("weight_rewind (t = 0.75 T)", {"digits": "global_magnitude:weight_rewind@22.5",
                                            "mnist5k": "global_magnitude:weight_rewind@15"}),
            ("fine_tune", {"digits": "global_magnitude:fine_tune",
                           "mnist5k": "global_magnitude:fine_tune"}),
            ("random pruning + lr_rewind", {"digits": "random:lr_rewind",
                                            "mnist5k": "random:lr_rewind"}),
            ("reinit (control)", {"digits": "global_magnitude:reinit",
                                  "mnist5k": "global_magnitude:reinit"})))),
    # Robustness.
    "robust_digits_check": Table(runs=("robust_digits_check",), doc="docs/robustness.md",
                                 render=workdir_markdown("robust_digits_check", "table.md")),
    "robust_separation_digits": Table(
        runs=("separation_digits",), doc="docs/robustness.md",
        render=workdir_markdown("separation_digits", "separation.md"),
        tolerance=_SEPARATION_TOLERANCE),
    "robust_digits_separation_linf": Figure("separation_digits", "separation_linf.png"),
    "robust_separation_mnist5k": Table(
        runs=("separation_mnist5k",), doc="docs/robustness.md",
        render=workdir_markdown("separation_mnist5k", "separation.md"),
        tolerance=_SEPARATION_TOLERANCE),
    "robust_digits_mlp_table": Table(runs=("robust_digits_mlp",), doc="docs/robustness.md",
                                     render=workdir_markdown("robust_digits_mlp", "table.md")),
    "robust_digits_mlp_adv_vs_lipschitz": Figure("robust_digits_mlp",
                                                 "robust_adv_vs_lipschitz.png"),
    "robust_mnist5k_mlp_table": Table(runs=("robust_mnist5k_mlp",), doc="docs/robustness.md",
                                      render=workdir_markdown("robust_mnist5k_mlp", "table.md")),
    "robust_mnist5k_mlp_adv_vs_lipschitz": Figure("robust_mnist5k_mlp",
                                                  "robust_adv_vs_lipschitz.png"),
    "readme_robust": Table(runs=("robust_digits_mlp",), doc="README.md", render=robust_columns(
        "robust_digits_mlp", (("natural", "natural"), ("adversarial (PGD-10)", "adversarial"),
                              ("TRADES beta = 1", "trades:beta=1"),
                              ("TRADES beta = 3", "trades:beta=3"),
                              ("TRADES beta = 6", "trades:beta=6"), ("LLR", "llr")))),
    # Fairness.
    "fairness_selection_share": Table(
        runs=("fair_syn", "fair_syn_subsample", "fair_compas"), doc="docs/fairness.md",
        render=fairness_selection_share((("paper, generator", "fair_syn"),
                                         ("share, generator", "fair_syn_subsample"),
                                         ("paper, COMPAS", "fair_compas")), (1, 2, 4, 8))),
    "fairness_synthetic_beta_paired": Table(runs=("fair_syn",), doc="docs/fairness.md",
                                            render=fairness_paired_beta(
                                                "fair_syn", (0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75))),
    "fairness_compas_beta_paired": Table(runs=("fair_compas",), doc="docs/fairness.md",
                                         render=fairness_paired_beta(
                                             "fair_compas", (0, 0.1, 0.2, 0.3, 0.5))),
    "fairness_synthetic_sigma": Table(runs=("fair_syn",), doc="docs/fairness.md",
                                      render=fairness_sigma_di("fair_syn", (1, 2, 4, 8))),
    "fairness_court_report": Table(
        runs=("fair_compas",), doc="docs/fairness.md",
        render=court_report("fair_compas", ("race: African-American", "race: Caucasian"))),
    "fairness_adult_beta": Table(runs=("fair_adult",), doc="docs/fairness.md",
                                 render=fairness_beta_f1_di("fair_adult", (0, 0.2, 0.3, 0.5))),
    "fairness_german_beta": Table(runs=("fair_german",), doc="docs/fairness.md",
                                  render=fairness_beta_f1_di("fair_german", (0, 0.2, 0.5))),
    **{f"fairness_synthetic_logistic_{s}": Figure("fair_syn", f"plots/{s}.png")
       for s in ("beta", "eta", "sigma")},
    **{f"fairness_synthetic_mlp_{s}": Figure("fair_mlp", f"plots/{s}.png")
       for s in ("beta", "sigma")},
    "fairness_synthetic_subsample_sigma": Figure("fair_syn_subsample", "plots/sigma.png"),
    **{f"fairness_compas_logistic_{s}": Figure("fair_compas", f"plots/{s}.png")
       for s in ("beta", "eta", "sigma")},
    **{f"fairness_court_{s}": Figure("fair_compas", f"court_{s}.png")
       for s in ("calibration", "error_rates", "label_bias", "thresholds")},
    **{f"fairness_adult_logistic_{s}": Figure("fair_adult", f"plots/{s}.png")
       for s in ("beta", "sigma")},
    "fairness_adult_error_rates": Figure("fair_adult", "group_error_rates.png"),
    "fairness_german_logistic_beta": Figure("fair_german", "plots/beta.png"),
    # Joint.
    "joint_trades_table": Table(
        runs=("joint_trades", "joint_trades_control"), doc="docs/joint.md", render=joint_rounds(
            (("joint_trades", "", True), ("joint_trades_control", "control, no pruning: ", False)),
            (5, 10), JOINT_ROBUST_METRICS, first="TRADES beta = 6")),
    "joint_trades_vs_control": Table(
        runs=("joint_trades", "joint_trades_control"), doc="docs/joint.md",
        render=joint_paired_control("joint_trades", "joint_trades_control", (5, 10),
                                    JOINT_ROBUST_METRICS)),
    "joint_natural_table": Table(
        runs=("joint_natural",), doc="docs/joint.md", render=joint_rounds(
            (("joint_natural", "", True),), (5, 10), JOINT_ROBUST_METRICS, first="natural")),
    "joint_fair_table": Table(
        runs=("joint_fair_baseline", "joint_fair"), doc="docs/joint.md", render=joint_rounds(
            (("joint_fair_baseline", "baseline (eta 0), ", True),
             ("joint_fair", "fair (eta 10), ", True)), (5, 8, 10), JOINT_FAIR_METRICS,
            first="model")),
    "joint_trades_lipschitz": Figure("joint_trades", "test_lipschitz_vs_compression.png"),
    "joint_trades_adv_accuracy": Figure("joint_trades", "test_adv_accuracy_vs_compression.png"),
    "joint_natural_lipschitz": Figure("joint_natural", "test_lipschitz_vs_compression.png"),
    "joint_fair_di": Figure("joint_fair", "test_di_vs_compression.png"),
    "joint_fair_accuracy_z": Figure("joint_fair", "test_accuracy_z_vs_compression.png"),
    "joint_base_di": Figure("joint_fair_baseline", "test_di_vs_compression.png"),
}


def figure_path(name: str) -> str:
  return os.path.join("docs", "img", f"{name}.png")


# ---------------------------------------------------------------------------------------------
# Configs, runs and marker blocks.


def _parse_config(path: str, overrides: tuple[tuple[str, str], ...]):
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  argv = ["reproduce", f"--config={path}"] + [f"--config.{k}={v}" for k, v in overrides]
  values = flags.FlagValues()
  # sys_argv: the override flags to define are read from it when the flag is defined.
  config_flags.DEFINE_config_file("config", None, flag_values=values, lock_config=True,
                                  sys_argv=argv)
  values(argv)
  return values.config


def load_config(run: Run):
  """The run's config with its overrides applied by the jobs' own flag parser (absl +
  ml_collections), so a misspelled field or an unparsable value fails here, before any compute."""
  path = os.path.join(REPO_ROOT, run.config_path)
  try:
    return _parse_config(path, run.overrides)
  except (AttributeError, KeyError) as e:
    from . import common  # pylint: disable=g-import-not-at-top
    problems = common.unknown_overrides(_parse_config(path, ()), [k for k, _ in run.overrides])
    raise ValueError(f"{run.config}: " + "; ".join(problems or [repr(e)])) from None


def run_job(name: str, workdir: str, data_dir: str) -> None:
  """Runs (or resumes) ``RUNS[name]`` in ``workdir`` unless its finished-marker file exists."""
  run = RUNS[name]
  if run.finished and os.path.exists(os.path.join(workdir, run.finished)):
    print(f"[reproduce] {name}: finished in {workdir}", flush=True)
    return
  cmd = [sys.executable, "-m", "experiments." + run.job] + run.args(workdir, data_dir)
  print(f"[reproduce] {name}: {run.command(workdir)}", flush=True)
  subprocess.run(cmd, cwd=REPO_ROOT, check=True)


def find_block(text: str, name: str, doc: str) -> tuple[int, int]:
  """The (start, end) offsets of the content between ``name``'s markers in ``text``."""
  opening = MARKER_OPEN.format(name=name)
  start = text.find(opening)
  if start < 0 or text.find(opening, start + 1) >= 0:
    raise ValueError(f"{doc} must hold the marker {opening!r} exactly once")
  start += len(opening)
  end = text.find(MARKER_CLOSE, start)
  if end < 0:
    raise ValueError(f"{doc}: {opening!r} has no closing {MARKER_CLOSE!r}")
  return start, end


def block_text(table: str) -> str:
  """What stands between the markers: the table, a blank line ending it for Markdown parsers."""
  return "\n" + table.rstrip("\n") + "\n\n"


def read_block(root: str, doc: str, name: str) -> str:
  with open(os.path.join(root, doc)) as f:
    text = f.read()
  start, end = find_block(text, name, doc)
  return text[start:end]


def write_block(root: str, doc: str, name: str, table: str) -> None:
  path = os.path.join(root, doc)
  with open(path) as f:
    text = f.read()
  start, end = find_block(text, name, doc)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(text[:start] + block_text(table) + text[end:])
  os.replace(tmp, path)


_NUMBER_RE = re.compile(r"[-+−]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def compare(rendered: str, committed: str, tolerance: float) -> list[str]:
  """The problems of ``rendered`` against ``committed``: with ``tolerance`` 0 any difference of
  text; otherwise a different non-numeric skeleton or a number more than ``tolerance`` away."""
  if tolerance == 0:
    return [] if rendered == committed else ["the text differs"]
  problems = []
  if _NUMBER_RE.sub("#", rendered) != _NUMBER_RE.sub("#", committed):
    problems.append("the text around the numbers differs")
  else:
    numbers = [float(t.replace("−", "-")) for t in _NUMBER_RE.findall(rendered)]
    expected = [float(t.replace("−", "-")) for t in _NUMBER_RE.findall(committed)]
    problems += [f"{a:g} differs from the committed {b:g} by more than {tolerance:g}"
                 for a, b in zip(numbers, expected) if abs(a - b) > tolerance]
  return problems


def run_all(names: list[str], workdir_root: str, data_dir: str) -> None:
  """Runs (or resumes) every run the artifacts ``names`` need, each once, in registry order."""
  for run in dict.fromkeys(r for n in names for r in ARTIFACTS[n].runs):
    run_job(run, os.path.join(workdir_root, run), data_dir)


def render(name: str, workdir_root: str) -> str:
  table = ARTIFACTS[name]
  return table.render({r: os.path.join(workdir_root, r) for r in table.runs})


def check(name: str, workdir_root: str, root: str = REPO_ROOT) -> list[str]:
  """Compares table ``name`` rendered from the finished runs in ``workdir_root`` with the block in
  ``root``'s docs; returns the problems followed by a unified diff (empty when they agree)."""
  artifact = ARTIFACTS[name]
  rendered = block_text(render(name, workdir_root))
  committed = read_block(root, artifact.doc, name)
  problems = compare(rendered, committed, artifact.tolerance)
  if problems:
    problems += list(difflib.unified_diff(committed.splitlines(), rendered.splitlines(),
                                          f"{artifact.doc} (committed)", "rerun", lineterm=""))
  return problems


def produce(name: str, workdir_root: str, root: str = REPO_ROOT) -> str:
  """Writes artifact ``name`` from the finished runs in ``workdir_root`` into ``root``; returns
  the path written."""
  artifact = ARTIFACTS[name]
  if isinstance(artifact, Figure):
    target = os.path.join(root, figure_path(name))
    shutil.copyfile(os.path.join(workdir_root, artifact.run, artifact.source), target)
    return target
  write_block(root, artifact.doc, name, render(name, workdir_root))
  return os.path.join(root, artifact.doc)


def expand(patterns: list[str]) -> list[str]:
  """Artifact names matching the shell-style ``patterns`` (``'pruning_*'``, ``'*'``), in registry
  order; a pattern matching nothing is an error."""
  if not patterns:
    raise app.UsageError("name at least one artifact or pattern (see --list)")
  unmatched = [p for p in patterns if not fnmatch.filter(ARTIFACTS, p)]
  if unmatched:
    raise app.UsageError(f"no artifact matches {unmatched}; registered: {sorted(ARTIFACTS)}")
  return [n for n in ARTIFACTS if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def validate_request(names: list[str], data_dir: str, check_mode: bool) -> None:
  """Every artifact checkable under ``--check``, every config loadable with its overrides and
  ``--data_dir`` given where a run needs it; raises before anything runs."""
  for n in names:
    artifact = ARTIFACTS[n]
    if check_mode and (isinstance(artifact, Figure) or artifact.tolerance is None):
      checkable = [k for k, a in ARTIFACTS.items() if getattr(a, "tolerance", None) is not None]
      raise app.UsageError(f"--check: {n} states no tolerance; checkable: {checkable}")
    for run in artifact.runs:
      if RUNS[run].data_dir and not data_dir:
        raise app.UsageError(
            f"{n}: run {run} reads tabular data; pass --data_dir (the folder with "
            "compas-scores-two-years.csv, adult.data, adult.test, german.data)")
      load_config(RUNS[run])


def describe(name: str) -> str:
  artifact = ARTIFACTS[name]
  if isinstance(artifact, Figure):
    target = f"{figure_path(name)} <- {artifact.run}/{artifact.source}"
  else:
    tolerance = artifact.tolerance
    checkable = "" if tolerance is None else f", --check (tolerance {tolerance:g})"
    target = f"{artifact.doc} block{checkable}"
  runs = "".join(f"\n    {RUNS[r].command('WORKDIR_ROOT/' + r)}" for r in artifact.runs)
  return f"{name}: {target}{runs}"


def main(argv):
  if _LIST.value:
    print("\n".join(describe(n) for n in ARTIFACTS))
    return
  names = expand(argv[1:])
  validate_request(names, _DATA_DIR.value, _CHECK.value)
  default_root = (tempfile.mkdtemp(prefix="lipprune_reproduce_") if _CHECK.value
                  else os.path.join(REPO_ROOT, "workdirs", "reproduce"))
  root = _WORKDIR_ROOT.value or default_root
  run_all(names, root, _DATA_DIR.value)
  if not _CHECK.value:
    for n in names:
      print(f"[reproduce] {n} -> {produce(n, root, _DOCS_ROOT.value)}")
    return
  failed = False
  for n in names:
    problems = check(n, root, _DOCS_ROOT.value)
    print(f"[reproduce] check {n}: {'MISMATCH' if problems else 'ok'}")
    print("\n".join(problems))
    failed = failed or bool(problems)
  if not _WORKDIR_ROOT.value:
    shutil.rmtree(root, ignore_errors=True)
  sys.exit(1 if failed else 0)


if __name__ == "__main__":
  app.run(main)
