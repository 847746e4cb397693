r"""Robust training and evaluation: Yang et al. (NeurIPS 2020), Table 2 and Figure 2.

  python -m experiments.robust --config=experiments/configs/robust_digits_mlp.py --workdir=/tmp/rob
  python -m experiments.robust --config=experiments/configs/robust_cifar10_wrn.py:dropout \
      --config.data_dir=~/tensorflow_datasets --workdir=/tmp/rob_c10

For every method of ``config.methods`` and every seed it trains a model (lipprune.train.loop, so
each run checkpoints and resumes), then measures on train and test: clean accuracy, adversarial
accuracy (PGD with restarts, and the multi-target attack if configured) and the empirical local
Lipschitz constant; the gaps are train minus test. A method is a spec ``loss[:k=v[:k=v...]]``, e.g.
``trades:beta=6`` or ``rst:lam=1``; ``loss`` is one of lipprune.robust.losses.METHODS and the keys
are that loss factory's keyword arguments (``eps`` and ``steps`` come from the config unless given).

Workdir layout: ``config.json``; ``runs/<method>/seed<k>/`` with checkpoints, metrics.jsonl and
results.json; ``results.csv`` (one row per run), ``table.csv`` and ``table.md`` (mean and standard
deviation over seeds per method) and ``robust_adv_vs_lipschitz.png``. Rerunning resumes unfinished
runs, skips finished ones and never rewrites a finished table.
"""
from __future__ import annotations

import inspect
import os

import jax
import numpy as np
from absl import app, flags, logging

from experiments import common
from experiments import train as train_job
from lipprune import data as data_lib
from lipprune import models
from lipprune import train as train_lib
from lipprune.data import augment as augment_lib
from lipprune.robust import evaluate as robust_eval
from lipprune.robust import losses as robust_losses
from lipprune.robust import models as _robust_models  # noqa: F401  (registers yang_cnn1/2)
from lipprune.train import io, optimizers

common.define_job_flags()

NORMS = ("linf", "l2")
# Methods whose factory takes the training attack's eps and steps from the config.
_ATTACKED = ("adversarial", "rst", "trades", "llr")
TABLE_COLUMNS = ("train_accuracy", "test_accuracy", "train_adv_accuracy", "test_adv_accuracy",
                 "train_lipschitz", "test_lipschitz", "gap", "adv_gap")


def _parse_value(text: str):
  low = text.lower()
  if low in ("true", "false"):
    return low == "true"
  try:
    return int(text)
  except ValueError:
    pass
  try:
    return float(text)
  except ValueError:
    return text


def parse_method(spec: str) -> tuple[str, dict]:
  """``'trades:beta=6'`` -> ``('trades', {'beta': 6})``; validates the loss name and its keys."""
  parts = [p for p in spec.strip().split(":") if p]
  if not parts:
    raise ValueError("config.methods has an empty method spec")
  name, kwargs = parts[0], {}
  common.validate_choice("methods", name, robust_losses.METHODS)
  factory = getattr(robust_losses, name)
  allowed = [p for p in inspect.signature(factory).parameters if p != "model"]
  for part in parts[1:]:
    if "=" not in part:
      raise ValueError(f"config.methods: {spec!r}: expected key=value after ':', got {part!r}")
    k, v = part.split("=", 1)
    if k not in allowed:
      raise ValueError(f"config.methods: {spec!r}: {name} takes no {k!r}; allowed: {allowed}")
    kwargs[k] = _parse_value(v)
  return name, kwargs


def method_specs(config) -> list[str]:
  specs = config.methods
  if isinstance(specs, str):
    specs = specs.split(",")
  return [s.strip() for s in specs if s.strip()]


def validate_config(config) -> None:
  """Checks every name and value before any compute; errors name the field and allowed values.
  The training fields are those of experiments.train; the rest are the threat model's."""
  train_job.validate_config(config)
  common.validate_choice("norm", config.norm, NORMS)
  common.validate_positive("eps", config.eps)
  common.validate_positive("num_seeds", config.num_seeds, integer=True)
  common.validate_positive("train_attack_steps", config.train_attack_steps)
  common.validate_positive("eval_steps", config.eval_steps)
  common.validate_positive("eval_restarts", config.eval_restarts)
  common.validate_positive("lip_steps", config.lip_steps)
  common.validate_positive("eval_max_examples", config.eval_max_examples, allow_zero=True,
                           integer=True)
  specs = method_specs(config)
  if not specs:
    raise ValueError("config.methods is empty; give e.g. 'natural,trades:beta=6'")
  if len(set(specs)) != len(specs):
    raise ValueError(f"config.methods lists a method twice: {specs}")
  for spec in specs:
    name, _ = parse_method(spec)
    if config.norm != "linf" and name == "llr":
      raise ValueError("config.methods: llr is defined for norm='linf' only")


