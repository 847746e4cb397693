r"""Fairness under label and selection bias: the sweeps of Wick, Panda & Tristan (NeurIPS 2019).

  python -m experiments.fairness --config=experiments/configs/fairness_synthetic.py --workdir=/tmp/fs
  python -m experiments.fairness --config=experiments/configs/fairness_synthetic.py:mlp --workdir=/tmp/fsm
  python -m experiments.fairness --config=experiments/configs/fairness_compas.py \
      --config.data_dir=/work/shared/data --workdir=/tmp/fc
  python -m experiments.fairness --config=experiments/configs/fairness_adult.py \
      --config.data_dir=/work/shared/data --workdir=/tmp/fa      # and fairness_german.py

For each setting (beta, sigma, eta) the five models (baseline, oracle, reweighing, in-processing,
semi-supervised) are fitted to convergence (`lipprune.fairness.training`) on ``num_seeds`` data
sets (the generator with different keys, or a real data set with different random 40/40/20
train/unlabeled/test splits, every preprocessing statistic fitted on the split's training rows) and
scored on the test split against the observed labels y and the clean labels z. Sweeps: ``eta`` at
fixed beta, ``beta`` at fixed eta, ``sigma`` at fixed beta and eta.

Label coding: one positive class per data set, everywhere in its workdir (tables, plots, report):
synthetic "z = 1", Adult "income > 50K", German "good credit", COMPAS "re-offended within two
years" (ProPublica's coding; the recorded ``two_year_recid``). On COMPAS the positive class is the
*unfavourable* outcome, so the biases take ``favorable=0``: label bias records protected
(African-American) non-reoffenders as reoffenders and other reoffenders as non-reoffenders;
selection bias drops protected non-reoffenders; ``di`` is the ratio of the rates of the favourable
prediction (not flagged), ``sr_g*`` the share flagged.

Workdir: ``config.json``; ``settings/<beta>_<sigma>_<eta>.json`` (per-data-set metrics and
convergence record of every model; written atomically; a rerun skips settings already there, and
sweeps share settings); ``tables/<sweep>.csv`` (mean, standard error and the count of undefined
(NaN) values over data sets, the largest final gradient norm, and what selection bias did: the
share of favourable labels among the protected training rows and the rows kept);
``tables/<sweep>_paired.csv`` (each model minus the baseline on the same data sets);
``plots/<sweep>.png``; ``tb/<sweep>/<method>/`` (the sweep table's means as TensorBoard scalars,
step k = the k-th swept value); on real data the group report of `experiments.group_report`
(``court_report.md`` on COMPAS, ``group_report.md`` on Adult and German). Rerunning a finished
workdir rewrites nothing.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

from . import common
from . import group_report
from lipprune import models
from lipprune import plotting
from lipprune.data import tabular
from lipprune.fairness import bias, losses, synthetic, training
from lipprune.train import io, optimizers
from lipprune.train.summary import write_scalars

common.define_job_flags()

DATASETS = ("synthetic",) + tabular.NAMES
MODELS = ("logistic", "mlp")
SWEEPS = ("eta", "beta", "sigma")
REAL_SELECTION = ("paper", "subsample")  # reassigning a real person's protected attribute: not offered
TABLE_METRICS = ("f1_y", "f1_z", "accuracy_y", "accuracy_z", "di", "dp_diff", "eodds_gap_z",
                 "sr_g0", "sr_g1", "fpr_g0_z", "fpr_g1_z", "fnr_g0_z", "fnr_g1_z")
CONVERGENCE = ("objective", "grad_norm", "iterations")
# The recorded label's value 1, stated in every title; and which label value is favourable.
POSITIVE_CLASS = {"synthetic": "z = 1", "compas": "re-offended within two years (ProPublica's coding)",
                  "adult": "income > 50K", "german": "good credit"}
POSITIVE_SHORT = {"synthetic": "z = 1", "compas": "re-offended", "adult": "income > 50K",
                  "german": "good credit"}
FAVORABLE = {"synthetic": 1, "compas": 0, "adult": 1, "german": 1}


def validate_config(config) -> None:
  """Every name and value is checked before any compute."""
  common.validate_choice("dataset", config.dataset, DATASETS)
  common.validate_choice("model", config.model, MODELS)
  for s in config.sweeps:
    common.validate_choice("sweeps", s, SWEEPS)
  for m in config.methods:
    common.validate_choice("methods", m, training.METHODS)
  t = config.train
  common.validate_choice("train.penalty", t.penalty, losses.PENALTIES)
  common.validate_choice("train.solver", t.solver, training.SOLVERS)
  common.validate_choice("train.optimizer", t.optimizer, optimizers.OPTIMIZERS)
  if t.penalty != "dp" and "semisupervised" in config.methods:
    raise ValueError("config.train.penalty='eodds' needs labels; drop 'semisupervised' from "
                     "config.methods or use penalty='dp'")
  common.validate_choice("generator.selection", config.generator.selection, synthetic.SELECTION_MECHANISMS)
  common.validate_choice("selection", config.selection, REAL_SELECTION)
  common.replicate_seeds(config)
  for f in ("max_iter", "lbfgs_memory", "epochs", "batch_size", "patience", "penalty_batch_size"):
    common.validate_positive(f"train.{f}", t[f], integer=True)
  for f in ("tol", "learning_rate"):
    common.validate_positive(f"train.{f}", t[f])
  common.validate_positive("train.l2", t.l2, allow_zero=True)
  common.validate_range("train.momentum", t.momentum, 0.0, 1.0)
  common.validate_range("train.val_fraction", t.val_fraction, 1e-6, 1 - 1e-6)
  for f in ("num_features", "n_train", "n_test", "n_unlabeled", "pool_factor"):
    common.validate_positive(f"generator.{f}", config.generator[f], integer=True)
  common.validate_positive("generator.tau", config.generator.tau)
  common.validate_range("generator.alpha", config.generator.alpha, 0.0, 1.0)
  for width in config.hidden:
    common.validate_positive("hidden[]", width, integer=True)
  for field in ("download", "verify"):
    common.validate_choice(field, config.get(field, False), (False, True))
  for name, values in (("eta_values", config.eta_values), ("beta_values", config.beta_values),
                       ("sigma_values", config.sigma_values)):
    if not len(values):
      raise ValueError(f"config.{name} is empty")
  for b in list(config.beta_values) + [config.eta_sweep_beta, config.sigma_sweep_beta]:
    common.validate_range("beta_values/eta_sweep_beta/sigma_sweep_beta", b, 0.0, 1.0)
  for s in config.sigma_values:
    common.validate_range("sigma_values", s, 1.0, float("inf"))
  for e in list(config.eta_values) + [config.fixed_eta]:
    common.validate_positive("eta_values/fixed_eta", e, allow_zero=True)
  if config.dataset != "synthetic":
    if not config.data_dir and not config.download:
      raise ValueError(f"config.data_dir is required for dataset={config.dataset!r} (the folder holding "
                       "its files, e.g. compas-scores-two-years.csv), or set config.download=True")
    if config.protected and config.protected not in tabular.PROTECTED[config.dataset]:
      raise ValueError(f"config.protected={config.protected!r} for {config.dataset}; expected one of "
                       f"{list(tabular.PROTECTED[config.dataset])}")
    columns = tabular.feature_columns(config.dataset)
    for f in list(config.drop_features) + list(config.report.blind_features):
      common.validate_choice("drop_features/report.blind_features", f, columns)
    if len(config.fractions) != 3 or abs(sum(config.fractions) - 1) > 1e-6 or min(config.fractions) <= 0:
      raise ValueError(f"config.fractions={tuple(config.fractions)}; need three positive shares summing to 1")
    group_report.validate_config(config)


def _model(config):
  if config.model == "mlp":
    return models.create("mlp", 2, hidden=tuple(config.hidden))
  return models.create("logistic", 2)


def train_cfg(config) -> training.TrainConfig:
  t = config.train
  return training.TrainConfig(**{f: t[f] for f in (
      "solver", "l2", "penalty", "tol", "max_iter", "lbfgs_memory", "optimizer", "epochs", "batch_size",
      "learning_rate", "momentum", "val_fraction", "patience", "penalty_batch_size")})


def _gen_cfg(config):
  g = config.generator
  return synthetic.GeneratorConfig(num_features=g.num_features, tau=g.tau, alpha=g.alpha,
                                   selection=g.selection, n_train=g.n_train, n_test=g.n_test,
                                   n_unlabeled=g.n_unlabeled, pool_factor=g.pool_factor)


def _as_split(s):
  return {"x": s["x"], "y": s["y"], "z": s["z"], "group": s["rho"]}


# ---------------------------------------------------------------------------------------------
# One setting on many data sets, compiled once per (dataset, model) with traced beta/sigma/eta.


def make_synthetic_runner(config):
  model, tcfg, gcfg, methods = _model(config), train_cfg(config), _gen_cfg(config), tuple(config.methods)

  def one(key, beta, sigma, eta):
    k_data, k_train = jax.random.split(key)
    d = synthetic.generate(k_data, gcfg, beta=beta, sigma=sigma)
    res = training.fit_and_evaluate(k_train, model, _as_split(d["train"]), _as_split(d["unlabeled"]),
                                    {"test": _as_split(d["test"])}, eta=eta, cfg=tcfg, methods=methods)
    res["data"] = training_set_record(_as_split(d["train"]), 1)
    return res, d["pool_ok"]

  run = jax.jit(jax.vmap(one, in_axes=(0, None, None, None)))
  keys = jax.random.split(jax.random.key(config.seed), config.num_seeds)

  def runner(beta, sigma, eta):
    res, ok = run(keys, beta, sigma, eta)
    if not bool(np.all(ok)):
      raise RuntimeError("training pool too small after selection bias; raise config.generator.pool_factor")
    return res

  return runner


def balanced_test_mask(z: np.ndarray, group: np.ndarray, seed: int) -> np.ndarray:
  """A 0/1 mask subsampling the group with the higher base rate ``P(z=1)`` so both groups have equal
  base rates: keep ``k = r_low * neg_high / (1 - r_low)`` of its positives (chosen at random)."""
  rng = np.random.default_rng(seed)
  mask = np.ones(len(z), np.float32)
  rates = [z[group == g].mean() for g in (0, 1)]
  high = int(np.argmax(rates))
  r_low = rates[1 - high]
  pos = np.flatnonzero((group == high) & (z == 1))
  neg_high = int(np.sum((group == high) & (z == 0)))
  k = int(round(r_low * neg_high / (1.0 - r_low)))
  drop = rng.permutation(pos)[k:]
  mask[drop] = 0.0
  return mask


def training_set_record(train, favorable) -> dict:
  """What the biases did to a training set: the share of favourable clean labels among the
  (selected) protected rows, and the number of rows selected."""
  weight = train.get("mask")
  fav = (train["z"] == favorable).astype(jnp.int32)
  n = train["z"].shape[0] if weight is None else jnp.sum(weight)
  return {"protected_favourable_share": bias.protected_positive_share(fav, train["group"], weight),
          "selected_rows": jnp.asarray(n, jnp.float32)}


def read_table(config) -> tabular.Table:
  return tabular.read(config.dataset, data_dir=config.data_dir or None, download=config.download,
                      verify=config.get("verify", True))


def split_seeds(config, num: int) -> list[int]:
  return [config.seed + i for i in range(num)]


def real_splits(config, table, num: int, drop=None) -> dict:
  """``num`` random train/unlabeled/test partitions (seeds ``seed, seed+1, ...``), each encoded
  with its own training rows' statistics, stacked: ``{split: {'x', 'z', 'group', 'rows'}}`` plus a
  base-rate-balanced mask over each test split (``test['balanced_mask']``)."""
  group = tabular.protected_group(table, config.protected or None)
  drop = tuple(config.drop_features) if drop is None else tuple(drop)
  parts = {"train": [], "unlabeled": [], "test": []}
  for seed in split_seeds(config, num):
    idx = tabular.partition(len(table), seed, tuple(config.fractions))
    x, _ = tabular.encode(table, idx["train"], drop)
    for split in parts:
      rows = idx[split]
      parts[split].append({"x": x[rows], "z": table.label[rows], "group": group[rows], "rows": rows})
  out = {s: {k: np.stack([p[k] for p in parts[s]]) for k in parts[s][0]} for s in parts}
  out["test"]["balanced_mask"] = np.stack(
      [balanced_test_mask(out["test"]["z"][i], out["test"]["group"][i], seed)
       for i, seed in enumerate(split_seeds(config, num))])
  return out


def biased_training_set(config, key, tr, beta, sigma) -> dict:
  """The training rows with label bias ``beta`` on y and selection bias ``sigma`` as a 0/1 mask."""
  fav = FAVORABLE[config.dataset]
  k_label, k_sel = jax.random.split(key)
  select = bias.selection_paper_keep_mask if config.selection == "paper" else bias.selection_keep_mask
  return {"x": tr["x"], "z": tr["z"], "group": tr["group"],
          "y": bias.label_bias(k_label, tr["z"], tr["group"], beta, favorable=fav),
          "mask": select(k_sel, tr["z"], tr["group"], sigma, favorable=fav).astype(jnp.float32)}


def make_real_runner(config, splits):
  model, tcfg, methods = _model(config), train_cfg(config), tuple(config.methods)
  fav = FAVORABLE[config.dataset]
  data = jax.tree.map(jnp.asarray, {s: {k: v for k, v in d.items() if k != "rows"} for s, d in splits.items()})

  def one(key, tr, un, te, beta, sigma, eta):
    k_train_bias, k_test_bias, k_train = jax.random.split(key, 3)
    train = biased_training_set(config, k_train_bias, tr, beta, sigma)
    y_te = bias.label_bias(k_test_bias, te["z"], te["group"], beta, favorable=fav)
    test = {"x": te["x"], "y": y_te, "z": te["z"], "group": te["group"]}
    tests = {"test": test, "test_balanced": {**test, "mask": te["balanced_mask"]}}
    res = training.fit_and_evaluate(k_train, model, train, {"x": un["x"], "group": un["group"]},
                                    tests, eta=eta, cfg=tcfg, methods=methods, favorable=fav)
    res["data"] = training_set_record(train, fav)
    return res

  run = jax.jit(jax.vmap(one, in_axes=(0, 0, 0, 0, None, None, None)))
  keys = jax.random.split(jax.random.key(config.seed), config.num_seeds)
  return lambda beta, sigma, eta: run(keys, data["train"], data["unlabeled"], data["test"], beta, sigma, eta)


# ---------------------------------------------------------------------------------------------
# Sweeps, resumable results, tables and plots.


def setting_name(beta, sigma, eta) -> str:
  return f"beta={float(beta):g}_sigma={float(sigma):g}_eta={float(eta):g}"


def sweep_settings(config) -> dict:
  """``{sweep: [(value, (beta, sigma, eta)), ...]}``."""
  out = {}
  if "eta" in config.sweeps:
    out["eta"] = [(e, (config.eta_sweep_beta, 1.0, e)) for e in config.eta_values]
  if "beta" in config.sweeps:
    out["beta"] = [(b, (b, 1.0, config.fixed_eta)) for b in config.beta_values]
  if "sigma" in config.sweeps:
    out["sigma"] = [(s, (config.sigma_sweep_beta, s, config.fixed_eta)) for s in config.sigma_values]
  return out


def _to_lists(res):
  return jax.tree.map(lambda v: np.asarray(v, np.float64).tolist(), res)


def summary(values) -> dict:
  """``{'mean', 'se', 'undefined'}`` over data sets: mean and standard error of the finite values,
  and how many were NaN (reported, never dropped silently). One finite value: se is NaN (n/a)."""
  v = np.asarray(values, np.float64)
  finite = v[np.isfinite(v)]
  mean = float(finite.mean()) if finite.size else float("nan")
  se = float(finite.std(ddof=1) / np.sqrt(finite.size)) if finite.size > 1 else float("nan")
  return {"mean": mean, "se": se, "undefined": int(v.size - finite.size)}


def sweep_table(config, sweep, items, results) -> list[dict]:
  rows = []
  for value, setting in items:
    res = results[setting_name(*setting)]
    data = {k: summary(v)["mean"] for k, v in res["data"].items()}
    for method in config.methods:
      conv = {"grad_norm_max": float(np.max(res[method]["grad_norm"])),
              "iterations_mean": float(np.mean(res[method]["iterations"])), **data}
      for test_name, m in res[method].items():
        if test_name in CONVERGENCE:
          continue
        row = {"sweep": sweep, sweep: value, "beta": setting[0], "sigma": setting[1], "eta": setting[2],
               "method": method, "test": test_name, "n": len(m["f1_y"]), **conv}
        for k in TABLE_METRICS:
          s = summary(m[k])
          row[k], row[k + "_se"], row[k + "_undefined"] = s["mean"], s["se"], s["undefined"]
        rows.append(row)
  return rows


PAIRED_METRICS = ("f1_y", "f1_z", "accuracy_z", "di")


def paired_table(config, sweep, items, results) -> list[dict]:
  """Each model minus the baseline on the same data set (the settings share data sets): mean,
  standard error and on how many data sets the difference is positive."""
  rows = []
  for value, setting in items:
    res = results[setting_name(*setting)]
    for method in config.methods:
      if method == "baseline" or "baseline" not in config.methods:
        continue
      for test_name in res[method]:
        if test_name in CONVERGENCE:
          continue
        row = {"sweep": sweep, sweep: value, "method": method, "test": test_name}
        for k in PAIRED_METRICS:
          diff = (np.asarray(res[method][test_name][k], np.float64)
                  - np.asarray(res["baseline"][test_name][k], np.float64))  # NaN is stored as "nan"
          s = summary(diff)
          row[k + "_diff"], row[k + "_diff_se"], row[k + "_diff_undefined"] = s["mean"], s["se"], s["undefined"]
          row[k + "_diff_positive"] = int(np.sum(diff > 0))
        rows.append(row)
  return rows


def _outputs(sweeps):
  return [os.path.join("tables", f"{s}{suffix}.csv") for s in sweeps for suffix in ("", "_paired")] + [
      os.path.join("plots", f"{s}.png") for s in sweeps]


def write_events(workdir, sweep, items, rows) -> None:
  """TensorBoard view of a sweep table: run ``tb/<sweep>/<method>``, step ``k`` = the sweep's k-th
  value (the values are in ``tables/<sweep>.csv``), tags ``<test>/<metric>`` and ``fit/...`` (means
  over data sets); a rewrite replaces the files."""
  values = [v for v, _ in items]
  for row in rows:
    run = os.path.join(workdir, "tb", sweep, row["method"])
    step = values.index(row[sweep])
    write_scalars(run, step, {k: row[k] for k in TABLE_METRICS}, name=row["test"])
    write_scalars(run, step, {k: row[k] for k in ("grad_norm_max", "iterations_mean")}, name="fit")


def write_tables_and_plots(workdir, config, sweeps, results):
  for sweep, items in sweeps.items():
    rows = sweep_table(config, sweep, items, results)
    write_events(workdir, sweep, items, rows)
    io.write_csv(os.path.join(workdir, "tables", f"{sweep}.csv"), rows)
    io.write_csv(os.path.join(workdir, "tables", f"{sweep}_paired.csv"),
                 paired_table(config, sweep, items, results))
    _plot(os.path.join(workdir, "plots", f"{sweep}.png"), config, sweep, items, results)


def save_figure(fig, path):
  """Writes a matplotlib figure atomically (readers never see half a PNG)."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  io.save_figure(fig, path, dpi=110)
  plt.close(fig)


