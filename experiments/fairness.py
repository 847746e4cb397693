r"""Fairness under label and selection bias: the sweeps of Wick, Panda & Tristan (NeurIPS 2019).

  python -m experiments.fairness --config=experiments/configs/fairness_synthetic.py --workdir=/tmp/fs
  python -m experiments.fairness --config=experiments/configs/fairness_synthetic.py:mlp --workdir=/tmp/fsm
  python -m experiments.fairness --config=experiments/configs/fairness_compas.py \
      --config.data_dir=/work/shared/data --workdir=/tmp/fc

For each setting (beta, sigma, eta) the five models (baseline, oracle, reweighing, in-processing,
semi-supervised) are trained on ``num_datasets`` data sets (the generator with different keys, or
COMPAS with different random 40/40/20 splits) and scored on the test split against the observed
labels y and the clean labels z. Sweeps: ``eta`` at fixed beta, ``beta`` at fixed eta, ``sigma`` at
fixed beta and eta.

Workdir: ``config.json``; ``settings/<beta>_<sigma>_<eta>.json`` (per-data-set metrics of every
model; written atomically; a rerun skips settings already there, and sweeps share settings);
``tables/<sweep>.csv`` (mean and standard error over data sets); ``plots/<sweep>.png`` (F1 on y and
F1 on z side by side, and the DI ratio); on COMPAS also ``court_report.{json,csv}``.

COMPAS coding: the favourable outcome is *no* two-year recidivism, so ``z = 1 - two_year_recid`` and
the paper's label bias ``y := 1 - rho`` (with probability beta) turns a protected non-recidivist into
a recidivist and an unprotected recidivist into a non-recidivist. The court-risk report returns to
ProPublica's coding (positive = predicted to reoffend): FPR = non-reoffenders flagged high risk.
"""
from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

from experiments import common
from lipprune import models
from lipprune.data import tabular
from lipprune.fairness import bias, losses, metrics, synthetic, training
from lipprune.train import io

common.define_job_flags()

DATASETS = ("synthetic", "compas")
MODELS = ("logistic", "mlp")
SWEEPS = ("eta", "beta", "sigma")
TABLE_METRICS = ("f1_y", "f1_z", "accuracy_y", "accuracy_z", "di", "dp_diff", "eodds_gap_z",
                 "sr_g0", "sr_g1")


def validate_config(config) -> None:
  """Every name and value is checked before any compute."""
  common.validate_choice("dataset", config.dataset, DATASETS)
  common.validate_choice("model", config.model, MODELS)
  for s in config.sweeps:
    common.validate_choice("sweeps", s, SWEEPS)
  for m in config.methods:
    common.validate_choice("methods", m, training.METHODS)
  common.validate_choice("train.penalty", config.train.penalty, losses.PENALTIES)
  if config.train.penalty != "dp" and "semisupervised" in config.methods:
    raise ValueError("config.train.penalty='eodds' needs labels; drop 'semisupervised' from "
                     "config.methods or use penalty='dp'")
  common.validate_choice("generator.selection", config.generator.selection, synthetic.SELECTION_MECHANISMS)
  common.validate_positive("seed", config.seed, allow_zero=True, integer=True)
  common.validate_positive("num_datasets", config.num_datasets, integer=True)
  for f in ("epochs", "batch_size", "penalty_batch_size"):
    common.validate_positive(f"train.{f}", config.train[f], integer=True)
  common.validate_positive("train.learning_rate", config.train.learning_rate)
  common.validate_range("train.momentum", config.train.momentum, 0.0, 1.0)
  for f in ("num_features", "n_train", "n_test", "n_unlabeled", "pool_factor"):
    common.validate_positive(f"generator.{f}", config.generator[f], integer=True)
  common.validate_positive("generator.tau", config.generator.tau)
  common.validate_range("generator.alpha", config.generator.alpha, 0.0, 1.0)
  for width in config.hidden:
    common.validate_positive("hidden[]", width, integer=True)
  common.validate_range("court_beta", config.court_beta, 0.0, 1.0)
  common.validate_positive("bootstrap_resamples", config.bootstrap_resamples, integer=True)
  for field in ("download", "verify", "court_report"):
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
  if config.dataset == "compas" and not config.data_dir and not config.download:
    raise ValueError("config.data_dir is required for dataset='compas' (the folder holding "
                     "compas-scores-two-years.csv), or set config.download=True")


def _model(config):
  if config.model == "mlp":
    return models.create("mlp", 2, hidden=tuple(config.hidden))
  return models.create("logistic", 2)


