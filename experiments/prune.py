r"""Pruning with fine-tuning, weight rewinding and learning-rate rewinding (Renda et al., ICLR 2020).

  python -m experiments.prune --config=experiments/configs/prune_digits_mlp.py --workdir=/tmp/prune

The driver follows the paper's algorithm (Sec. 6, Algorithm 1), for every seed and every arm
``pruner:retrain[@t_epochs]``:

  1. train the dense network to completion (``T`` steps), keeping the snapshots at ``T - t`` that
     weight rewinding needs                                                      (`train_dense`)
  2. prune a fraction of the surviving weights of the previous round's network   (`prune_step`)
  3. retrain them: fine-tune, rewind weights or rewind the learning rate         (`retrain`)
  4. evaluate and record the round: accuracies, alive weights and parameters, FLOPs, per-layer
     density and collapsed layers                                                (`record_round`)
  5. repeat 2-4 for every round of the schedule (one-shot: one round).

Arms: pruner ``global_magnitude`` (the paper's; ``prune.normalize='rms'|'lamp'`` and
``prune.min_density`` for layer-normalized or floored rankings), ``layerwise_magnitude``,
``filter_l1`` (structured), ``random`` (control), ``random_filter`` (structured control); retrain
``fine_tune``, ``weight_rewind``, ``lr_rewind``, ``reinit``; ``@t`` overrides the retraining length
``t`` (epochs) of ``config.retrain_epochs`` for that arm.

Layers: ``prune.spare`` (regexes on layer paths such as ``'^head/'``), ``prune.spare_first`` and
``prune.spare_last`` (found by name in data-flow order) stay dense. After every round a layer whose
density falls below ``prune.collapse_density`` (default 1%) or that keeps fewer weights than its
output units (``prune.collapse_per_output``) is reported in the row's ``collapsed_layers`` and a
warning is logged.

Paired comparisons: ``config.compare`` lists ``'arm_a - arm_b'``; paired.csv holds, per round, the
test accuracy difference paired by seed with a 95% confidence interval.

Seeds: ``config.seed, ..., config.seed + config.num_seeds - 1``, one original run each (the
workdir's ``seed_<s>``); ``config.data_seed`` fixes the data (the validation holdout and
``prepare_data``), the same for every seed, so studies of single seeds run apart aggregate.

Data: ``config.validation_size`` test examples are held out (Renda et al. hold out 20% of the test
set) and evaluated every round; when the config lists several ``t`` for one method, the best
``t`` is selected per round on them (`experiments.study.select_t`).

Workdir layout: ``config.json``; ``seed_<s>/original/seg_<i>/`` (orbax checkpoints of the original
run, one segment per snapshot); ``seed_<s>/dense.json``; ``seed_<s>/<arm>/round_<r>/`` (checkpoints
of the round's retraining) and ``round_<r>/result.json``; ``results.csv`` (one row per arm, seed and
round, with ``layer_density/<layer>`` columns), ``summary.csv`` (median, min, max, mean, std over
seeds, plus the validation-selected ``@val`` rows), ``matching.csv`` (per arm, the largest
compression that still matches the dense network), ``results.json``, ``accuracy_vs_compression.png``
and ``layer_density_<arm>.png``. Rerunning the same command resumes at the round and step where it
stopped: finished rounds are restored from their last checkpoint, the unfinished one resumes inside.
"""
from __future__ import annotations

import dataclasses
import os
import re
import zlib
from typing import Any, Callable

import jax
import jax.numpy as jnp
from absl import app, flags, logging

from . import common
from . import recipe
from . import study
from lipprune import data as data_lib
from lipprune import models
from lipprune import sparsity
from lipprune import train as train_lib
from lipprune.data import augment as augment_lib
from lipprune.data import steps_per_epoch
from lipprune.sparsity import accounting
from lipprune.sparsity import flops as flops_lib
from lipprune.sparsity import retrain as retrain_lib
from lipprune.sparsity import shrink as shrink_lib
from lipprune.train import io, summary
from lipprune.train.checkpoint import Checkpointer

common.define_job_flags()

MODES = ("iterative", "one_shot")
AGG_FIELDS = study.AGG_FIELDS


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


