"""Training steps in chunks: one compiled program runs several steps of a train step.

The loop of `lipprune.train.loop.train` hands the device a *chunk* of ``n <= k`` consecutive steps
at a time instead of one step plus a host-built batch. For a chunk starting at run step ``s``:

  for j in 0..n-1:
    batch_j = {name: data[name][idx[j]]}                 # gathered on device (device data), or
                                                         # the host batch (batch sources)
    state, m_j = train_step(state, batch_j, fold_in(step_keys, s + j))
    acc += m_j;  finite &= isfinite(m_j['loss'])
  state_finite = every float leaf of state is finite

``idx[j]`` are the rows `BatchSampler` gives step ``s + j`` (computed on the host, unchanged), so
each step sees exactly the batch and key of a one-step-per-dispatch loop, and the metric sums add
up in the same order. Three ways to compile the ``j`` loop (``mode``):

* ``'step'``: one step per dispatch (``k = 1``);
* ``'scan'``: a rolled loop (``lax.fori_loop`` with a dynamic trip count, so one program serves
  every chunk length up to ``k``). For dense programs on XLA:CPU the parameters, the optimizer
  state and the loss records are bit-identical to one step per dispatch; a metric that the step
  only reports (the learning rate of a cosine schedule) may differ in its last bit, since XLA
  recomputes it for the output in a fusion of its own. Convolutions in a rolled loop body compile
  ~18x slower on XLA:CPU and their floats change;
* ``'unroll'``: ``k`` steps unrolled in one program (chunks shorter than ``k`` run one step per
  dispatch). XLA may then fuse across steps (batch-norm reductions do), which changes last bits,
  and where chunks are cut (a resume point) then matters too.

Which mode pays depends on the backend and on the program: `lipprune.train.loop_modes` holds the
table a benchmark measured (``python -m bench.bench_loop --write_table``) and `family` tells dense
programs from convolutional ones by looking for convolutions in the traced step.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from lipprune.train import loop_modes
from lipprune.train.parallel import batch_sharding, replicate

MODES = ("step", "scan", "unroll")
FAMILIES = ("dense", "conv")
_CONV_PRIMITIVES = ("conv_general_dilated",)


def _sub_jaxprs(value):
  if isinstance(value, jax.extend.core.ClosedJaxpr):
    yield value.jaxpr
  elif isinstance(value, jax.extend.core.Jaxpr):
    yield value
  elif isinstance(value, (tuple, list)):
    for v in value:
      yield from _sub_jaxprs(v)


def primitive_names(jaxpr) -> set[str]:
  """Names of every primitive in ``jaxpr`` and in the jaxprs nested in its equations."""
  names, stack = set(), [jaxpr]
  while stack:
    j = stack.pop()
    for eqn in j.eqns:
      names.add(eqn.primitive.name)
      for v in eqn.params.values():
        stack.extend(_sub_jaxprs(v))
  return names


def family(fn: Callable, *args) -> str:
  """``'conv'`` when ``fn(*args)`` computes a convolution, else ``'dense'``.

  Traces ``fn`` abstractly (``args`` may be arrays or `jax.ShapeDtypeStruct`); a jitted ``fn``
  keeps the trace cached, so compiling it afterwards does not trace it again.
  """
  jaxpr = jax.make_jaxpr(fn)(*args).jaxpr
  return "conv" if primitive_names(jaxpr) & set(_CONV_PRIMITIVES) else "dense"


def _spec(tree):
  leaves, treedef = jax.tree.flatten(tree)
  return treedef, tuple(jax.ShapeDtypeStruct(np.shape(x), x.dtype) for x in leaves)


def step_info(train_step: Callable, state, batch, key) -> tuple[str, dict]:
  """``(family, metric shapes)`` of ``train_step(state, batch, key)``, traced abstractly once per
  step function and argument shapes (a study calls the loop many times with one step)."""
  return _step_info(train_step, _spec(state), _spec(batch), _spec(key))


@functools.lru_cache(maxsize=64)
def _step_info(train_step, state_spec, batch_spec, key_spec):
  args = [jax.tree.unflatten(treedef, leaves) for treedef, leaves in (state_spec, batch_spec,
                                                                      key_spec)]
  metrics = jax.eval_shape(train_step, *args)[1]
  return family(train_step, *args), metrics


def zero_carry(metric_shapes, flag_shape, mesh):
  """``(zero metric sums, all-True finite flags)`` replicated on ``mesh``: a chunk's starting
  carry. Never donated, so one copy per (shapes, mesh) serves every run."""
  return _zero_carry(_spec(metric_shapes), _spec(flag_shape), mesh)


@functools.lru_cache(maxsize=64)
def _zero_carry(metric_spec, flag_spec, mesh):
  zeros = [jax.tree.unflatten(treedef, [np.full(s.shape, fill, s.dtype) for s in leaves])
           for (treedef, leaves), fill in ((metric_spec, 0), (flag_spec, True))]
  return replicate(tuple(zeros), mesh)


@jax.jit
def copy_tree(tree):
  """A copy of ``tree`` on the same devices, in one dispatch."""
  return jax.tree.map(jnp.copy, tree)


@dataclasses.dataclass(frozen=True)
class Plan:
  """How the loop dispatches steps: ``mode`` (one of MODES), at most ``k`` steps per dispatch, and
  where that choice came from (``'argument'``, ``'table'`` or ``'default'``)."""
  mode: str
  k: int
  source: str = "argument"

  def __post_init__(self):
    if self.mode not in MODES:
      raise ValueError(f"loop_mode={self.mode!r}; expected one of {list(MODES)}")
    if self.k < 1 or (self.mode == "step" and self.k != 1):
      raise ValueError(f"steps_per_dispatch={self.k} must be >= 1 (and 1 with loop_mode='step')")


def choose_plan(backend: str, program_family: str, mode: str | None = None,
                k: int | None = None) -> Plan:
  """The dispatch plan: the caller's ``mode``/``k`` where given, else the measured table's entry
  for ``(backend, program_family)``, else one step per dispatch (the safe choice on a backend that
  was never measured)."""
  row = loop_modes.TRAIN_LOOP.get((backend, program_family))
  if mode is None:
    if row is None:
      return Plan("step", 1, "default")
    mode, source = row["mode"], "table"
    k = k if k is not None else row["k"]
  else:
    source = "argument"
    if k is None:
      k = 1 if mode == "step" else (row["k"] if row and row["mode"] == mode else 64)
  return Plan(mode, 1 if mode == "step" else int(k), source)


def check_plan_args(mode: str | None, k: int | None) -> None:
  """Raises ValueError naming ``loop_mode``/``steps_per_dispatch`` when they are not valid."""
  if mode is not None and mode not in MODES:
    raise ValueError(f"loop_mode={mode!r}; expected one of {list(MODES)} or None (measured)")
  if k is not None and (not isinstance(k, (int, np.integer)) or k < 1):
    raise ValueError(f"steps_per_dispatch={k!r} must be a positive int or None (measured)")
  if mode == "step" and k not in (None, 1):
    raise ValueError(f"steps_per_dispatch={k} needs loop_mode 'scan' or 'unroll' (not 'step')")


def unroll_attack(objective_fn: Callable, x) -> bool:
  """Whether a fixed-length attack or ascent loop over ``objective_fn(x)`` should be unrolled on
  this backend: the measured ``loop_modes.ATTACK_UNROLL`` entry for its family, else rolled."""
  return bool(loop_modes.ATTACK_UNROLL.get((jax.default_backend(), family(objective_fn, x)), False))


def _all_finite(tree) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def _accumulate(train_step, batch_spec):
  """One step plus the running metric sums and the finite-loss flag."""

  def one(state, acc, finite, batch, step_keys, step):
    batch = jax.lax.with_sharding_constraint(batch, batch_spec)
    state, metrics = train_step(state, batch, jax.random.fold_in(step_keys, step))
    acc = jax.tree.map(jnp.add, acc, metrics)
    return state, acc, finite & jnp.isfinite(metrics["loss"])

  return one


@functools.lru_cache(maxsize=32)
def device_chunk(train_step: Callable, mode: str, k: int, mesh, vmapped: bool = False) -> Callable:
  """Jitted ``(state, (acc, finite), data, idx, step_keys, step0, n) -> (state, (acc, finite),
  state_finite)`` running steps ``step0 .. step0 + n - 1`` on batches ``data[idx[j]]``.

  ``state`` is donated. ``idx`` has ``k`` rows (rows past ``n`` are ignored); ``n`` is dynamic for
  ``'scan'`` and must equal ``k`` for ``'unroll'`` and ``'step'``. ``vmapped``: ``state``, ``acc``,
  ``finite`` and ``step_keys`` carry a leading axis of runs and ``idx`` is ``(k, runs, batch)``;
  every run takes its own step (``jax.vmap``). Cached per train step, so the calls of one study
  reuse the compiled program.
  """
  one = _accumulate(train_step, batch_sharding(mesh))
  if vmapped:
    one = jax.vmap(one, in_axes=(0, 0, 0, 0, 0, None))
  finite_state = jax.vmap(_all_finite) if vmapped else _all_finite

  def chunk(state, carry, data, idx, step_keys, step0, n):
    def body(j, c):
      batch = {name: jnp.take(v, idx[j], axis=0) for name, v in data.items()}
      return one(*c, batch, step_keys, step0 + j)

    c = (state, *carry)
    if mode == "scan":
      c = jax.lax.fori_loop(0, n, body, c)
    elif mode == "unroll":
      for j in range(k):
        c = body(j, c)
    else:
      c = body(0, c)
    state, acc, finite = c
    return state, (acc, finite), finite_state(state)

  return jax.jit(chunk, donate_argnums=0)


@functools.lru_cache(maxsize=32)
def host_chunk(train_step: Callable, mesh) -> Callable:
  """Jitted ``(state, (acc, finite), batch, step_keys, step) -> (state, (acc, finite),
  state_finite)``: one step on a batch already placed on the mesh (batch sources)."""
  one = _accumulate(train_step, batch_sharding(mesh))

  def chunk(state, carry, batch, step_keys, step):
    state, acc, finite = one(state, *carry, batch, step_keys, step)
    return state, (acc, finite), _all_finite(state)

  return jax.jit(chunk, donate_argnums=0)


def fits_on_device(data: dict, mesh, fraction: float = 0.25) -> bool:
  """Whether a replicated copy of ``data`` on every local device of ``mesh`` takes at most
  ``fraction`` of a device's memory (on CPU, where the simulated devices share the host's memory
  and report no limit, of the host memory for all local copies together)."""
  nbytes = sum(v.nbytes if hasattr(v, "nbytes") else np.asarray(v).nbytes for v in data.values())
  local = [d for d in mesh.devices.flat if d.process_index == jax.process_index()]
  stats = local[0].memory_stats() if local else None  # only a local device reports its memory
  if stats and stats.get("bytes_limit"):
    return nbytes <= fraction * stats["bytes_limit"]
  try:
    host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  except (ValueError, OSError, AttributeError):
    return False
  return nbytes * max(len(local), 1) <= fraction * host
