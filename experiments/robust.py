r"""Robust training and evaluation: Yang et al. (NeurIPS 2020), Table 2 and Figure 2.

  python -m experiments.robust --config=experiments/configs/robust_digits_mlp.py --workdir=/tmp/rob
  python -m experiments.robust --config=experiments/configs/robust_cifar10_wrn.py:dropout \
      --config.data_dir=~/tensorflow_datasets --workdir=/tmp/rob_c10

For every method of ``config.methods`` and every seed it trains a model (lipprune.train.loop, so
each run checkpoints and resumes), then measures on train and test: clean accuracy, adversarial
accuracy (PGD with restarts, and the multi-target attack if configured) and the empirical local
Lipschitz constant; the gaps are train minus test. A method is a spec ``loss[:k=v[:k=v...]]``, e.g.
``trades:beta=6`` or ``rst:lam=1``; ``loss`` is one of lipprune.robust.losses.METHODS and the keys
are that loss factory's keyword arguments (``eps``, ``steps``, ``norm`` and ``box`` come from the
config unless given), plus ``lr``, that method's learning rate (default ``config.learning_rate``;
the official code sets it per method). With ``config.eval_autoattack`` the test set is also
attacked by APGD-CE + APGD-T (lipprune.robust.apgd) and the table gains an AutoAttack column.

Threat model and input range. The attacks project onto ``config.box``; left empty it is the
dataset's declared input range (lipprune.data.INPUT_RANGES, [0, 1] for images). Datasets without
one (mnist1d, standardized tabular data) are refused unless the box is given. An l_inf ``eps``
must lie in (0, box width]; every attack's number of steps must be positive.

Workdir layout: ``config.json``; ``runs/<method>/seed<k>/`` with checkpoints, metrics.jsonl and
results.json; ``tb/<method>/seed<k>/`` with their TensorBoard events; ``results.csv`` (one row per
run), ``table.csv`` and ``table.md`` (mean and standard deviation over seeds per method) and
``robust_adv_vs_lipschitz.png``. Rerunning resumes unfinished
runs, skips finished ones and never rewrites a finished table.
"""
from __future__ import annotations

import os

import jax
import numpy as np
from absl import app, flags, logging

from . import common
from . import recipe
from .robust_specs import (build_loss, method_learning_rate, method_specs, parse_method,
                           resolve_box, validate_threat_model)
from lipprune import data as data_lib
from lipprune import models
from lipprune import plotting
from lipprune import train as train_lib
from lipprune.data import augment as augment_lib
from lipprune.robust import evaluate as robust_eval
from lipprune.robust import models as _robust_models  # noqa: F401  (registers yang_cnn1/2)
from lipprune.train import io, optimizers, summary

common.define_job_flags()

TABLE_COLUMNS = ("train_accuracy", "test_accuracy", "train_adv_accuracy", "test_adv_accuracy",
                 "train_lipschitz", "test_lipschitz", "gap", "adv_gap")
AA_COLUMNS = ("test_apgd_ce_accuracy", "test_aa_accuracy")


def validate_config(config) -> None:
  """Checks every name and value before any compute; errors name the field and allowed values.
  The training fields are those of experiments.train; the rest are the threat model's."""
  recipe.validate_config(config)
  common.replicate_seeds(config)
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
  validate_threat_model(config, specs)


def _subset(ds, n, seed):
  if not n or len(ds) <= n:
    return ds.arrays()
  idx = np.sort(np.random.default_rng(seed).permutation(len(ds))[:n])
  return ds.take(idx).arrays()


