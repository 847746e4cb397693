r"""Pruning with fine-tuning, weight rewinding and learning-rate rewinding (Renda et al., ICLR 2020).

  python -m experiments.prune --config=experiments/configs/prune_digits_mlp.py --workdir=/tmp/prune

For every seed: train the dense network for ``T`` steps (saving snapshots at the steps that weight
rewinding needs, ``T - t``), then for every arm ``pruner:retrain[@t_epochs]`` run the pruning rounds:
prune a fraction of the survivors of the previous round's final weights, build the retraining state
with `lipprune.sparsity.retrain`, retrain, evaluate. Arms:

* pruner: ``global_magnitude`` (the paper's), ``layerwise_magnitude``, ``filter_l1``, ``random``;
* retrain: ``fine_tune``, ``weight_rewind``, ``lr_rewind``, ``reinit`` (random reinitialization);
  ``@t`` overrides the retraining length ``t`` (epochs) of ``config.retrain_epochs`` for that arm.

Workdir layout: ``config.json``; ``seed_<s>/original/seg_<i>/`` (orbax checkpoints of the original
run, one segment per snapshot); ``seed_<s>/<arm>/round_<r>/`` (checkpoints of the round's retraining)
and ``round_<r>/result.json``; ``results.csv``, ``results.json`` (rows and the seed aggregates) and
``accuracy_vs_compression.png``. Rerunning the same command resumes at the round and step where it
stopped: finished rounds are restored from their last checkpoint, the unfinished one resumes inside.
"""
from __future__ import annotations

import dataclasses
import os
import zlib
from typing import Any

import jax
import numpy as np
from absl import app, flags, logging

from experiments import common
from experiments import train as train_job
from lipprune import sparsity
from lipprune import train as train_lib
from lipprune.data import augment as augment_lib
from lipprune.data import steps_per_epoch
from lipprune.sparsity import retrain as retrain_lib
from lipprune.sparsity import shrink as shrink_lib
from lipprune.train import io
from lipprune.train.checkpoint import Checkpointer

common.define_job_flags()

MODES = ("iterative", "one_shot")


@dataclasses.dataclass(frozen=True)
class Arm:
  """One pruning arm: how to score (pruner), how to retrain, for how long (epochs, None=config)."""
  pruner: str
  retrain: str
  retrain_epochs: float | None = None

  @property
  def label(self) -> str:
    s = f"{self.pruner}:{self.retrain}"
    return s if self.retrain_epochs is None else f"{s}@{self.retrain_epochs:g}"


def parse_arm(text: str) -> Arm:
  """``'pruner:retrain[@t_epochs]'`` -> Arm; raises ValueError naming the allowed values."""
  head, _, t = text.partition("@")
  pruner, sep, retrain = head.partition(":")
  if not sep:
    raise ValueError(f"config.arms entry {text!r} must look like 'pruner:retrain[@epochs]'")
  common.validate_choice("arms[].pruner", pruner, sparsity.PRUNERS)
  common.validate_choice("arms[].retrain", retrain, retrain_lib.METHODS)
  try:
    epochs = float(t) if t else None
  except ValueError:
    raise ValueError(f"config.arms entry {text!r}: {t!r} after '@' must be the retraining length "
                     "t in epochs, a number") from None
  return Arm(pruner, retrain, epochs)


