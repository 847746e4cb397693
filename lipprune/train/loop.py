"""The training loop: batches in, checkpoints, metrics and progress out.

One call runs ``num_steps`` steps of a ``train_step(state, batch, key)``. The loop keeps its own
progress counter ``i`` (0..num_steps), separate from ``state.step`` (which the learning-rate
schedule reads and rewinding moves). Batch ``i`` and the step key ``fold_in(key, i)`` are pure
functions of ``(key, i)``, so a run resumed from a checkpoint at ``i`` ends with bit-identical
parameters to an uninterrupted one on the same backend.

Speed without changing a bit. In-memory training arrays that fit are placed on the device(s) once
(replicated over the mesh); for each step the host computes only the sampler's row indices and the
device gathers the batch, runs the step, folds the step key and adds the metrics, several steps per
dispatch where that pays (`lipprune.train.chunks`: a rolled loop for dense programs, one step per
dispatch or an unrolled chunk for convolutional ones, chosen per backend from a measured table).
A chunk never crosses a log, evaluation or checkpoint step, so every record, checkpoint and resume
point is the one of a step-by-step loop; with the measured choices the parameters are bit-identical
to it (`lipprune.train.chunks` says where a mode requested explicitly may differ in the last bits).
`train_seeds` runs several seeds of one step as one vmapped program where that pays.
"""
from __future__ import annotations

import collections
import functools
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from lipprune.data.iterators import BatchSampler, eval_batches
from lipprune.train import chunks, io, loop_modes, summary
from lipprune.train.checkpoint import Checkpointer
from lipprune.train.compilation import compile_clock
from lipprune.train.parallel import check_batch_size, make_mesh, replicate, shard_batch
from lipprune.train.step import make_eval_step


class NonFiniteLossError(FloatingPointError):
  """Raised when the loss, the parameters or the optimizer state become NaN or inf; no checkpoint
  of a non-finite state is ever written, so the last checkpoint is a good one."""


def _is_main_process() -> bool:
  return jax.process_index() == 0