def _plot(path, config, sweep, items, results):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
  xs = [v for v, _ in items]
  for method in config.methods:
    for ax, key in zip(axes, ("f1_y", "f1_z", "di")):
      stats = [summary(results[setting_name(*s)][method]["test"][key]) for _, s in items]
      mean = np.array([s["mean"] for s in stats])
      se = np.array([s["se"] for s in stats])
      ax.errorbar(xs, mean, yerr=np.nan_to_num(se), marker="o", ms=3, capsize=2, label=method,
                  color=plotting.method_color(method))
  favourable = "not flagged" if FAVORABLE[config.dataset] == 0 else POSITIVE_SHORT[config.dataset]
  titles = {"f1_y": "weighted F1 vs observed labels y", "f1_z": "weighted F1 vs clean labels z",
            "di": f"DI: P({favourable} | protected) / P(same | unprotected)"}
  fixed = {"eta": f"beta={config.eta_sweep_beta}", "beta": f"eta={config.fixed_eta}",
           "sigma": f"beta={config.sigma_sweep_beta}, eta={config.fixed_eta}"}[sweep]
  axis_names = {"eta": "penalty weight eta", "beta": "label bias beta (flip probability)",
                "sigma": f"selection bias sigma ({selection_name(config)})"}
  for ax, key in zip(axes, ("f1_y", "f1_z", "di")):
    ax.set_title(titles[key], fontsize=10)
    ax.set_xlabel(axis_names[sweep])
    ax.set_ylabel(plotting.metric_label(key))
    if sweep == "eta":
      ax.set_xscale("symlog", linthresh=0.1)
    ax.grid(alpha=0.3)
  axes[2].axhline(1.0, color="k", lw=0.8, ls="--")
  axes[0].legend(fontsize=8)
  fig.suptitle(f"{config.dataset} / {config.model}, positive class: {POSITIVE_CLASS[config.dataset]}; "
               f"{sweep} sweep ({fixed}); mean ± s.e. over {config.num_seeds} data sets", fontsize=11)
  fig.tight_layout()
  save_figure(fig, path)