def _train_cfg(config):
  t = config.train
  return training.TrainConfig(epochs=t.epochs, batch_size=t.batch_size, learning_rate=t.learning_rate,
                              momentum=t.momentum, penalty=t.penalty,
                              penalty_batch_size=t.penalty_batch_size)


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
  model, tcfg, gcfg, methods = _model(config), _train_cfg(config), _gen_cfg(config), tuple(config.methods)

  def one(key, beta, sigma, eta):
    k_data, k_train = jax.random.split(key)
    d = synthetic.generate(k_data, gcfg, beta=beta, sigma=sigma)
    res = training.fit_and_evaluate(k_train, model, _as_split(d["train"]), _as_split(d["unlabeled"]),
                                    {"test": _as_split(d["test"])}, eta=eta, cfg=tcfg, methods=methods)
    return res, d["pool_ok"]

  run = jax.jit(jax.vmap(one, in_axes=(0, None, None, None)))
  keys = jax.random.split(jax.random.key(config.seed), config.num_datasets)

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


def load_compas_splits(config) -> dict:
  """``num_datasets`` random 40/40/20 partitions (seeds ``seed .. seed+S-1``), stacked; favourable
  coding ``z = 1 - two_year_recid``; a base-rate-balanced mask over each test split."""
  full = tabular.load("compas", "all", data_dir=config.data_dir or None, download=config.download,
                      verify=config.get("verify", True))
  parts = {"train": [], "unlabeled": [], "test": []}
  for i in range(config.num_datasets):
    for split in parts:
      ds = tabular.random_split(full, split, config.seed + i)
      z = 1 - ds.y
      parts[split].append({"x": ds.x, "z": z.astype(np.int32), "group": ds.extras["group"]})
  out = {s: {k: np.stack([p[k] for p in parts[s]]) for k in parts[s][0]} for s in parts}
  out["test"]["balanced_mask"] = np.stack(
      [balanced_test_mask(out["test"]["z"][i], out["test"]["group"][i], config.seed + i)
       for i in range(config.num_datasets)])
  return out


def make_compas_runner(config, splits=None):
  model, tcfg, methods = _model(config), _train_cfg(config), tuple(config.methods)
  splits = load_compas_splits(config) if splits is None else splits
  data = jax.tree.map(jnp.asarray, splits)

  def one(key, tr, un, te, beta, sigma, eta):
    k_btr, k_bte, k_sel, k_train = jax.random.split(key, 4)
    train = {"x": tr["x"], "z": tr["z"], "group": tr["group"],
             "y": bias.label_bias(k_btr, tr["z"], tr["group"], beta),
             # Selection bias by subsampling, applied as a 0/1 mask (fixed shapes).
             "mask": bias.selection_keep_mask(k_sel, tr["z"], tr["group"], sigma).astype(jnp.float32)}
    y_te = bias.label_bias(k_bte, te["z"], te["group"], beta)
    test = {"x": te["x"], "y": y_te, "z": te["z"], "group": te["group"]}
    tests = {"test": test, "test_balanced": {**test, "mask": te["balanced_mask"]}}
    return training.fit_and_evaluate(k_train, model, train, {"x": un["x"], "group": un["group"]},
                                     tests, eta=eta, cfg=tcfg, methods=methods)

  run = jax.jit(jax.vmap(one, in_axes=(0, 0, 0, 0, None, None, None)))
  keys = jax.random.split(jax.random.key(config.seed), config.num_datasets)
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


def _summary(values):
  v = np.asarray(values, np.float64)
  v = v[np.isfinite(v)]
  if not v.size:
    return float("nan"), float("nan")
  return float(v.mean()), float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else 0.0


def write_tables_and_plots(workdir, config, sweeps, results):
  for sweep, items in sweeps.items():
    rows = []
    for value, setting in items:
      res = results[setting_name(*setting)]
      for method in config.methods:
        for test_name, m in res[method].items():
          if test_name == "final_loss":
            continue
          row = {"sweep": sweep, sweep: value, "beta": setting[0], "sigma": setting[1], "eta": setting[2],
                 "method": method, "test": test_name, "n": len(m["f1_y"])}
          for k in TABLE_METRICS:
            row[k], row[k + "_se"] = _summary(m[k])
          rows.append(row)
    io.write_csv(os.path.join(workdir, "tables", f"{sweep}.csv"), rows)
    _plot(os.path.join(workdir, "plots", f"{sweep}.png"), config, sweep, items, results)


def _plot(path, config, sweep, items, results):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
  xs = [v for v, _ in items]
  for method in config.methods:
    for ax, key in zip(axes, ("f1_y", "f1_z", "di")):
      stats = [_summary(results[setting_name(*s)][method]["test"][key]) for _, s in items]
      mean = np.array([s[0] for s in stats])
      se = np.array([s[1] for s in stats])
      ax.errorbar(xs, mean, yerr=se, marker="o", ms=3, capsize=2, label=method)
  titles = {"f1_y": "weighted F1 vs observed labels y", "f1_z": "weighted F1 vs clean labels z",
            "di": "disparate impact ratio (protected / unprotected)"}
  fixed = {"eta": f"beta={config.eta_sweep_beta}", "beta": f"eta={config.fixed_eta}",
           "sigma": f"beta={config.sigma_sweep_beta}, eta={config.fixed_eta}"}[sweep]
  for ax, key in zip(axes, ("f1_y", "f1_z", "di")):
    ax.set_title(titles[key], fontsize=10)
    ax.set_xlabel(sweep)
    if sweep == "eta":
      ax.set_xscale("symlog", linthresh=0.1)
    ax.grid(alpha=0.3)
  axes[2].axhline(1.0, color="k", lw=0.8, ls="--")
  axes[0].legend(fontsize=8)
  fig.suptitle(f"{config.dataset} / {config.model}: {sweep} sweep ({fixed}); mean +- s.e. over "
               f"{config.num_datasets} data sets", fontsize=11)
  fig.tight_layout()
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = path + ".tmp.png"
  fig.savefig(tmp, dpi=110)
  plt.close(fig)
  os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# COMPAS court-risk report.