def validate_config(config) -> list[Arm]:
  train_job.validate_config(config)
  p = config.prune
  common.validate_choice("prune.mode", p.mode, MODES)
  common.validate_fraction("prune.fraction", p.fraction)
  common.validate_choice("prune.normalize", p.get("normalize") or "", ("", "rms"))
  rounds, target = p.get("rounds", 0), p.get("target_sparsity", 0.0)
  common.validate_positive("prune.rounds", rounds, allow_zero=True, integer=True)
  common.validate_fraction("prune.target_sparsity", target)
  if p.mode == "iterative":
    if not rounds and not target:
      raise ValueError("config.prune needs rounds or target_sparsity for iterative pruning")
    if rounds and target:
      raise ValueError(f"config.prune.rounds={rounds} and config.prune.target_sparsity={target} "
                       "both fix the number of iterative rounds; set the other one to 0")
    if target and not p.fraction:
      raise ValueError(f"config.prune.fraction=0 never reaches config.prune.target_sparsity={target}")
  elif rounds > 1:
    raise ValueError(f"config.prune.rounds={rounds} with config.prune.mode='one_shot', which prunes "
                     "once; set rounds to 0 or 1")
  for pattern, rate in (_prune_rates(config) or {}).items():
    common.validate_fraction(f"prune.layer_rates[{pattern!r}]", rate)
  common.validate_positive("retrain_epochs", config.retrain_epochs)
  if config.retrain_epochs > config.num_epochs:
    raise ValueError(f"config.retrain_epochs={config.retrain_epochs} must be <= num_epochs "
                     f"({config.num_epochs}): rewinding goes back to T - t >= 0")
  arms = [parse_arm(a) for a in config.arms]
  for a in arms:
    if a.retrain_epochs is not None and not 0 < a.retrain_epochs <= config.num_epochs:
      raise ValueError(f"config.arms {a.label}: t must be in (0, num_epochs={config.num_epochs}]")
  if not config.seeds:
    raise ValueError("config.seeds must list at least one seed")
  for seed in config.seeds:
    common.validate_positive("seeds[]", seed, allow_zero=True, integer=True)
  return arms


def _prune_rates(config):
  rates = config.prune.get("layer_rates")
  rates = rates.to_dict() if hasattr(rates, "to_dict") else rates
  return dict(rates) if rates else None


def _snapshot_steps(arms, num_steps: int, spe: int, config) -> list[int]:
  steps = set()
  for a in arms:
    if a.retrain == "weight_rewind":
      steps.add(num_steps - _retrain_steps(a, spe, config, num_steps))
  return sorted(s for s in steps if 0 < s < num_steps)


def _retrain_steps(arm: Arm, spe: int, config, num_steps: int) -> int:
  epochs = config.retrain_epochs if arm.retrain_epochs is None else arm.retrain_epochs
  return min(num_steps, max(1, int(round(epochs * spe))))


class _Budget:
  """Counts the training steps this invocation may still take (``stop_after_steps``; 0 = no limit)
  so that a test can stop a job mid-round exactly where a kill would."""

  def __init__(self, limit: int):
    self.left = limit if limit else None

  def run(self, state, step_fn, data, *, ckpt_dir, num_steps, **kw):
    ckpt = Checkpointer(ckpt_dir)
    start = ckpt.latest_progress() or 0
    ckpt.close()
    stop = None if self.left is None else start + self.left
    state = train_lib.train(state, step_fn, data, ckpt_dir=ckpt_dir, num_steps=num_steps,
                            stop_after=stop, **kw)
    if self.left is not None:
      self.left -= max(0, min(num_steps, stop) - start)
    finished = stop is None or stop >= num_steps
    return state, finished


def _eval(model, state, arrays, config, mesh):
  return train_lib.evaluate(model, state.params, state.model_state, arrays,
                            batch_size=config.eval_batch_size, mesh=mesh)