def pruning_fractions(p) -> list[float]:
  """The per-round fractions of ``config.prune``. ``rounds`` belongs to iterative pruning: a
  one-shot run prunes ``target_sparsity`` (or ``fraction``) once and ignores the ``rounds`` a base
  config may set for its iterative study."""
  one_shot = p.mode == "one_shot"
  return sparsity.round_fractions(
      p.mode, fraction=p.fraction, rounds=None if one_shot else (p.get("rounds") or None),
      target_sparsity=p.get("target_sparsity") or None)


def validate_config(config) -> list[Arm]:
  recipe.validate_config(config)
  p = config.prune
  common.validate_choice("prune.mode", p.mode, MODES)
  common.validate_fraction("prune.fraction", p.fraction)
  validate_study_fields(config)
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
  elif not target and not p.fraction:
    raise ValueError("config.prune.mode='one_shot' prunes config.prune.target_sparsity (or, when "
                     "that is 0, config.prune.fraction) of the weights once; both are 0")
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
  common.replicate_seeds(config)
  common.validate_positive("data_seed", config.data_seed, allow_zero=True, integer=True)
  return arms


def validate_study_fields(config) -> None:
  """Checks the per-layer pruning fields (scoring, spared layers, collapse guard), the paired
  comparisons and the plot; warns when several t of one method cannot be selected for lack of a
  validation split."""
  p = config.prune
  common.validate_choice("prune.normalize", p.get("normalize") or "",
                         ("",) + sparsity.NORMALIZATIONS)
  common.validate_range("prune.min_density", p.get("min_density", 0.0), 0.0, 1.0)
  common.validate_range("prune.collapse_density", _collapse_density(config), 0.0, 1.0)
  common.validate_positive("prune.collapse_per_output", _collapse_per_output(config),
                           allow_zero=True)
  for field in ("spare_first", "spare_last"):
    common.validate_choice(f"prune.{field}", p.get(field, False), (False, True))
  common.validate_choice("fuse_masks", config.get("fuse_masks", True), (False, True))
  spare = p.get("spare", ())
  if isinstance(spare, str) or not all(isinstance(r, str) for r in spare):
    raise ValueError(f"config.prune.spare={spare!r} must be a tuple of regular expressions")
  for r in spare:
    try:
      re.compile(r)
    except re.error as e:
      raise ValueError(f"config.prune.spare entry {r!r} is not a regular expression: {e}") from e
  common.validate_choice("plot_band", config.get("plot_band", "median_minmax"), study.BANDS)
  labels = [parse_arm(a).label for a in config.arms]
  for text in config.get("compare", ()):
    for side in study.parse_comparison(text):
      if parse_arm(side).label not in labels:
        raise ValueError(f"config.compare entry {text!r}: {side!r} is not one of config.arms "
                         f"{labels}")
  if study.t_groups(config.arms) and not config.get("validation_size", 0):
    logging.warning("config.arms list several t for %s but config.validation_size=0: no t is "
                    "selected (summary.csv has no '@val' rows)",
                    sorted(study.t_groups(config.arms)))
  if spare or p.get("spare_first", False) or p.get("spare_last", False):
    # The zoo's layer names do not depend on the input size: any image shape names them.
    model = models.create(config.model, 10, **dict(config.get("model_kwargs", {})))
    params, _ = jax.eval_shape(model.init, jax.random.key(0),
                               jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32))
    base_masks(config, params)


def _collapse_density(config) -> float:
  return config.prune.get("collapse_density", accounting.COLLAPSE_DENSITY)


def _collapse_per_output(config) -> float:
  return config.prune.get("collapse_per_output", accounting.COLLAPSE_PER_OUTPUT)


def _prune_rates(config):
  rates = config.prune.get("layer_rates")
  rates = rates.to_dict() if hasattr(rates, "to_dict") else rates
  return dict(rates) if rates else None


def _retrain_steps(arm: Arm, spe: int, config, num_steps: int) -> int:
  epochs = config.retrain_epochs if arm.retrain_epochs is None else arm.retrain_epochs
  return min(num_steps, max(1, int(round(epochs * spe))))


def _arm_id(arm: Arm) -> int:
  """Keys come from the arm's name, not its position: an arm's numbers do not depend on which
  other arms the config lists."""
  return zlib.crc32(arm.label.encode()) & 0x7FFFFFFF


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


