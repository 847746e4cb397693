"""The training loop: batches in, checkpoints, metrics and progress out.

One call runs ``num_steps`` steps of a jitted ``train_step(state, batch, key)``. The loop keeps its
own progress counter ``i`` (0..num_steps), separate from ``state.step`` (which the learning-rate
schedule reads and rewinding moves). Batch ``i`` and the step key ``fold_in(key, i)`` are pure
functions of ``(key, i)``, so a run resumed from a checkpoint at ``i`` ends with bit-identical
parameters to an uninterrupted one on the same backend.
"""
from __future__ import annotations

import functools
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from lipprune.data.iterators import BatchSampler, eval_batches
from lipprune.train import io
from lipprune.train.checkpoint import Checkpointer
from lipprune.train.parallel import check_batch_size, make_mesh, replicate, shard_batch
from lipprune.train.step import make_eval_step


class NonFiniteLossError(FloatingPointError):
  """Raised when the loss becomes NaN or inf; the last good checkpoint is kept."""


def _is_main_process() -> bool:
  return jax.process_index() == 0


def _add(acc, metrics):
  return metrics if acc is None else jax.tree.map(jnp.add, acc, metrics)


def train(state, train_step: Callable, data, *, batch_size: int,
          num_steps: int, key: jax.Array, mesh=None, ckpt_dir: str | None = None,
          checkpoint_every: int = 0, log_every: int = 100, metrics_path: str | None = None,
          eval_fn: Callable | None = None, eval_every: int = 0, name: str = "train",
          stop_after: int | None = None, first_step: int = 0):
  """Runs (or resumes) ``num_steps`` training steps and returns the final state.

  Args:
    state: the state to start from when ``ckpt_dir`` holds no checkpoint; also the template
      (structure, shapes) for restoring one.
    train_step: jitted ``(state, batch, key) -> (state, metrics)``.
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
    metrics_path: JSON-lines file for metric records (process 0 only).
    eval_fn: ``state -> dict`` of evaluation metrics, run every ``eval_every`` steps and at the end.
    name: a prefix for log lines and metric records.
    stop_after: stop (after checkpointing) once progress reaches this many steps; for tests and
      for preemptible schedules that run a job in slices. The returned state is then unfinished.
    first_step: where this call's steps sit in a longer run with the same ``key``: step ``i`` of
      this call uses batch and step key ``first_step + i``. A run split into consecutive segments
      (``first_step = 0, n1, n1 + n2, ...``) thus sees exactly the batches and keys of one
      uninterrupted run.

  Raises:
    NonFiniteLossError: when a loss is NaN/inf. No checkpoint of a non-finite state is written.
  """
  mesh = make_mesh() if mesh is None else mesh
  check_batch_size(batch_size, mesh)
  if isinstance(data, dict):
    sampler = BatchSampler(jax.random.fold_in(key, 0), len(next(iter(data.values()))), batch_size)
    get_batch, process_local = (lambda i: sampler.batch(data, first_step + i)), False
  else:
    get_batch = lambda i: data.batch(first_step + i)  # noqa: E731
    process_local = getattr(data, "process_local", False)
  step_keys = jax.random.fold_in(key, 1)

  ckpt = Checkpointer(ckpt_dir) if ckpt_dir else None
  start = 0
  if ckpt is not None:
    restored = ckpt.restore(state)
    if restored is not None:
      start, state = restored
      logging.info("%s: resumed from checkpoint at step %d/%d", name, start, num_steps)
      if metrics_path and _is_main_process():
        io.truncate_jsonl(metrics_path, start)
  state = replicate(state, mesh)
  end = num_steps if stop_after is None else min(num_steps, stop_after)

  def record(i, values):
    if metrics_path and _is_main_process():
      io.append_jsonl(metrics_path, {"step": i, "phase": name, **values})

  acc, count, finite = None, 0, jnp.asarray(True)
  t0, i0 = time.time(), start
  i = start
  for i in range(start, end):
    batch = shard_batch(get_batch(i), mesh, process_local)
    state, metrics = train_step(state, batch, jax.random.fold_in(step_keys, first_step + i))
    finite = finite & jnp.isfinite(metrics["loss"])
    acc, count = _add(acc, metrics), count + 1
    done = i + 1
    is_log = log_every and done % log_every == 0
    is_ckpt = ckpt is not None and checkpoint_every and done % checkpoint_every == 0
    is_eval = eval_fn is not None and eval_every and done % eval_every == 0
    if is_log or is_ckpt or is_eval or done == end:
      if not bool(finite):
        last = ckpt.latest_progress() if ckpt else None
        raise NonFiniteLossError(
            f"{name}: non-finite loss between steps {done - count} and {done}; stopping. "
            + (f"Last good checkpoint: step {last} in {ckpt.directory}." if last is not None
               else "No checkpoint was written."))
    if is_log or done == end:
      means = {f"train/{k}": float(v) / count for k, v in jax.device_get(acc).items()}
      rate = (done - i0) / max(time.time() - t0, 1e-9)
      eta = (num_steps - done) / max(rate, 1e-9)
      logging.info("%s step %d/%d  loss %.4f  %.1f steps/s  ETA %.0fs", name, done, num_steps,
                   means.get("train/loss", float("nan")), rate, eta)
      record(done, {**means, "steps_per_sec": rate})
      acc, count = None, 0
    if is_eval and done != num_steps:
      record(done, {f"eval/{k}": v for k, v in eval_fn(state).items()})
    if is_ckpt and done != end:
      ckpt.save(done, state)
  if ckpt is not None and end > start:
    ckpt.save(end, state)
  if eval_fn is not None and end == num_steps and end > start:
    record(end, {f"eval/{k}": v for k, v in eval_fn(state).items()})
  if ckpt is not None:
    ckpt.close()
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