@common.workdir_job
def run(config, workdir: str, *, make_loss=None, extra_eval=None, prepare_data=None,
        title: str | None = None) -> dict:
  """Runs (or resumes) every seed and arm of ``config`` in ``workdir``; returns the results dict
  (``{'finished': False}`` when stopped early by ``stop_after_steps``).

  The hooks let other studies reuse the driver unchanged (experiments.joint prunes robust and fair
  models with them):
    make_loss: ``model -> loss_fn`` for the original run and every retraining (default: natural
      cross-entropy).
    extra_eval: ``(model, state, test_arrays, key) -> {name: float}``, evaluated on the test set for
      the dense network and after every round; the metrics join the rows as ``test_<name>``, are
      aggregated over seeds and plotted against the compression ratio.
    prepare_data: ``(train_ds, test_ds, key) -> (train_ds, test_ds)`` applied once after loading,
      with a key from ``config.seed`` (the same data for every model seed).
    title: the plots' title (default: model, dataset and number of seeds).
  """
  arms = validate_config(config)
  fractions = sparsity.round_fractions(
      config.prune.mode, fraction=config.prune.fraction, rounds=config.prune.get("rounds") or None,
      target_sparsity=config.prune.get("target_sparsity") or None)
  common.check_workdir(workdir, config)
  finished = common.finished_result(workdir, "results.json")
  if finished is not None:
    return finished

  train_ds, test_ds = train_job.load_data(config)
  if prepare_data is not None:
    train_ds, test_ds = prepare_data(train_ds, test_ds,
                                     jax.random.fold_in(jax.random.key(config.seed), 7))
  common.open_workdir(workdir, config)
  train_arrays, test_arrays = train_ds.arrays(), test_ds.arrays()
  mesh = train_lib.make_mesh()
  budget = _Budget(config.get("stop_after_steps", 0))
  spe = steps_per_epoch(len(train_ds), config.batch_size)
  preprocess = augment_lib.make_augment(config.augment)
  rows = []
  loop_kw = dict(batch_size=config.batch_size, mesh=mesh, log_every=config.log_every,
                 checkpoint_every=config.checkpoint_every)

  for seed in config.seeds:
    root = jax.random.key(seed)
    init_key, run_key, prune_key, reinit_key = jax.random.split(root, 4)
    eval_key = jax.random.fold_in(root, 5)
    model, state0, tx, sched, num_steps = train_job.build(config, train_ds, init_key)
    if make_loss is not None:
      loss_fn = make_loss(model)
    else:
      loss_fn = train_lib.cross_entropy(model, label_smoothing=config.get("label_smoothing", 0.0))

    def extra(state, key):
      if extra_eval is None:
        return {}
      return {f"test_{k}": float(v) for k, v in extra_eval(model, state, test_arrays, key).items()}

    step_cache = {}

    def step_fn(schedule_key, schedule):
      if schedule_key not in step_cache:
        step_cache[schedule_key] = jax.jit(
            train_lib.make_train_step(loss_fn, tx, schedule, preprocess=preprocess))
      return step_cache[schedule_key]

    # The original (dense) run, in segments that end at the snapshot steps; `first_step` numbers the
    # segments' batches as one run's, so the dense network does not depend on the snapshot steps.
    sdir = os.path.join(workdir, f"seed_{seed}")
    bounds = [0] + _snapshot_steps(arms, num_steps, spe, config) + [num_steps]
    snapshots = {0: state0}
    state = state0
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
      state, done = budget.run(state, step_fn("original", sched), train_arrays,
                               ckpt_dir=os.path.join(sdir, "original", f"seg_{i}"),
                               num_steps=b - a, key=run_key, first_step=a,
                               name=f"seed{seed}/original", **loop_kw)
      if not done:
        return {"finished": False}
      snapshots[b] = state
    dense = state
    base_masks = sparsity.init_masks(dense.params, spare_first=config.prune.get("spare_first", False),
                                     spare_last=config.prune.get("spare_last", False))
    dense_path = os.path.join(sdir, "dense.json")
    if os.path.exists(dense_path):
      dense_row = io.read_json(dense_path)
    else:
      tr, te = _eval(model, dense, train_arrays, config, mesh), _eval(model, dense, test_arrays,
                                                                      config, mesh)
      stats = sparsity.sparsity_stats(base_masks)
      dense_row = {"seed": seed, "round": 0, "density": 1.0, "sparsity": 0.0, "compression": 1.0,
                   "alive": stats["alive"], "train_accuracy": tr["accuracy"],
                   "train_loss": tr["loss"], "test_accuracy": te["accuracy"],
                   "test_loss": te["loss"], "pruned_test_accuracy": te["accuracy"],
                   "retrain_steps": 0, **extra(dense, eval_key)}
      io.write_json(dense_path, dense_row)

    try:
      plan = shrink_lib.channel_plan(config.model, dense.params)
    except ValueError:
      plan = None
    for arm in arms:
      # Keys from the arm's name, not its position: an arm's numbers do not depend on which other
      # arms the config lists.
      arm_id = zlib.crc32(arm.label.encode()) & 0x7FFFFFFF
      rows.append({"arm": arm.label, **dense_row})
      t = _retrain_steps(arm, spe, config, num_steps)
      adir = os.path.join(sdir, arm.label.replace(":", "_").replace("@", "_t"))
      prev, masks = dense, base_masks
      for r, frac in enumerate(fractions, start=1):
        key = jax.random.fold_in(jax.random.fold_in(prune_key, arm_id), r)
        rates = _prune_rates(config) if arm.pruner in ("layerwise_magnitude", "filter_l1",
                                                       "random") else None
        masks = sparsity.prune(arm.pruner, prev.params, masks, rates or frac, key=key,
                               normalize=config.prune.get("normalize") or None)
        if arm.pruner == "filter_l1" and plan is not None:
          # Removed filters also lose their bias and batch norm, so their channels are exactly zero
          # and the network can be shrunk physically (lipprune.sparsity.shrink).
          masks = shrink_lib.channel_masks(prev.params, masks, plan)
        start, schedule, n = _retrain_start(arm, prev, masks, snapshots, state0, sched, tx,
                                            num_steps, t, model, train_ds, config,
                                            jax.random.fold_in(reinit_key, r))
        rdir = os.path.join(adir, f"round_{r}")
        result_path = os.path.join(rdir, "result.json")
        sched_key = ("fine_tune", t) if arm.retrain == "fine_tune" else "original"
        new, done = budget.run(start, step_fn(sched_key, schedule), train_arrays,
                               ckpt_dir=os.path.join(rdir, "ckpt"), num_steps=n,
                               key=jax.random.fold_in(jax.random.fold_in(run_key, arm_id), r),
                               name=f"seed{seed}/{arm.label}/round{r}",
                               metrics_path=os.path.join(rdir, "metrics.jsonl"), **loop_kw)
        if not done:
          return {"finished": False}
        if os.path.exists(result_path):
          row = io.read_json(result_path)
        else:
          stats = sparsity.sparsity_stats(masks)
          pruned = _eval(model, prev.replace(params=train_lib.apply_masks(prev.params, masks)),
                         test_arrays, config, mesh)
          tr, te = _eval(model, new, train_arrays, config, mesh), _eval(model, new, test_arrays,
                                                                        config, mesh)
          row = {"arm": arm.label, "seed": seed, "round": r, "density": stats["density"],
                 "sparsity": stats["sparsity"], "compression": stats["compression"],
                 "alive": stats["alive"], "train_accuracy": tr["accuracy"], "train_loss": tr["loss"],
                 "test_accuracy": te["accuracy"], "test_loss": te["loss"],
                 "pruned_test_accuracy": pruned["accuracy"], "retrain_steps": n,
                 **extra(new, jax.random.fold_in(eval_key, r)),
                 "layer_density": {k: v["density"] for k, v in stats["layers"].items()}}
          io.write_json(result_path, row)
          logging.info("seed %d %s round %d: density %.4f test acc %.4f", seed, arm.label, r,
                       row["density"], row["test_accuracy"])
        rows.append(row)
        prev = new
  title = title or f"{config.model} on {config.dataset}, {len(config.seeds)} seed(s)"
  return _write_results(workdir, rows, title)