def selection_name(config) -> str:
  return config.generator.selection if config.dataset == "synthetic" else config.selection


# ---------------------------------------------------------------------------------------------


@common.workdir_job
def run(config, workdir: str) -> dict:
  """Runs (or resumes) every sweep of ``config`` in ``workdir``; returns ``{setting: results}``."""
  validate_config(config)
  common.check_workdir(workdir, config)
  table = read_table(config) if config.dataset != "synthetic" else None
  sweeps = sweep_settings(config)
  common.open_workdir(workdir, config)
  runner = None
  results, computed = {}, False
  for items in sweeps.values():
    for _, setting in items:
      name = setting_name(*setting)
      path = os.path.join(workdir, "settings", name + ".json")
      if name in results:
        continue
      if io.exists(path):
        results[name] = io.read_json(path)
        continue
      if runner is None:
        runner = (make_synthetic_runner(config) if table is None
                  else make_real_runner(config, real_splits(config, table, config.num_seeds)))
      res = _to_lists(runner(*(jnp.float32(v) for v in setting)))
      io.write_json(path, res)
      results[name] = res
      computed = True
      f = {m: np.mean(res[m]["test"]["f1_z"]) for m in config.methods}
      logging.info("%s: F1 on z %s", name, {m: round(float(v), 3) for m, v in f.items()})
  if computed or not all(io.exists(os.path.join(workdir, p)) for p in _outputs(sweeps)):
    write_tables_and_plots(workdir, config, sweeps, results)
  if table is not None and config.report.enabled:
    group_report.write_report(config, table, workdir)
  return results


def main(argv):
  config, workdir = common.start_job(argv)
  run(config, workdir)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main, flags_parser=common.parse_flags)