def run_one(config, spec: str, seed: int, run_dir: str, train_ds, test_ds,
            summary_dir: str | None = None) -> dict:
  """Trains method ``spec`` with ``seed`` in ``run_dir`` (resuming) and evaluates it; with
  ``summary_dir``, writes TensorBoard events there (the training records, then the results under
  ``result/``)."""
  results_path = os.path.join(run_dir, "results.json")
  if io.exists(results_path):
    return io.read_json(results_path)
  io.makedirs(run_dir)
  root = jax.random.key(seed)
  init_key, run_key, eval_key = jax.random.split(root, 3)
  model = models.create(config.model, train_ds.num_classes, **config.get("model_kwargs", {}))
  params, model_state = model.init(init_key, train_ds.x[:1])
  spe = data_lib.steps_per_epoch(len(train_ds), config.batch_size)
  num_steps = int(config.num_epochs * spe)
  tx = optimizers.direction(config.optimizer, momentum=config.momentum, nesterov=config.nesterov,
                            weight_decay=config.weight_decay)
  sched = optimizers.schedule(
      config.lr_schedule, base_lr=method_learning_rate(spec, config), total_steps=num_steps,
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
      summary_dir=summary_dir,
      stop_after=config.get("stop_after_steps") or None)
  if int(jax.device_get(state.step)) < num_steps:
    return {}
  state = jax.device_get(state)
  evaluator_kwargs = dict(
      num_classes=train_ds.num_classes, eps=config.eps, norm=config.norm,
      step_size=config.get("eval_step_size") or None, steps=config.eval_steps,
      restarts=config.eval_restarts, multi_target=config.eval_multi_target,
      lip_eps=config.get("lip_eps") or None, lip_step_size=config.lip_step_size,
      lip_steps=config.lip_steps, lip_estimator=config.get("lip_estimator", "ascent"),
      lip_extra_estimators=tuple(config.get("lip_extra_estimators", ())),
      box=resolve_box(config), batch_size=config.eval_batch_size)
  autoattack = config.get("eval_autoattack", False)
  k_train, k_test = jax.random.split(eval_key)
  tr = robust_eval.make_robust_evaluator(model, **evaluator_kwargs)(
      state.params, state.model_state, _subset(train_ds, config.eval_max_examples, seed), k_train)
  te = robust_eval.make_robust_evaluator(
      model, autoattack=autoattack, aa_steps=config.get("aa_steps", 100),
      aa_restarts=config.get("aa_restarts", 1), aa_targets=config.get("aa_targets", 9),
      **evaluator_kwargs)(
          state.params, state.model_state, _subset(test_ds, config.eval_max_examples, seed), k_test)
  results = {"method": spec, "seed": seed, "steps": num_steps,
             "train_accuracy": tr["accuracy"], "test_accuracy": te["accuracy"],
             "train_adv_accuracy": tr["adv_accuracy"], "test_adv_accuracy": te["adv_accuracy"],
             "train_lipschitz": tr["lipschitz"], "test_lipschitz": te["lipschitz"],
             **robust_eval.gaps(tr, te), "train_n": tr["n"], "test_n": te["n"]}
  for e in config.get("lip_extra_estimators", ()):
    results.update({f"train_lipschitz_{e}": tr[f"lipschitz_{e}"],
                    f"test_lipschitz_{e}": te[f"lipschitz_{e}"]})
  if autoattack:
    results.update(test_apgd_ce_accuracy=te["apgd_ce_accuracy"], test_aa_accuracy=te["aa_accuracy"])
  if summary_dir is not None:
    summary.write_scalars(summary_dir, num_steps, results, skip=("seed",))
  io.write_json(results_path, results)
  logging.info("%s seed %d: %s", spec, seed, results)
  return results


def table_columns(rows: list[dict]) -> tuple[str, ...]:
  """The summarized columns: the AutoAttack ones only when every run has them."""
  with_aa = bool(rows) and all(c in r for r in rows for c in AA_COLUMNS)
  return TABLE_COLUMNS + (AA_COLUMNS if with_aa else ())