def build_loss(model, spec: str, config):
  name, kwargs = parse_method(spec)
  if name in _ATTACKED:
    kwargs.setdefault("eps", config.eps)
    kwargs.setdefault("steps", config.train_attack_steps)
  if name in ("adversarial", "rst", "trades"):
    kwargs.setdefault("norm", config.norm)
  return robust_losses.make_loss(name, model, **kwargs)


def _subset(ds, n, seed):
  if not n or len(ds) <= n:
    return ds.arrays()
  idx = np.sort(np.random.default_rng(seed).permutation(len(ds))[:n])
  return ds.take(idx).arrays()


def run_one(config, spec: str, seed: int, run_dir: str, train_ds, test_ds) -> dict:
  """Trains method ``spec`` with ``seed`` in ``run_dir`` (resuming) and evaluates it."""
  results_path = os.path.join(run_dir, "results.json")
  if os.path.exists(results_path):
    return io.read_json(results_path)
  os.makedirs(run_dir, exist_ok=True)
  root = jax.random.key(seed)
  init_key, run_key, eval_key = jax.random.split(root, 3)
  model = models.create(config.model, train_ds.num_classes, **config.get("model_kwargs", {}))
  params, model_state = model.init(init_key, train_ds.x[:1])
  spe = data_lib.steps_per_epoch(len(train_ds), config.batch_size)
  num_steps = int(config.num_epochs * spe)
  tx = optimizers.direction(config.optimizer, momentum=config.momentum, nesterov=config.nesterov,
                            weight_decay=config.weight_decay)
  sched = optimizers.schedule(
      config.lr_schedule, base_lr=config.learning_rate, total_steps=num_steps,
      boundaries=tuple(int(e * spe) for e in config.get("lr_boundaries_epochs", ())),
      decay_factor=config.get("lr_decay_factor", 0.1))
  state = train_lib.TrainState.create(params, model_state, tx)
  step = jax.jit(train_lib.make_train_step(build_loss(model, spec, config), tx, sched,
                                           preprocess=augment_lib.make_augment(config.augment)),
                 donate_argnums=0)
  state = train_lib.train(
      state, step, train_ds.arrays(), batch_size=config.batch_size, num_steps=num_steps,
      key=run_key, ckpt_dir=os.path.join(run_dir, "checkpoints"),
      checkpoint_every=config.checkpoint_every, log_every=config.log_every,
      metrics_path=os.path.join(run_dir, "metrics.jsonl"), name=f"{spec}/seed{seed}",
      stop_after=config.get("stop_after_steps") or None)
  if int(jax.device_get(state.step)) < num_steps:
    return {}
  state = jax.device_get(state)
  evaluator = robust_eval.make_robust_evaluator(
      model, num_classes=train_ds.num_classes, eps=config.eps, norm=config.norm,
      step_size=config.get("eval_step_size") or None, steps=config.eval_steps,
      restarts=config.eval_restarts, multi_target=config.eval_multi_target,
      lip_eps=config.get("lip_eps") or None, lip_step_size=config.lip_step_size,
      lip_steps=config.lip_steps, batch_size=config.eval_batch_size)
  k_train, k_test = jax.random.split(eval_key)
  tr = evaluator(state.params, state.model_state,
                 _subset(train_ds, config.eval_max_examples, seed), k_train)
  te = evaluator(state.params, state.model_state,
                 _subset(test_ds, config.eval_max_examples, seed), k_test)
  results = {"method": spec, "seed": seed, "steps": num_steps,
             "train_accuracy": tr["accuracy"], "test_accuracy": te["accuracy"],
             "train_adv_accuracy": tr["adv_accuracy"], "test_adv_accuracy": te["adv_accuracy"],
             "train_lipschitz": tr["lipschitz"], "test_lipschitz": te["lipschitz"],
             **robust_eval.gaps(tr, te), "train_n": tr["n"], "test_n": te["n"]}
  io.write_json(results_path, results)
  logging.info("%s seed %d: %s", spec, seed, results)
  return results