def _retrain_start(arm, prev, masks, snapshots, state0, sched, tx, num_steps, t, model, train_ds,
                   config, key):
  """The state, schedule and step count a round's retraining starts from."""
  if arm.retrain == "fine_tune":
    return retrain_lib.fine_tune(prev, masks, sched, num_steps, t)
  if arm.retrain == "weight_rewind":
    return retrain_lib.weight_rewind(snapshots[num_steps - t], masks, sched, t)
  if arm.retrain == "lr_rewind":
    return retrain_lib.lr_rewind(prev, masks, sched, num_steps, t,
                                 reset_opt_state=config.get("lr_rewind_reset_opt", False), tx=tx)
  params, model_state = model.init(key, train_ds.x[:1])
  fresh = train_lib.TrainState.create(params, model_state, tx)
  return retrain_lib.reinit(fresh, masks, sched, num_steps)


AGG_FIELDS = ("density", "compression", "train_accuracy", "test_accuracy", "test_loss",
              "pruned_test_accuracy")


def extra_fields(rows: list[dict]) -> tuple[str, ...]:
  """The ``test_<name>`` metrics that an ``extra_eval`` hook added to every row."""
  keys = set.intersection(*(set(r) for r in rows)) if rows else set()
  return tuple(sorted(k for k in keys if k.startswith("test_") and k not in AGG_FIELDS))