@dataclasses.dataclass
class Study:
  """What every seed of a run shares: the config, the data, the mesh and the step budget."""
  config: Any
  workdir: str
  arms: list[Arm]
  fractions: list[float]
  train_ds: Any
  arrays: dict[str, dict]  # 'train', 'test' and, with a validation split, 'val'
  mesh: Any
  budget: _Budget
  spe: int
  make_loss: Callable | None
  extra_eval: Callable | None

  def loop_kw(self) -> dict:
    c = self.config
    return dict(batch_size=c.batch_size, mesh=self.mesh, log_every=c.log_every,
                checkpoint_every=c.checkpoint_every)


@dataclasses.dataclass
class SeedRun:
  """One seed's dense network and what its pruning rounds need from it."""
  seed: int
  model: Any
  state0: Any
  tx: Any
  sched: Callable
  num_steps: int
  run_key: jax.Array
  prune_key: jax.Array
  reinit_key: jax.Array
  eval_key: jax.Array
  step_fn: Callable  # (schedule_key, schedule) -> jitted train step
  base_masks: Any
  plan: list | None
  positions: dict
  snapshots: dict = dataclasses.field(default_factory=dict)
  dense: Any = None
  dense_row: dict | None = None


def load_splits(config, prepare_data=None):
  """``(train, test, val)`` Datasets. ``prepare_data`` sees the whole test split, then
  ``config.validation_size`` of its examples are held out exactly as `experiments.recipe.load_data`
  holds them out (``val`` is ``None`` without a validation split)."""
  whole = config.copy_and_resolve_references()
  with whole.unlocked():
    whole.validation_size = 0
  train_ds, test_ds = recipe.load_data(whole)
  recipe.validate_data(config, train_ds, test_ds)
  if prepare_data is not None:
    train_ds, test_ds = prepare_data(train_ds, test_ds,
                                     jax.random.fold_in(jax.random.key(config.data_seed), 7))
  val_ds = None
  if config.get("validation_size", 0):
    test_ds, val_ds = data_lib.holdout(test_ds, config.validation_size, config.data_seed)
  return train_ds, test_ds, val_ds


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
    prepare_data: ``(train_ds, test_ds, key) -> (train_ds, test_ds)`` applied once after loading
      (before the validation examples are held out), with a key from ``config.data_seed`` (the
      same data for every model seed).
    title: the plots' title (default: model, dataset and number of seeds).
  """
  arms = validate_config(config)
  fractions = pruning_fractions(config.prune)
  common.check_workdir(workdir, config)
  finished = common.finished_result(workdir, "results.json")
  if finished is not None:
    return finished

  train_ds, test_ds, val_ds = load_splits(config, prepare_data)
  arrays = {"train": train_ds.arrays(), "test": test_ds.arrays()}
  if val_ds is not None:
    arrays["val"] = val_ds.arrays()
  s = Study(config, workdir, arms, fractions, train_ds, arrays, train_lib.make_mesh(),
            _Budget(config.get("stop_after_steps", 0)),
            steps_per_epoch(len(train_ds), config.batch_size), make_loss, extra_eval)
  common.open_workdir(workdir, config)
  rows = []
  seeds = common.replicate_seeds(config)
  for seed in seeds:
    seed_run = train_dense(s, seed)
    if seed_run is None:
      return {"finished": False}
    for arm in arms:
      arm_rows = prune_arm(s, seed_run, arm)
      if arm_rows is None:
        return {"finished": False}
      rows += arm_rows
  title = title or f"{config.model} on {config.dataset}, {len(seeds)} seed(s)"
  return study.write(workdir, rows, title=title, band=config.get("plot_band", "median_minmax"),
                     collapse_density=_collapse_density(config),
                     comparisons=[" - ".join(parse_arm(x).label for x in study.parse_comparison(c))
                                  for c in config.get("compare", ())])


def prune_arm(s: Study, seed_run: SeedRun, arm: Arm) -> list[dict] | None:
  """The rounds of one arm from the seed's dense network: prune, retrain, record, repeat. Returns
  the arm's rows (dense first) or ``None`` when the step budget ran out."""
  rows = [{"arm": arm.label, **seed_run.dense_row}]
  prev, masks = seed_run.dense, seed_run.base_masks
  for r, fraction in enumerate(s.fractions, start=1):
    masks = prune_step(s, seed_run, arm, prev, masks, r, fraction)
    new, steps = retrain(s, seed_run, arm, prev, masks, r)
    if new is None:
      return None
    rows.append(record_round(s, seed_run, arm, r, prev, new, masks, steps))
    prev = new
  return rows


