r"""Prune a robust or a fair model, and watch what sparsity does to robustness and fairness.

  python -m experiments.joint --config=experiments/configs/joint_robust_digits.py --workdir=/tmp/jr
  python -m experiments.joint --config=experiments/configs/joint_fair_compas.py \
      --config.data_dir=/path/with/compas-csv --workdir=/tmp/jf

None of the three papers asks how their subjects interact; this job does. It runs the pruning driver of
`experiments.prune` unchanged (original run, rounds per arm, fine-tuning / weight rewinding / LR
rewinding, checkpoints, resume) with two substitutions, both composed here so that lipprune.sparsity,
lipprune.robust and lipprune.fairness never import each other:

* ``joint.kind='robust'``: the training loss (original run and every retraining) is a robust loss of
  `lipprune.robust.losses` (``joint.method``, e.g. ``'trades:beta=6'``), and every round also reports
  the adversarial test accuracy (PGD) and the empirical local Lipschitz constant of Yang et al.
* ``joint.kind='fair'``: on a tabular dataset with a protected group, the loss is the negative
  log-likelihood plus ``eta`` times a fairness penalty computed on the training batch (Wick et al.'s
  in-processing model; ``eta=0`` is the unconstrained baseline); optionally the observed labels carry
  the paper's label bias at rate ``joint.label_bias`` (train and test; the clean labels ``z`` are
  kept), and every round reports the disparate-impact ratio and the group error rates against both
  the observed and the clean labels.

Outputs are those of `experiments.prune` (results.csv, summary.csv, results.json, one PNG per metric
against the compression ratio), with the extra metric columns.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from . import common
from . import prune as prune_job
from . import robust_specs
from lipprune.fairness import bias as bias_lib
from lipprune.fairness import losses as fair_losses
from lipprune.fairness import metrics as fair_metrics
from lipprune.robust import evaluate as robust_eval

common.define_job_flags()

KINDS = ("robust", "fair")
FAIR_DATASETS = ("compas", "adult", "german")
# Group metrics reported per round (observed labels `_y`, clean labels `_z`).
FAIR_METRICS = ("di", "dp_diff", "accuracy_z", "f1_y", "f1_z", "fpr_g0_z", "fpr_g1_z", "fnr_g0_z",
                "fnr_g1_z", "eodds_gap_z")


def validate_config(config) -> None:
  """Checks the joint fields, then everything `experiments.prune` checks, before any compute."""
  j = config.joint
  common.validate_choice("joint.kind", j.kind, KINDS)
  if j.kind == "robust":
    robust_specs.parse_method(j.method)
    if robust_specs.parse_spec(j.method)[2]:
      raise ValueError(f"config.joint.method={j.method!r}: the joint study trains with "
                       "config.learning_rate; drop the method's 'lr' key")
    robust_specs.validate_threat_model(config, [j.method])
  else:
    common.validate_choice("dataset", config.dataset, FAIR_DATASETS)
    common.validate_choice("joint.penalty", j.penalty, fair_losses.PENALTIES)
    common.validate_positive("joint.eta", j.eta, allow_zero=True)
    common.validate_range("joint.label_bias", j.label_bias, 0.0, 1.0)
  prune_job.validate_config(config)


def _fair_loss(model, eta: float, penalty: str):
  """In-processing: NLL on the batch + ``eta`` * penalty of the batch's own predictions."""
  inner = fair_losses.penalized_loss(model, eta, penalty)

  def loss_fn(params, model_state, batch, key):
    batch = {**batch, "penalty_x": batch["x"], "penalty_group": batch["group"],
             "penalty_y": batch["y"]}
    return inner(params, model_state, batch, key)

  return loss_fn


def _with_label_bias(ds, beta: float, key):
  """The dataset with observed labels ``y`` carrying the paper's label bias at rate ``beta``.

  The tabular loaders record the outcome so that 1 is *unfavourable* on COMPAS (re-offence) and
  favourable on Adult and German; the bias pushes protected examples towards the unfavourable label.
  """
  if not beta:
    return ds
  favorable = 0 if ds.name == "compas" else 1
  y = bias_lib.label_bias(key, ds.extras["z"], ds.extras["group"], beta, favorable=favorable)
  return dataclasses.replace(ds, y=np.asarray(y, np.int32))


def hooks(config) -> dict:
  """The keyword arguments that turn `experiments.prune.run` into the joint study of ``config``."""
  j = config.joint
  if j.kind == "robust":
    def make_loss(model):
      return robust_specs.build_loss(model, j.method, config)

    def extra_eval(model, state, arrays, key):
      evaluate = robust_eval.make_robust_evaluator(
          model, num_classes=int(np.max(arrays["y"])) + 1, eps=config.eps, norm=config.norm,
          steps=config.eval_steps, restarts=config.eval_restarts, lip_steps=config.lip_steps,
          lip_step_size=config.lip_step_size, box=robust_specs.resolve_box(config),
          batch_size=config.eval_batch_size)
      out = evaluate(state.params, state.model_state, arrays, key)
      return {"adv_accuracy": out["adv_accuracy"], "lipschitz": out["lipschitz"]}

    return {"make_loss": make_loss, "extra_eval": extra_eval}

  def make_loss(model):
    return _fair_loss(model, j.eta, j.penalty)

  def extra_eval(model, state, arrays, key):
    logits, _ = model.apply(state.params, state.model_state, jnp.asarray(arrays["x"]), train=False)
    pred = jnp.argmax(logits, -1)
    out = fair_metrics.evaluate(pred, jnp.asarray(arrays["y"]), jnp.asarray(arrays["group"]),
                                z=jnp.asarray(arrays["z"]))
    return {k: float(out[k]) for k in FAIR_METRICS}

  def prepare_data(train_ds, test_ds, key):
    k_train, k_test = jax.random.split(key)
    return (_with_label_bias(train_ds, j.label_bias, k_train),
            _with_label_bias(test_ds, j.label_bias, k_test))

  return {"make_loss": make_loss, "extra_eval": extra_eval, "prepare_data": prepare_data}


def run(config, workdir: str) -> dict:
  validate_config(config)
  j = config.joint
  what = j.method if j.kind == "robust" else (
      f"{j.penalty} penalty eta={j.eta:g}, label bias {j.label_bias:g}")
  title = f"{config.model} on {config.dataset}, {what}, {config.num_seeds} seed(s)"
  return prune_job.run(config, workdir, title=title, **hooks(config))


def main(argv):
  config, workdir = common.start_job(argv)
  results = run(config, workdir)
  for s in results.get("summary", []):
    extra = "  ".join(f"{k[:-5]} {v:.4g}" for k, v in s.items()
                      if k.endswith("_mean") and k[:-5] not in prune_job.AGG_FIELDS)
    print(f"{s['arm']:36s} round {s['round']:2d} density {s['density_mean']:.4f} "
          f"test acc {s['test_accuracy_mean']:.4f}  {extra}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main, flags_parser=common.parse_flags)