def aggregate(rows: list[dict]) -> list[dict]:
  """Mean and standard deviation over seeds of every (arm, round)."""
  fields = AGG_FIELDS + extra_fields(rows)
  groups: dict[tuple, list[dict]] = {}
  for r in rows:
    groups.setdefault((r["arm"], r["round"]), []).append(r)
  out = []
  for (arm, rnd), rs in sorted(groups.items()):
    rec: dict[str, Any] = {"arm": arm, "round": rnd, "num_seeds": len(rs)}
    for f in fields:
      v = np.asarray([x[f] for x in rs], np.float64)
      rec[f"{f}_mean"] = float(v.mean())
      rec[f"{f}_std"] = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    out.append(rec)
  return out


def plot(summary: list[dict], path: str, title: str = "", metric: str = "test_accuracy") -> None:
  """``metric`` (default test accuracy, in %) vs compression ratio (log x), one line per arm, mean
  +- std over seeds."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for arm in sorted({s["arm"] for s in summary}):
    rs = sorted((s for s in summary if s["arm"] == arm), key=lambda s: s["round"])
    x = np.asarray([s["compression_mean"] for s in rs])
    scale = 100 if metric.endswith("accuracy") else 1
    y = np.asarray([scale * s[f"{metric}_mean"] for s in rs])
    e = np.asarray([scale * s[f"{metric}_std"] for s in rs])
    ax.plot(x, y, marker="o", ms=3, label=arm)
    ax.fill_between(x, y - e, y + e, alpha=0.2)
  ax.set_xscale("log")
  ax.set_xlabel("compression ratio (prunable weights before / after)")
  ax.set_ylabel(metric.replace("_", " ") + (" (%)" if metric.endswith("accuracy") else ""))
  ax.set_title(title)
  ax.grid(True, which="both", alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  tmp = path + ".tmp.png"
  fig.savefig(tmp, dpi=120)
  plt.close(fig)
  os.replace(tmp, path)


def _write_results(workdir: str, rows: list[dict], title: str = "") -> dict:
  summary = aggregate(rows)
  flat_rows = [{k: v for k, v in r.items() if k != "layer_density"} for r in rows]
  results = {"finished": True, "rows": rows, "summary": summary}
  if jax.process_index() == 0:
    io.write_csv(os.path.join(workdir, "results.csv"), flat_rows)
    io.write_csv(os.path.join(workdir, "summary.csv"), summary)
    plot(summary, os.path.join(workdir, "accuracy_vs_compression.png"), title)
    for field in extra_fields(rows):
      plot(summary, os.path.join(workdir, f"{field}_vs_compression.png"), title, metric=field)
    io.write_json(os.path.join(workdir, "results.json"), results)
  return results


def main(argv):
  config, workdir = common.start_job(argv)
  results = run(config, workdir)
  for s in results.get("summary", []):
    print(f"{s['arm']:40s} round {s['round']:2d} density {s['density_mean']:.4f} "
          f"test acc {s['test_accuracy_mean']:.4f} +- {s['test_accuracy_std']:.4f}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main, flags_parser=common.parse_flags)