def _seed_dir(s: Study, seed: int) -> str:
  return os.path.join(s.workdir, f"seed_{seed}")


def _round_path(arm: Arm, r: int) -> str:
  """``<arm>/round_<r>``: where a round lives under its seed's workdir and its TensorBoard dir."""
  return os.path.join(study.safe_name(arm.label), f"round_{r}")


def _round_dir(s: Study, seed: int, arm: Arm, r: int) -> str:
  return os.path.join(_seed_dir(s, seed), _round_path(arm, r))


_ROW_IDS = ("seed", "round")  # a row's identifiers, not measurements: no TensorBoard scalar


def _tb_dir(s: Study, seed: int, *run: str) -> str:
  """TensorBoard run directory: ``tb/seed_<k>/original`` for the dense run, and
  ``tb/seed_<k>/<arm>/round_<r>`` for a round (whose row goes there under ``result/``)."""
  return os.path.join(s.workdir, "tb", f"seed_{seed}", *run)


def _snapshot_steps(s: Study, num_steps: int) -> list[int]:
  steps = {num_steps - _retrain_steps(a, s.spe, s.config, num_steps) for a in s.arms
           if a.retrain == "weight_rewind"}
  return sorted(t for t in steps if 0 < t < num_steps)


def train_dense(s: Study, seed: int) -> SeedRun | None:
  """Step 1: the original (dense) run of ``seed``, its masks and its evaluated dense row. Returns
  ``None`` when the step budget ran out."""
  config = s.config
  root = jax.random.key(seed)
  init_key, run_key, prune_key, reinit_key = jax.random.split(root, 4)
  model, state0, tx, sched, num_steps = recipe.build(config, s.train_ds, init_key)
  loss_fn = (s.make_loss(model) if s.make_loss is not None else
             train_lib.cross_entropy(model, label_smoothing=config.get("label_smoothing", 0.0)))
  preprocess = augment_lib.make_augment(config.augment)
  step_cache = {}

  def step_fn(schedule_key, schedule):
    if schedule_key not in step_cache:
      step_cache[schedule_key] = jax.jit(
          train_lib.make_train_step(loss_fn, tx, schedule, preprocess=preprocess,
                                    fuse_masks=config.get("fuse_masks", True)))
    return step_cache[schedule_key]

  masks = base_masks(config, state0.params)
  try:
    plan = shrink_lib.channel_plan(config.model, state0.params)
  except ValueError:
    plan = None
  positions = flops_lib.output_positions(model, state0.params, state0.model_state,
                                         s.train_ds.x[:1])
  seed_run = SeedRun(seed, model, state0, tx, sched, num_steps, run_key, prune_key, reinit_key,
                     jax.random.fold_in(root, 5), step_fn, masks, plan, positions)
  # The original run, in segments that end at the snapshot steps; `first_step` numbers the
  # segments' batches as one run's, so the dense network does not depend on the snapshot steps.
  bounds = [0] + _snapshot_steps(s, num_steps) + [num_steps]
  seed_run.snapshots[0] = state = state0
  for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
    state, done = s.budget.run(state, step_fn("original", sched), s.arrays["train"],
                               ckpt_dir=os.path.join(_seed_dir(s, seed), "original", f"seg_{i}"),
                               num_steps=b - a, key=run_key, first_step=a,
                               name=f"seed{seed}/original", **s.loop_kw(),
                               metrics_path=os.path.join(_seed_dir(s, seed), "original",
                                                         f"metrics_seg_{i}.jsonl"),
                               summary_dir=_tb_dir(s, seed, "original"))
    if not done:
      return None
    seed_run.snapshots[b] = state
  seed_run.dense = state
  dense_path = os.path.join(_seed_dir(s, seed), "dense.json")
  if io.exists(dense_path):
    seed_run.dense_row = io.read_json(dense_path)
  else:
    seed_run.dense_row = {"seed": seed, "round": 0, **evaluate(s, seed_run, state, masks,
                                                               seed_run.eval_key),
                          "retrain_steps": 0}
    seed_run.dense_row["pruned_test_accuracy"] = seed_run.dense_row["test_accuracy"]
    summary.write_scalars(_tb_dir(s, seed, "original"), num_steps, seed_run.dense_row,
                          skip=_ROW_IDS)
    io.write_json(dense_path, seed_run.dense_row)
  return seed_run