def court_report(config, splits, workdir):
  """Accuracy (bootstrap interval) next to per-group FPR/FNR, ProPublica coding (1 = reoffends)."""
  path = os.path.join(workdir, "court_report.json")
  if os.path.exists(path):
    return io.read_json(path)
  model, tcfg = _model(config), _train_cfg(config)
  data = jax.tree.map(jnp.asarray, splits)
  beta, eta = config.court_beta, config.fixed_eta

  def one(key, tr, un, te, method):
    k_btr, _, k_train = jax.random.split(key, 3)
    train = {"x": tr["x"], "z": tr["z"], "group": tr["group"],
             "y": bias.label_bias(k_btr, tr["z"], tr["group"], beta)}
    params, ms, _ = training.fit(k_train, model, method, train, {"x": un["x"], "group": un["group"]},
                                 eta=eta, cfg=tcfg)
    return (training.predict_proba(model, params, ms, te["x"]) > 0.5).astype(jnp.int32)

  keys = jax.random.split(jax.random.fold_in(jax.random.key(config.seed), 7), config.num_datasets)
  rows, report = [], {"beta": beta, "eta": eta, "coding": "positive = predicted to reoffend", "methods": {}}
  stat = lambda a: {"accuracy": metrics.accuracy(a["p"], a["y"]),
                    **{f"{r}_{g}": metrics.group_rates(a["p"], a["y"], a["g"])[r][i]
                       for r in ("fpr", "fnr") for i, g in enumerate(("other", "african_american"))}}
  for method in config.methods:
    fn = jax.jit(jax.vmap(functools.partial(one, method=method)))
    fav_pred = np.asarray(fn(keys, data["train"], data["unlabeled"], data["test"]))
    recid_pred, recid = 1 - fav_pred, 1 - splits["test"]["z"]
    per_split = [jax.tree.map(float, stat({"p": recid_pred[i], "y": recid[i], "g": splits["test"]["group"][i]}))
                 for i in range(config.num_datasets)]
    ci = metrics.bootstrap_ci(jax.random.key(config.seed), stat,
                              {"p": recid_pred[0], "y": recid[0], "g": splits["test"]["group"][0]},
                              num_resamples=config.bootstrap_resamples)
    entry = {"split0_bootstrap": ci, "over_splits": {}}
    row = {"method": method}
    for k in ci:
      mean, se = _summary([p[k] for p in per_split])
      entry["over_splits"][k] = {"mean": mean, "se": se}
      row[k] = mean
      row[k + "_se"] = se
      row[k + "_split0"] = ci[k]["estimate"]
      row[k + "_split0_low"] = ci[k]["low"]
      row[k + "_split0_high"] = ci[k]["high"]
    report["methods"][method] = entry
    rows.append(row)
  io.write_csv(os.path.join(workdir, "court_report.csv"), rows)
  io.write_json(path, report)
  return report


# ---------------------------------------------------------------------------------------------


@common.workdir_job
def run(config, workdir: str) -> dict:
  """Runs (or resumes) every sweep of ``config`` in ``workdir``; returns ``{setting: results}``."""
  validate_config(config)
  common.check_workdir(workdir, config)
  sweeps = sweep_settings(config)
  splits = load_compas_splits(config) if config.dataset == "compas" else None
  common.open_workdir(workdir, config)
  runner = None
  results = {}
  for items in sweeps.values():
    for _, setting in items:
      name = setting_name(*setting)
      path = os.path.join(workdir, "settings", name + ".json")
      if name in results:
        continue
      if os.path.exists(path):
        results[name] = io.read_json(path)
        continue
      if runner is None:
        runner = (make_compas_runner(config, splits) if config.dataset == "compas"
                  else make_synthetic_runner(config))
      res = _to_lists(runner(*(jnp.float32(v) for v in setting)))
      io.write_json(path, res)
      results[name] = res
      f = {m: np.mean(res[m]["test"]["f1_z"]) for m in config.methods}
      logging.info("%s: F1 on z %s", name, {m: round(float(v), 3) for m, v in f.items()})
  write_tables_and_plots(workdir, config, sweeps, results)
  if config.dataset == "compas" and config.court_report:
    court_report(config, splits, workdir)
  return results


def main(argv):
  config, workdir = common.start_job(argv)
  run(config, workdir)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main, flags_parser=common.parse_flags)