def summarize(rows: list[dict], specs: list[str]) -> list[dict]:
  """Per method: mean and (sample) standard deviation over seeds of every table column (the
  standard deviation is None for a single seed)."""
  table = []
  columns = table_columns(rows)
  for spec in specs:
    runs = [r for r in rows if r["method"] == spec]
    entry = {"method": spec, "seeds": len(runs)}
    for col in columns:
      vals = np.asarray([r[col] for r in runs], float)
      entry[col] = float(vals.mean())
      entry[col + "_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else None
    table.append(entry)
  return table


def _mean_std(e, k, scale=100.0, digits=1) -> str:
  return plotting.mean_std(e[k], e[k + "_std"], scale, digits)


def markdown_table(table: list[dict], config) -> str:
  with_aa = bool(table) and all(c in table[0] for c in AA_COLUMNS)
  aa_head = " APGD-CE test acc | AutoAttack test acc |" if with_aa else ""
  head = ("| method | train acc | test acc | adv test acc |" + aa_head + " test Lipschitz | gap | "
          "adv gap | adv train acc | train Lipschitz |")
  lines = [f"{config.dataset}, {config.model}, {config.norm} eps={config.eps}, "
           f"{table[0]['seeds'] if table else 0} seeds (mean ± std); accuracies in %", "",
           head, "|" + "---|" * (9 + 2 * with_aa)]

  def lip(e, k):
    return _mean_std(e, k, scale=1.0, digits=2)

  for e in table:
    aa = (f" {_mean_std(e, 'test_apgd_ce_accuracy')} | {_mean_std(e, 'test_aa_accuracy')} |"
          if with_aa else "")
    lines.append(
        f"| {e['method']} | {_mean_std(e, 'train_accuracy')} | {_mean_std(e, 'test_accuracy')} | "
        f"{_mean_std(e, 'test_adv_accuracy')} |{aa} {lip(e, 'test_lipschitz')} | "
        f"{_mean_std(e, 'gap')} | {_mean_std(e, 'adv_gap')} | "
        f"{_mean_std(e, 'train_adv_accuracy')} | {lip(e, 'train_lipschitz')} |")
  return "\n".join(lines) + "\n"


def plot(table: list[dict], rows: list[dict], path: str, title: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6, 4.5))
  markers = plotting.method_markers(e["method"] for e in table)
  for e in table:
    color, marker = plotting.method_color(e["method"]), markers[e["method"]]
    runs = [r for r in rows if r["method"] == e["method"]]
    ax.scatter([r["test_lipschitz"] for r in runs], [100 * r["test_adv_accuracy"] for r in runs],
               color=color, marker=marker, alpha=0.35, s=18)
    ax.errorbar(e["test_lipschitz"], 100 * e["test_adv_accuracy"],
                xerr=e["test_lipschitz_std"] or 0.0,
                yerr=100 * (e["test_adv_accuracy_std"] or 0.0), fmt=marker, color=color,
                label=e["method"], capsize=3)
  plotting.log_axis(ax, "x")
  ax.set_xlabel(f"test {plotting.metric_label('test_lipschitz')}, log scale")
  ax.set_ylabel(plotting.metric_label("test_adv_accuracy"))
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  fig.tight_layout()
  io.save_figure(fig, path, dpi=120)
  plt.close(fig)


@common.workdir_job
def run(config, workdir: str) -> list[dict]:
  """Trains and evaluates every (method, seed) of ``config`` in ``workdir``; returns the table."""
  validate_config(config)
  common.check_workdir(workdir, config)
  table_path = os.path.join(workdir, "table.csv")
  specs = method_specs(config)
  if io.exists(table_path):
    logging.info("%s is finished; table: %s", workdir, table_path)
    return io.read_json(os.path.join(workdir, "table.json"))
  kwargs = common.data_kwargs(config)
  train_ds = data_lib.load(config.dataset, "train", **kwargs)
  test_ds = data_lib.load(config.dataset, "test", **kwargs)
  recipe.validate_data(config, train_ds, test_ds)
  common.open_workdir(workdir, config)
  rows = []
  for spec in specs:
    for seed in common.replicate_seeds(config):
      method_dir = spec.replace(":", "_").replace("=", "")
      run_dir = os.path.join(workdir, "runs", method_dir, f"seed{seed}")
      res = run_one(config, spec, seed, run_dir, train_ds, test_ds,
                    summary_dir=os.path.join(workdir, "tb", method_dir, f"seed{seed}"))
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