class _Batches:
  """Where the batches of a group of runs come from, and how their steps are dispatched.

  A group is one run, or several runs (seeds) of the same step on the same data that advance in
  lockstep as one vmapped program (their states stacked on a leading axis). In-memory ``data``
  that fits (or ``device_data=True``) lives on the mesh and the chunk programs of
  `lipprune.train.chunks` gather each batch there from the samplers' indices; batch sources and
  data that do not fit are batched on the host and run one step per dispatch (never vmapped).
  """

  def __init__(self, train_step, data, *, keys, batch_size, mesh, first_step, device_data,
               vmapped):
    self.train_step, self.data, self.mesh, self.first_step = train_step, data, mesh, first_step
    self.vmapped = vmapped
    step_keys = [jax.random.fold_in(k, 1) for k in keys]
    self.step_keys = jnp.stack(step_keys) if vmapped else step_keys[0]
    self.samplers, self.process_local = None, getattr(data, "process_local", False)
    if isinstance(data, dict):
      n = len(next(iter(data.values())))
      self.samplers = [BatchSampler(jax.random.fold_in(k, 0), n, batch_size) for k in keys]
      if device_data is None:
        device_data = chunks.fits_on_device(data, mesh)
    self.on_device = isinstance(data, dict) and bool(device_data)
    if vmapped and not self.on_device:
      raise ValueError("vmapped runs need in-memory data on the device (device_data)")
    if self.on_device:
      self.device_arrays = replicate(dict(data), mesh)
      rows = {k: (v.shape[1:], v.dtype) for k, v in self.device_arrays.items()}
    else:
      rows = {k: (np.shape(v)[1:], jax.dtypes.canonicalize_dtype(np.asarray(v).dtype))
              for k, v in self._host_batch(0).items()}
    self.example = {k: jax.ShapeDtypeStruct((batch_size,) + shape, dtype)
                    for k, (shape, dtype) in rows.items()}
    self.plan = None

  def _host_batch(self, i):
    if self.samplers is not None:
      return self.samplers[0].batch(self.data, self.first_step + i)
    return self.data.batch(self.first_step + i)

  def prepare(self, state, mode, k):
    """Chooses the dispatch plan; returns the zero metric sums (per run) and the finite flag."""
    one_state = jax.tree.map(lambda x: x[0], state) if self.vmapped else state
    one_key = self.step_keys[0] if self.vmapped else self.step_keys
    program, shapes = chunks.step_info(self.train_step, one_state, self.example, one_key)
    if self.on_device:
      self.plan = chunks.choose_plan(jax.default_backend(), program, mode, k)
    else:
      self.plan = chunks.Plan("step", 1, "host batches")
    if self.vmapped:
      runs = len(self.samplers)
      shapes = jax.tree.map(lambda s: jax.ShapeDtypeStruct((runs,) + s.shape, s.dtype),
                            (shapes, jax.ShapeDtypeStruct((), jnp.bool_)))
      return chunks.zero_carry(*shapes, self.mesh)
    return chunks.zero_carry(shapes, jax.ShapeDtypeStruct((), jnp.bool_), self.mesh)

  def dispatch_sizes(self, n: int) -> list[int]:
    """Steps per dispatch for ``n`` consecutive steps that cross no log/eval/checkpoint step."""
    k = self.plan.k
    if self.plan.mode == "scan":
      return [k] * (n // k) + ([n % k] if n % k else [])
    if self.plan.mode == "unroll":
      return [k] * (n // k) + [1] * (n % k)
    return [1] * n

  def run(self, state, carry, i: int, n: int):
    """Runs steps ``i .. i + n - 1`` of this call (run steps ``first_step + i ..``) in one
    dispatch; returns ``(state, carry, state_finite)``."""
    step0 = np.int32(self.first_step + i)
    if not self.on_device:
      batch = shard_batch(self._host_batch(i), self.mesh, self.process_local)
      return chunks.host_chunk(self.train_step, self.mesh)(state, carry, batch, self.step_keys,
                                                           step0)
    if self.plan.mode == "scan":
      mode, k = "scan", self.plan.k
    else:
      mode, k = ("unroll", n) if n > 1 else ("step", 1)
    rows = np.zeros((k, len(self.samplers), self.samplers[0].batch_size), np.int32)
    for j in range(n):
      for r, sampler in enumerate(self.samplers):
        rows[j, r] = sampler.indices(self.first_step + i + j)
    program = chunks.device_chunk(self.train_step, mode, k, self.mesh, self.vmapped)
    return program(state, carry, self.device_arrays,
                   replicate(rows if self.vmapped else rows[:, 0], self.mesh), self.step_keys,
                   step0, np.int32(n))


def _next_boundary(done: int, end: int, *everies: int) -> int:
  """The first step after ``done`` that is a multiple of a positive ``every``, or ``end``."""
  nxt = end
  for every in everies:
    if every:
      nxt = min(nxt, (done // every + 1) * every)
  return nxt


class _Run:
  """One run's bookkeeping: name, checkpoints, metric records and their TensorBoard view."""

  def __init__(self, name, ckpt_dir, metrics_path, summary_dir=None, first_step=0,
               async_checkpoints=True):
    if summary_dir is not None and not metrics_path:
      raise ValueError(f"{name}: summary_dir needs a metrics_path (its event file is rebuilt from "
                       "the metric records on resume)")
    self.name, self.metrics_path = name, metrics_path
    self.ckpt = Checkpointer(ckpt_dir, async_save=async_checkpoints) if ckpt_dir else None
    self.events = (summary.RunEvents(summary_dir, first_step)
                   if summary_dir is not None and _is_main_process() else None)

  def restore(self, state, num_steps):
    """``(start, state)``: the latest checkpoint's, else ``(0, state)``; trims the metric records
    to the steps before ``start`` so that they describe the state the run continues."""
    start = 0
    if self.ckpt is not None:
      restored = self.ckpt.restore(state)
      if restored is not None:
        start, state = restored
        logging.info("%s: resumed from checkpoint at step %d/%d", self.name, start, num_steps)
    if self.metrics_path and _is_main_process():
      io.truncate_jsonl(self.metrics_path, start)
    if self.events is not None:
      self.events.reset(io.read_jsonl(self.metrics_path))
    return start, state

  def record(self, i, values):
    if self.metrics_path and _is_main_process():
      io.append_jsonl(self.metrics_path, {"step": i, "phase": self.name, **values})
    if self.events is not None:
      self.events.add(i, values)

  def last_good(self) -> str:
    last = self.ckpt.latest_progress() if self.ckpt else None
    return (f"Last good checkpoint: step {last} in {self.ckpt.directory}." if last is not None
            else "No checkpoint was written.")

  def close(self):
    if self.ckpt is not None:
      self.ckpt.close()


class _StepRate:
  """Training steps per second for the log, its ETA and the records, compilation excluded.

  The clock of a call starts when its first dispatch has finished: that dispatch compiles (or loads
  from the cache) and runs each program for the first time, which costs seconds that later steps
  do not (the compile clock sees only part of it). Compilation inside later intervals (an
  evaluation program's, a chunk of another length) is subtracted. The ETA uses the steps and
  seconds of the last ``window`` log intervals; a record's ``steps_per_sec`` is its own interval's.
  """

  def __init__(self, clock, window: int = 4):
    self.clock, self.laps = clock, collections.deque(maxlen=window)
    self.first_compile = None
    self.restart()

  def restart(self):
    self.t0, self.c0, self.steps = time.perf_counter(), self.clock.seconds(), 0

  def add(self, outputs, steps: int) -> None:
    """Counts a dispatch of ``steps`` steps; the first one is waited for and starts the clock."""
    if self.first_compile is None:
      jax.block_until_ready(outputs)
      self.first_compile = self.clock.seconds()
      self.restart()
    else:
      self.steps += steps

  def lap(self) -> tuple[float, float]:
    """``(rate of this interval, rate of the recent intervals)``; both NaN while no step after the
    first dispatch has been timed."""
    seconds = time.perf_counter() - self.t0 - (self.clock.seconds() - self.c0)
    if self.steps:
      self.laps.append((self.steps, max(seconds, 1e-9)))
    rate = self.steps / max(seconds, 1e-9) if self.steps else float("nan")
    self.restart()
    total = sum(t for _, t in self.laps)
    return rate, (sum(n for n, _ in self.laps) / total if self.laps else float("nan"))


def _eta(steps_left: int, rate: float) -> str:
  if not rate > 0:
    return "?"
  seconds = round(steps_left / rate)
  return f"{seconds}s" if seconds < 60 else f"{seconds // 60}m{seconds % 60:02d}s"


def _stack(trees):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _check_args(batch_size, mesh, loop_mode, steps_per_dispatch):
  check_batch_size(batch_size, mesh)
  chunks.check_plan_args(loop_mode, steps_per_dispatch)


def train(state, train_step: Callable, data, *, batch_size: int,
          num_steps: int, key: jax.Array, mesh=None, ckpt_dir: str | None = None,
          checkpoint_every: int = 0, log_every: int = 100, metrics_path: str | None = None,
          eval_fn: Callable | None = None, eval_every: int = 0, name: str = "train",
          stop_after: int | None = None, first_step: int = 0, loop_mode: str | None = None,
          steps_per_dispatch: int | None = None, device_data: bool | None = None,
          summary_dir=None, async_checkpoints: bool = True):
  """Runs (or resumes) ``num_steps`` training steps and returns the final state.

  Args:
    state: the state to start from when ``ckpt_dir`` holds no checkpoint; also the template
      (structure, shapes) for restoring one. It is not modified (the loop works on a copy).
    train_step: ``(state, batch, key) -> (state, metrics)``, usually jitted; ``metrics['loss']``
      is checked for NaN/inf.
    data: host arrays with a common leading dimension (``Dataset.arrays()``), batched here with a
      `BatchSampler`; or a batch source with ``batch(i) -> dict`` giving the batch of step ``i``
      as a pure function of ``i`` (and ``process_local = True`` if it returns only this process's
      rows, as the streaming sources of lipprune.data.streaming do).
    batch_size: global batch size, divisible by the number of devices.
    num_steps: steps this run takes in total (resumed runs count steps already taken).
    key: the run's key: batch order and per-step keys derive from it.
    mesh: device mesh (default: all devices); the state is replicated, batches sharded.
    ckpt_dir: orbax checkpoint directory; ``None`` disables checkpointing and resuming.
    checkpoint_every: steps between checkpoints (0: only at the end).
    log_every: steps between metric records and progress lines.
    metrics_path: JSON-lines file for metric records (process 0 only). On start it is trimmed to
      the records of the steps the run resumes from (all of them are dropped when no checkpoint
      is restored), so it always describes the state the run continues.
    eval_fn: ``state -> dict`` of evaluation metrics, run every ``eval_every`` steps and at the end
      (the final record is written before the final checkpoint, so it cannot be lost).
    name: a prefix for log lines and metric records.
    stop_after: stop (after checkpointing) once progress reaches this many steps; for tests and
      for preemptible schedules that run a job in slices. The returned state is then unfinished.
    first_step: where this call's steps sit in a longer run with the same ``key``: step ``i`` of
      this call uses batch and step key ``first_step + i``. A run split into consecutive segments
      (``first_step = 0, n1, n1 + n2, ...``) thus sees exactly the batches and keys of one
      uninterrupted run.
    loop_mode, steps_per_dispatch: override the measured dispatch plan (``'step'``, ``'scan'``
      or ``'unroll'`` with at most ``steps_per_dispatch`` steps per dispatch; see
      `lipprune.train.chunks`, which says where the floats may then change).
    device_data: keep in-memory ``data`` on the device(s) and gather batches there (default: when
      a replicated copy fits in a quarter of a device's memory). Batch sources always stream.
    summary_dir: a directory (local or any `etils.epath` path) for a TensorBoard event file of the
      metric records (`lipprune.train.summary`), at run steps ``first_step + i``; needs
      ``metrics_path``, from which the file is rebuilt on resume.
    async_checkpoints: write checkpoints on a background thread while the next steps run
      (`lipprune.train.checkpoint`); every one is finalized before this call returns, and a kill
      during a write resumes from the previous checkpoint as after a kill during a synchronous
      save. ``False`` waits for each save (bench/bench_checkpoint.py measures both; the states and
      checkpoints are the same bits).

  Raises:
    NonFiniteLossError: when a loss is NaN/inf, or the state to be checkpointed holds a NaN/inf.
      No checkpoint of a non-finite state is written.
  """
  mesh = make_mesh() if mesh is None else mesh
  _check_args(batch_size, mesh, loop_mode, steps_per_dispatch)
  run = _Run(name, ckpt_dir, metrics_path, summary_dir, first_step, async_checkpoints)
  try:
    start, state = run.restore(state, num_steps)
    return _drive([run], state, start, train_step, data, keys=[key], vmapped=False,
                  batch_size=batch_size, num_steps=num_steps, mesh=mesh,
                  checkpoint_every=checkpoint_every, log_every=log_every, eval_fn=eval_fn,
                  eval_every=eval_every, stop_after=stop_after, first_step=first_step,
                  loop_mode=loop_mode, steps_per_dispatch=steps_per_dispatch,
                  device_data=device_data)
  finally:
    run.close()


def train_seeds(states, train_step: Callable, data, *, keys, batch_size: int, num_steps: int,
                vmapped: bool | None = None, mesh=None, ckpt_dirs=None, checkpoint_every: int = 0,
                log_every: int = 100, metrics_paths=None, eval_fn: Callable | None = None,
                eval_every: int = 0, names=None, stop_after: int | None = None,
                first_step: int = 0, loop_mode: str | None = None,
                steps_per_dispatch: int | None = None, device_data: bool | None = None,
                summary_dirs=None, async_checkpoints: bool = True) -> list:
  """`train` for several runs that share a step function and data but not their state and key
  (the seeds of a study): returns their final states, in order.

  Run ``r`` is ``train(states[r], train_step, data, key=keys[r], ckpt_dir=ckpt_dirs[r],
  metrics_path=metrics_paths[r], name=names[r], summary_dir=summary_dirs[r], **the rest)``: the
  same batches, keys, checkpoints (one directory per run, in `train`'s format, so a job may switch
  between the two freely), records, event files and errors. With ``vmapped=True`` the runs advance
  in lockstep as one ``jax.vmap``-ed program, which on some backends and models is faster than
  running them one after the other; the parameters then equal the sequential ones within float
  rounding (batched matrix products may sum in another order), not bit for bit. ``vmapped=None``
  chooses from the measured table ``lipprune.train.loop_modes.SEEDS_VMAP`` (off where it is not
  measured to pay). Runs resumed at different steps first catch up one by one. ``eval_fn`` is
  called per run.
  """
  runs = len(states)
  if len(keys) != runs:
    raise ValueError(f"train_seeds: {runs} states but {len(keys)} keys")
  ckpt_dirs = list(ckpt_dirs) if ckpt_dirs is not None else [None] * runs
  metrics_paths = list(metrics_paths) if metrics_paths is not None else [None] * runs
  names = list(names) if names is not None else [f"seed{r}" for r in range(runs)]
  summary_dirs = list(summary_dirs) if summary_dirs is not None else [None] * runs
  for field, values in (("ckpt_dirs", ckpt_dirs), ("metrics_paths", metrics_paths),
                        ("names", names), ("summary_dirs", summary_dirs)):
    if len(values) != runs:
      raise ValueError(f"train_seeds: {field} has {len(values)} entries for {runs} runs")
  mesh = make_mesh() if mesh is None else mesh
  _check_args(batch_size, mesh, loop_mode, steps_per_dispatch)
  common = dict(batch_size=batch_size, num_steps=num_steps, mesh=mesh,
                checkpoint_every=checkpoint_every, log_every=log_every, eval_fn=eval_fn,
                eval_every=eval_every, first_step=first_step, loop_mode=loop_mode,
                steps_per_dispatch=steps_per_dispatch, device_data=device_data)
  if vmapped is None:
    vmapped = runs > 1 and isinstance(data, dict) and _vmap_pays(train_step, states[0], data,
                                                                  batch_size, keys[0])
  if not vmapped or runs == 1:
    return [train(s, train_step, data, key=k, ckpt_dir=c, metrics_path=m, name=n,
                  stop_after=stop_after, summary_dir=d, async_checkpoints=async_checkpoints,
                  **common)
            for s, k, c, m, n, d in zip(states, keys, ckpt_dirs, metrics_paths, names,
                                        summary_dirs)]
  group = [_Run(n, c, m, d, first_step, async_checkpoints)
           for n, c, m, d in zip(names, ckpt_dirs, metrics_paths, summary_dirs)]
  try:
    restored = [run.restore(s, num_steps) for run, s in zip(group, states)]
    start = max(p for p, _ in restored)
    if stop_after is not None:
      start = min(start, stop_after)
    members = []
    for run, (progress, state), key in zip(group, restored, keys):
      if progress < start:  # catch up alone to where the others are
        state = _drive([run], state, progress, train_step, data, keys=[key], vmapped=False,
                       stop_after=start, **common)
      members.append(state)
    state = replicate(_stack(members), mesh)
    final = _drive(group, state, start, train_step, data, keys=list(keys), vmapped=True,
                   stop_after=stop_after, **common)
    return [jax.tree.map(lambda x, r=r: x[r], final) for r in range(runs)]
  finally:
    for run in group:
      run.close()


def _vmap_pays(train_step, state, data, batch_size, key) -> bool:
  example = {k: jax.ShapeDtypeStruct((batch_size,) + np.shape(v)[1:],
                                     jax.dtypes.canonicalize_dtype(np.asarray(v).dtype))
             for k, v in data.items()}
  program, _ = chunks.step_info(train_step, state, example, key)
  return bool(loop_modes.SEEDS_VMAP.get((jax.default_backend(), program), False))


def _drive(runs: list[_Run], state, start: int, train_step, data, *, keys, vmapped, batch_size,
           num_steps, mesh, checkpoint_every, log_every, eval_fn, eval_every, stop_after,
           first_step, loop_mode, steps_per_dispatch, device_data):
  """The loop proper, for one run or a vmapped group resumed at ``start``."""
  end = num_steps if stop_after is None else min(num_steps, stop_after)
  state = replicate(state, mesh)
  if end <= start:
    return state
  name = runs[0].name if len(runs) == 1 else f"{runs[0].name}..{runs[-1].name}"
  checkpointing = runs[0].ckpt is not None

  def member(tree, r):
    return jax.tree.map(lambda x: x[r], tree) if vmapped else tree

  clock = compile_clock()
  compile_before = clock.seconds()
  batches = _Batches(train_step, data, keys=keys, batch_size=batch_size, mesh=mesh,
                     first_step=first_step, device_data=device_data, vmapped=vmapped)
  zeros = batches.prepare(state, loop_mode, steps_per_dispatch)
  plan = batches.plan
  logging.info("%s: steps %d..%d, %s, <= %d step(s) per dispatch (%s), data %s%s", name, start,
               end, plan.mode, plan.k, plan.source,
               "on device" if batches.on_device else "from host",
               f", {len(runs)} runs vmapped" if vmapped else "")
  state = chunks.copy_tree(state)  # chunks donate their input; the caller's state survives
  carry, count, state_finite = zeros, 0, None
  rate = _StepRate(clock)
  done = start
  while done < end:
    boundary = _next_boundary(done, end, log_every, checkpoint_every if checkpointing else 0,
                              eval_every if eval_fn is not None else 0)
    for n in batches.dispatch_sizes(boundary - done):
      state, carry, state_finite = batches.run(state, carry, done, n)
      done += n
      count += n
      first = rate.first_compile is None
      rate.add(state_finite, n)
      if first:
        logging.info("%s: %.1fs compiling before the first steps ran (not counted in steps/s or "
                     "the ETA)", name, rate.first_compile - compile_before)
    is_log = bool(log_every) and done % log_every == 0
    is_ckpt = checkpointing and bool(checkpoint_every) and done % checkpoint_every == 0
    is_eval = eval_fn is not None and bool(eval_every) and done % eval_every == 0
    # One transfer per boundary: the flags, and the metric sums when a record is due.
    acc, finite = carry
    is_record = is_log or done == end
    finite, state_ok, sums = jax.device_get((finite, state_finite, acc if is_record else None))
    finite, state_ok = np.atleast_1d(finite), np.atleast_1d(state_ok)
    for r, run in enumerate(runs):
      if not finite[r]:
        raise NonFiniteLossError(f"{run.name}: non-finite loss between steps {done - count} and "
                                 f"{done}; stopping. {run.last_good()}")
    if is_record:
      interval_rate, recent_rate = rate.lap()
      for r, run in enumerate(runs):
        means = {f"train/{k}": float(member(v, r)) / count for k, v in sums.items()}
        logging.info("%s step %d/%d  loss %.4f  %.1f steps/s  ETA %s", run.name, done, num_steps,
                     means.get("train/loss", float("nan")), recent_rate,
                     _eta(num_steps - done, recent_rate))
        run.record(done, {**means, **({"steps_per_sec": interval_rate}
                                      if interval_rate == interval_rate else {})})  # NaN: untimed
      carry, count = zeros, 0
    if is_eval and done != num_steps:
      for r, run in enumerate(runs):
        run.record(done, {f"eval/{k}": v for k, v in eval_fn(member(state, r)).items()})
    if checkpointing and (is_ckpt or done == end):
      for r, run in enumerate(runs):
        if not state_ok[r]:
          raise NonFiniteLossError(
              f"{run.name}: the state after step {done} holds NaN or inf (parameters, optimizer "
              f"or model state); not saved. {run.last_good()}")
    if done == end and eval_fn is not None and end == num_steps:
      for r, run in enumerate(runs):
        run.record(end, {f"eval/{k}": v for k, v in eval_fn(member(state, r)).items()})
    if checkpointing and (is_ckpt or done == end):
      for r, run in enumerate(runs):
        run.ckpt.save(done, member(state, r))
  later = clock.seconds() - (compile_before if rate.first_compile is None else rate.first_compile)
  if later > 0.05:  # e.g. the evaluation program; the first dispatch's was reported
    logging.info("%s: %.1fs more compiling after the first steps (not counted in steps/s)", name,
                 later)
  return state


@functools.lru_cache(maxsize=64)
def _jitted_eval_step(model):
  return jax.jit(make_eval_step(model))


def evaluate(model, params, model_state, arrays: dict[str, np.ndarray], *, batch_size: int = 1000,
             mesh=None) -> dict[str, float]:
  """Accuracy and mean cross-entropy of ``model`` on every example of ``arrays``."""
  mesh = make_mesh() if mesh is None else mesh
  n_dev = mesh.devices.size
  batch_size = max(n_dev, (min(batch_size, len(arrays["y"])) // n_dev) * n_dev)
  step = _jitted_eval_step(model)
  totals = {"loss": 0.0, "correct": 0, "count": 0}
  for batch, valid in eval_batches({"x": arrays["x"], "y": arrays["y"]}, batch_size):
    out = jax.device_get(step(params, model_state, shard_batch(batch, mesh), valid))
    for k in totals:
      totals[k] += out[k]
  count = max(int(totals["count"]), 1)
  return {"accuracy": float(totals["correct"]) / count, "loss": float(totals["loss"]) / count}


def evaluate_source(model, params, model_state, source, *, batch_size: int = 1000, mesh=None,
                    indices=None, prefetch: bool = True) -> dict[str, float]:
  """`evaluate` for a streamed split: the same numbers, without holding the split in memory.

  ``source`` is anything with ``len(source)`` and ``source.read(indices) -> {'x', 'y'}`` (a
  `lipprune.data.streaming.StreamingSource`, e.g. opened read-only with ``batch_size=None``). The
  examples evaluated are ``indices`` (default ``range(len(source))``), each exactly once, in order,
  in global batches of the size `evaluate` picks, the last one zero-padded; so for the same examples
  held in memory ``evaluate_source == evaluate`` (same batches, same sums, same floats)::

    accuracy = #{argmax f(x_i) = y_i} / n,    loss = sum_i CE(f(x_i), y_i) / n.

  Multi-process (``jax.process_count() = P > 1``): every process calls this with the same
  arguments; process ``p`` reads only rows ``[p B/P, (p+1) B/P)`` of each padded global batch of
  ``B`` rows and the global batch is assembled with ``shard_batch(..., process_local=True)``, so
  each example is read by exactly one process and the sums (computed under jit over the global
  batch) are the same on every process. ``B`` must then be divisible by ``P`` (it is a multiple of
  the device count, which is). ``prefetch`` reads the next batch on a background thread while the
  device evaluates the current one; it never changes the numbers.
  """
  import concurrent.futures  # pylint: disable=g-import-not-at-top
  mesh = make_mesh() if mesh is None else mesh
  indices = np.arange(len(source)) if indices is None else np.asarray(indices, np.int64)
  n = len(indices)
  if n == 0:
    raise ValueError("evaluate_source: no examples to evaluate")
  n_dev = mesh.devices.size
  batch_size = max(n_dev, (min(batch_size, n) // n_dev) * n_dev)
  procs, proc = jax.process_count(), jax.process_index()
  if batch_size % procs:
    raise ValueError(f"eval batch size {batch_size} must be divisible by the {procs} processes")
  local = batch_size // procs
  template = source.read(indices[:1])

  def read(start):
    """This process's rows of the padded global batch starting at example ``start``."""
    lo = start + proc * local
    rows = indices[lo:min(lo + local, n)]
    out = source.read(rows) if len(rows) else {k: v[:0] for k, v in template.items()}
    if len(rows) < local:  # zero padding, masked out by num_valid like eval_batches' padding
      out = {k: np.concatenate([v, np.zeros((local - len(rows),) + v.shape[1:], v.dtype)])
             for k, v in out.items()}
    return {"x": out["x"], "y": out["y"]}

  step = _jitted_eval_step(model)
  totals = {"loss": 0.0, "correct": 0, "count": 0}
  starts = list(range(0, n, batch_size))
  pool = concurrent.futures.ThreadPoolExecutor(1, "lipprune-eval") if prefetch else None
  try:
    pending = pool.submit(read, starts[0]) if pool else None
    for k, start in enumerate(starts):
      batch = pending.result() if pool else read(start)
      if pool and k + 1 < len(starts):
        pending = pool.submit(read, starts[k + 1])
      valid = min(batch_size, n - start)
      out = jax.device_get(step(params, model_state, shard_batch(batch, mesh, process_local=True),
                                valid))
      for name in totals:
        totals[name] += out[name]
  finally:
    if pool:
      pool.shutdown(wait=True, cancel_futures=True)
  count = max(int(totals["count"]), 1)
  return {"accuracy": float(totals["correct"]) / count, "loss": float(totals["loss"]) / count}