def base_masks(config, params):
  """The all-ones masks of ``params`` with the layers ``config.prune`` spares; a ``spare`` regex
  that names no prunable layer is an error."""
  p = config.prune
  spare = tuple(p.get("spare", ()))
  masks = sparsity.init_masks(params, spare_first=p.get("spare_first", False),
                              spare_last=p.get("spare_last", False), spare=spare)
  kernels = [sparsity.masks.path_str(k) for k, v in sparsity.masks.flatten(params).items()
             if sparsity.default_prunable(k, v)]
  for r in spare:
    if not any(re.search(r, k) for k in kernels):
      raise ValueError(f"config.prune.spare entry {r!r} matches no prunable layer of "
                       f"{config.model}; its prunable kernels are {kernels}")
  return masks


def prune_step(s: Study, seed_run: SeedRun, arm: Arm, prev, masks, r: int, fraction: float):
  """Step 2: the masks of round ``r``, pruned from the survivors of ``prev`` (the previous round's
  retrained network)."""
  p = s.config.prune
  key = jax.random.fold_in(jax.random.fold_in(seed_run.prune_key, _arm_id(arm)), r)
  rates = (_prune_rates(s.config) if arm.pruner in ("layerwise_magnitude", "random")
           + sparsity.STRUCTURED_PRUNERS else None)
  masks = sparsity.prune(arm.pruner, prev.params, masks, rates or fraction, key=key,
                         normalize=p.get("normalize") or None,
                         min_density=p.get("min_density", 0.0))
  if arm.pruner in sparsity.STRUCTURED_PRUNERS and seed_run.plan is not None:
    # Removed filters also lose their bias and batch norm, so their channels are exactly zero
    # and the network can be shrunk physically (lipprune.sparsity.shrink).
    masks = shrink_lib.channel_masks(prev.params, masks, seed_run.plan)
  return masks


def retrain(s: Study, seed_run: SeedRun, arm: Arm, prev, masks, r: int):
  """Step 3: retrains round ``r`` (resuming from its checkpoints); returns the retrained state and
  the number of retraining steps, the state ``None`` when the step budget ran out."""
  t = _retrain_steps(arm, s.spe, s.config, seed_run.num_steps)
  start, schedule, n = _retrain_start(s, seed_run, arm, prev, masks, t,
                                      jax.random.fold_in(seed_run.reinit_key, r))
  rdir = _round_dir(s, seed_run.seed, arm, r)
  sched_key = ("fine_tune", t) if arm.retrain == "fine_tune" else "original"
  key = jax.random.fold_in(jax.random.fold_in(seed_run.run_key, _arm_id(arm)), r)
  new, done = s.budget.run(start, seed_run.step_fn(sched_key, schedule), s.arrays["train"],
                           ckpt_dir=os.path.join(rdir, "ckpt"), num_steps=n, key=key,
                           name=f"seed{seed_run.seed}/{arm.label}/round{r}",
                           metrics_path=os.path.join(rdir, "metrics.jsonl"), **s.loop_kw(),
                           summary_dir=_tb_dir(s, seed_run.seed, _round_path(arm, r)))
  return (new if done else None), n