def summarize(rows: list[dict], specs: list[str]) -> list[dict]:
  """Per method: mean and (sample) standard deviation over seeds of every table column."""
  table = []
  for spec in specs:
    runs = [r for r in rows if r["method"] == spec]
    entry = {"method": spec, "seeds": len(runs)}
    for col in TABLE_COLUMNS:
      vals = np.asarray([r[col] for r in runs], float)
      entry[col] = float(vals.mean())
      entry[col + "_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
    table.append(entry)
  return table


def markdown_table(table: list[dict], config) -> str:
  head = ("| method | train acc | test acc | adv test acc | test Lipschitz | gap | adv gap | "
          "adv train acc | train Lipschitz |")
  lines = [f"{config.dataset}, {config.model}, {config.norm} eps={config.eps}, "
           f"{table[0]['seeds'] if table else 0} seeds (mean ± std); accuracies in %", "",
           head, "|" + "---|" * 9]

  def pct(e, k):
    return f"{100 * e[k]:.1f} ± {100 * e[k + '_std']:.1f}"

  for e in table:
    lines.append(
        f"| {e['method']} | {pct(e, 'train_accuracy')} | {pct(e, 'test_accuracy')} | "
        f"{pct(e, 'test_adv_accuracy')} | {e['test_lipschitz']:.2f} ± {e['test_lipschitz_std']:.2f}"
        f" | {pct(e, 'gap')} | {pct(e, 'adv_gap')} | {pct(e, 'train_adv_accuracy')} | "
        f"{e['train_lipschitz']:.2f} ± {e['train_lipschitz_std']:.2f} |")
  return "\n".join(lines) + "\n"


def plot(table: list[dict], rows: list[dict], path: str, title: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6, 4.5))
  for i, e in enumerate(table):
    color = f"C{i % 10}"
    runs = [r for r in rows if r["method"] == e["method"]]
    ax.scatter([r["test_lipschitz"] for r in runs], [100 * r["test_adv_accuracy"] for r in runs],
               color=color, alpha=0.35, s=18)
    ax.errorbar(e["test_lipschitz"], 100 * e["test_adv_accuracy"],
                xerr=e["test_lipschitz_std"], yerr=100 * e["test_adv_accuracy_std"], fmt="o",
                color=color, label=e["method"], capsize=3)
  ax.set_xscale("log")
  ax.set_xlabel("test local Lipschitz constant (log scale)")
  ax.set_ylabel("adversarial test accuracy (%)")
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


@common.workdir_job
def run(config, workdir: str) -> list[dict]:
  """Trains and evaluates every (method, seed) of ``config`` in ``workdir``; returns the table."""
  validate_config(config)
  common.check_workdir(workdir, config)
  table_path = os.path.join(workdir, "table.csv")
  specs = method_specs(config)
  if os.path.exists(table_path):
    logging.info("%s is finished; table: %s", workdir, table_path)
    return io.read_json(os.path.join(workdir, "table.json"))
  kwargs = common.data_kwargs(config)
  train_ds = data_lib.load(config.dataset, "train", **kwargs)
  test_ds = data_lib.load(config.dataset, "test", **kwargs)
  train_job.validate_data(config, train_ds, test_ds)
  common.open_workdir(workdir, config)
  rows = []
  for spec in specs:
    for k in range(config.num_seeds):
      seed = config.seed + k
      run_dir = os.path.join(workdir, "runs", spec.replace(":", "_").replace("=", ""), f"seed{seed}")
      res = run_one(config, spec, seed, run_dir, train_ds, test_ds)
      if not res:
        logging.info("stopped early (stop_after_steps) in %s", run_dir)
        return []
      rows.append(res)
  table = summarize(rows, specs)
  io.write_csv(os.path.join(workdir, "results.csv"), rows)
  io.write_json(os.path.join(workdir, "table.json"), table)
  io.write_text(os.path.join(workdir, "table.md"), markdown_table(table, config))
  plot(table, rows, os.path.join(workdir, "robust_adv_vs_lipschitz.png"),
       f"{config.dataset} {config.model}, {config.norm} eps={config.eps}")
  io.write_csv(table_path, table)  # last: its presence marks the job finished
  return table


def main(argv):
  config, workdir = common.start_job(argv)
  table = run(config, workdir)
  if table:
    print(markdown_table(table, config))


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main, flags_parser=common.parse_flags)