def _retrain_start(s: Study, seed_run: SeedRun, arm: Arm, prev, masks, t: int, key):
  """The state, schedule and step count a round's retraining starts from."""
  sched, num_steps = seed_run.sched, seed_run.num_steps
  if arm.retrain == "fine_tune":
    return retrain_lib.fine_tune(prev, masks, sched, num_steps, t)
  if arm.retrain == "weight_rewind":
    return retrain_lib.weight_rewind(seed_run.snapshots[num_steps - t], masks, sched, t)
  if arm.retrain == "lr_rewind":
    return retrain_lib.lr_rewind(prev, masks, sched, num_steps, t,
                                 reset_opt_state=s.config.get("lr_rewind_reset_opt", False),
                                 tx=seed_run.tx)
  params, model_state = seed_run.model.init(key, s.train_ds.x[:1])
  fresh = train_lib.TrainState.create(params, model_state, seed_run.tx)
  return retrain_lib.reinit(fresh, masks, sched, num_steps)


def record_round(s: Study, seed_run: SeedRun, arm: Arm, r: int, prev, new, masks,
                 retrain_steps: int) -> dict:
  """Step 4: the row of round ``r`` (read back when the round was recorded before)."""
  result_path = os.path.join(_round_dir(s, seed_run.seed, arm, r), "result.json")
  if io.exists(result_path):
    return io.read_json(result_path)
  pruned = _eval(s, seed_run.model, prev.replace(params=train_lib.apply_masks(prev.params, masks)),
                 "test")
  row = {"arm": arm.label, "seed": seed_run.seed, "round": r,
         **evaluate(s, seed_run, new, masks, jax.random.fold_in(seed_run.eval_key, r)),
         "pruned_test_accuracy": pruned["accuracy"],
         "retrain_steps": retrain_steps}
  summary.write_scalars(_tb_dir(s, seed_run.seed, _round_path(arm, r)),
                        retrain_steps, row, skip=_ROW_IDS)
  io.write_json(result_path, row)
  logging.info("seed %d %s round %d: density %.4f test acc %.4f", seed_run.seed, arm.label, r,
               row["density"], row["test_accuracy"])
  if row["collapsed_layers"]:
    logging.warning("seed %d %s round %d: layer collapse in %s (density below %g or fewer alive "
                    "weights than output units)", seed_run.seed, arm.label, r,
                    ", ".join(row["collapsed_layers"]), _collapse_density(s.config))
  return row


def _eval(s: Study, model, state, split: str) -> dict:
  return train_lib.evaluate(model, state.params, state.model_state, s.arrays[split],
                            batch_size=s.config.eval_batch_size, mesh=s.mesh)


def evaluate(s: Study, seed_run: SeedRun, state, masks, key) -> dict:
  """The measured fields of a row: size (alive weights and parameters, per-layer density, collapsed
  layers), FLOPs, and the accuracies and losses on every split (plus the ``extra_eval`` metrics)."""
  counts = accounting.count(state.params, masks, seed_run.plan)
  macs = flops_lib.multiply_adds(seed_run.positions, state.params, masks, seed_run.plan)
  row = {"density": counts["density"], "sparsity": counts["sparsity"],
         "compression": counts["compression"], "alive": counts["alive"],
         "params": counts["params_alive"], "param_compression": counts["param_compression"],
         "flops": macs["alive"], "flops_ratio": macs["ratio"]}
  for split in s.arrays:
    ev = _eval(s, seed_run.model, state, split)
    row[f"{split}_accuracy"], row[f"{split}_loss"] = ev["accuracy"], ev["loss"]
  if s.extra_eval is not None:
    extra = s.extra_eval(seed_run.model, state, s.arrays["test"], key)
    row.update({f"test_{k}": float(v) for k, v in extra.items()})
  row["collapsed_layers"] = accounting.collapsed_layers(
      counts, min_density=_collapse_density(s.config),
      min_per_output=_collapse_per_output(s.config))
  row["layer_density"] = {k: v["density"] for k, v in counts["layers"].items()}
  return row


def main(argv):
  config, workdir = common.start_job(argv)
  results = run(config, workdir)
  for s in results.get("summary", []):
    print(f"{s['arm']:40s} round {s['round']:2d} density {s['density_median']:.4f} "
          f"test acc median {s['test_accuracy_median']:.4f} "
          f"[{s['test_accuracy_min']:.4f}, {s['test_accuracy_max']:.4f}]")
  for m in results.get("matching", []):
    print(f"{m['arm']:40s} matches the dense network up to compression "
          f"{m['max_compression_median_minmax']:.2f}x (median within the dense min/max)")


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main, flags_parser=common.parse_flags)
