r"""What a train step costs: masked against dense, and the MLP step against the machine's matmul
rate.

  python -m bench.bench_step_costs [--models=mlp,resnet20] [--repeats=7] [--clock=wall|cpu]

Masked overhead. The same jitted lipprune step (cross-entropy, SGD momentum 0.9, weight decay 5e-4,
constant learning rate) runs on one fixed batch already on the device, once with ``masks=None``
(dense), once with a 0/1 mask on every prunable leaf (default step), and once more masked with
``make_train_step(fuse_masks=True)``. The masks cover ``lipprune.sparsity.init_masks``'s leaves,
80% of each zero at random (the arithmetic does not depend on which). ``mlp`` is LeNet-300-100 on
MNIST-shaped inputs at batch 128, timed as a ``lax.fori_loop`` of ``--steps`` steps inside one
program (so dispatch is not measured, only the step); ``resnet20`` is ResNet-20 on CIFAR-shaped
inputs at batch 32, one step per call. Overhead = masked / dense time - 1, from the medians and
from the fastest repeats.

Matmul rate. ``jnp.dot`` of two float32 1024 x 1024 matrices (2 * 1024^3 FLOPs) under jit, and the
LeNet-300-100 step's own matrix products counted by hand: forward ``2 B sum_l d_in d_out``, the
weight gradients as much again, and the input gradients of the layers after the first, at batch
``B`` = 128 and 1024. The fraction is step FLOP rate / matmul FLOP rate.

``--clock=cpu`` times with the process CPU time (all threads) instead of the wall clock; on a
machine shared with other jobs it is far less noisy, and the step's work is the same.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Sequence

import numpy as np

from bench import common

MODELS = {"mlp": ((28, 28, 1), 128, 50), "resnet20": ((32, 32, 3), 32, 2)}
LENET = (784, 300, 100, 10)


def step_runs(name: str, *, batch: int | None = None, steps: int | None = None, seed: int = 0,
              density: float = 0.2):
  """``{'dense': run(n), 'masked': run(n)}`` for model ``name``; each run does ``n`` repeats of
  ``steps`` steps (mlp: one program) or of one step (resnet20)."""
  import jax
  import jax.numpy as jnp
  from lipprune import models
  from lipprune import sparsity
  from lipprune import train as train_lib

  shape, default_batch, default_steps = MODELS[name]
  batch = batch or default_batch
  steps = steps or default_steps
  rng = np.random.default_rng(seed)
  data = jax.device_put({"x": rng.random((batch, *shape), dtype=np.float32),
                         "y": rng.integers(0, 10, batch).astype(np.int32)})
  model = models.create(name, 10)
  params, model_state = model.init(jax.random.key(seed), data["x"][:1])
  tx = train_lib.direction("sgd", momentum=0.9, weight_decay=5e-4)
  sched = train_lib.schedule("constant", base_lr=0.01, total_steps=1)
  loss_fn = train_lib.cross_entropy(model)
  masks = jax.tree.map(
      lambda m: None if m is None else jnp.asarray(rng.random(m.shape) < density, jnp.float32),
      sparsity.init_masks(params), is_leaf=lambda x: x is None)
  dense = train_lib.TrainState.create(params, model_state, tx)
  masked = train_lib.TrainState.create(train_lib.apply_masks(params, masks), model_state, tx,
                                       masks=masks)
  contenders = {"dense": (False, dense), "masked": (False, masked), "masked_fused": (True, masked)}
  key = jax.random.key(seed + 1)

  def program(fuse_masks):
    step = train_lib.make_train_step(loss_fn, tx, sched, fuse_masks=fuse_masks)
    if name == "mlp":
      return jax.jit(lambda state: jax.lax.fori_loop(
          0, steps, lambda i, s: step(s, data, jax.random.fold_in(key, i))[0], state))
    return jax.jit(lambda state: step(state, data, key)[0])

  def make(fuse_masks, state):
    fn = program(fuse_masks)

    def run(n: int) -> None:
      for _ in range(n):
        jax.block_until_ready(fn(state))
    return run

  return ({label: make(*args) for label, args in contenders.items()},
          (batch, steps if name == "mlp" else 1))


def bench_masks(name: str, *, repeats: int = 7, clock=time.perf_counter, calls: int = 3) -> dict:
  runs, (batch, steps) = step_runs(name)
  seconds = common.measure_interleaved(runs, steps=calls, warmup=1, repeats=repeats, clock=clock)
  d = seconds["dense"]
  row = {"model": name, "batch": batch, "dense_ms": 1e3 * float(np.median(d)) / (calls * steps),
         "seconds": seconds}
  for label in ("masked", "masked_fused"):
    m = seconds[label]
    row[f"{label}_ms"] = 1e3 * float(np.median(m)) / (calls * steps)
    row[f"{label}_overhead"] = float(np.median(m) / np.median(d) - 1)
    row[f"{label}_best_overhead"] = min(m) / min(d) - 1
  return row


def lenet_step_flops(batch: int) -> float:
  """Matrix-product FLOPs of one LeNet-300-100 train step (forward, weight and input grads)."""
  pairs = list(zip(LENET[:-1], LENET[1:]))
  forward = sum(2 * batch * i * o for i, o in pairs)
  input_grads = sum(2 * batch * i * o for i, o in pairs[1:])
  return 2 * forward + input_grads


def matmul_rate(n: int = 1024, repeats: int = 7, calls: int = 10, clock=time.perf_counter) -> float:
  import jax
  import jax.numpy as jnp
  a = jax.device_put(np.random.default_rng(0).random((n, n), dtype=np.float32))
  dot = jax.jit(jnp.dot)
  seconds = common.measure_interleaved(
      {"dot": lambda k: [jax.block_until_ready(dot(a, a)) for _ in range(k)]}, steps=calls,
      warmup=2, repeats=repeats, clock=clock)["dot"]
  return 2 * n ** 3 * calls / min(seconds)


def bench_roofline(repeats: int = 7, clock=time.perf_counter) -> list[dict]:
  import jax
  from lipprune import models
  from lipprune import train as train_lib
  rate = matmul_rate(repeats=repeats, clock=clock)
  rows = []
  for batch in (128, 1024):
    rng = np.random.default_rng(0)
    data = jax.device_put({"x": rng.random((batch, 28, 28, 1), dtype=np.float32),
                           "y": rng.integers(0, 10, batch).astype(np.int32)})
    model = models.create("mlp", 10)
    params, model_state = model.init(jax.random.key(0), data["x"][:1])
    tx = train_lib.direction("sgd", momentum=0.9, weight_decay=5e-4)
    step = train_lib.make_train_step(train_lib.cross_entropy(model), tx,
                                     train_lib.schedule("constant", base_lr=0.01, total_steps=1))
    steps = max(5, 6400 // batch)
    program = jax.jit(lambda s: jax.lax.fori_loop(
        0, steps, lambda i, s: step(s, data, jax.random.key(0))[0], s))
    state = train_lib.TrainState.create(params, model_state, tx)
    seconds = common.measure_interleaved(
        {"step": lambda k: [jax.block_until_ready(program(state)) for _ in range(k)]}, steps=1,
        warmup=1, repeats=repeats, clock=clock)["step"]
    step_rate = lenet_step_flops(batch) * steps / min(seconds)
    rows.append({"batch": batch, "step_gflops": step_rate / 1e9, "matmul_gflops": rate / 1e9,
                 "fraction": step_rate / rate})
  return rows


MASK_COLUMNS = (("model", "model", ""), ("batch", "batch", "d"),
                ("dense_ms", "dense ms/step", ".3f"), ("masked_ms", "masked ms/step", ".3f"),
                ("masked_overhead", "masked overhead (median)", "+.1%"),
                ("masked_best_overhead", "(best)", "+.1%"),
                ("masked_fused_ms", "fuse_masks ms/step", ".3f"),
                ("masked_fused_overhead", "fuse_masks overhead (median)", "+.1%"),
                ("masked_fused_best_overhead", "(best)", "+.1%"))
ROOF_COLUMNS = (("batch", "batch", "d"), ("step_gflops", "LeNet step GFLOP/s", ".1f"),
                ("matmul_gflops", "1024^2 matmul GFLOP/s", ".1f"),
                ("fraction", "fraction of matmul rate", ".0%"))


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="python -m bench.bench_step_costs",
                                   description=__doc__.split("\n\n")[0])
  parser.add_argument("--models", default="mlp,resnet20")
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
  parser.add_argument("--skip_roofline", action="store_true")
  args = parser.parse_args(argv)
  args.models = common.parse_subset(parser, "models", args.models, MODELS)
  if args.repeats < 1:
    parser.error("--repeats must be positive")
  return args


def main(argv: Sequence[str] | None = None) -> int:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  import jax
  clock = time.perf_counter if args.clock == "wall" else time.process_time
  common.print_machine_info({"jax": f"{jax.__version__} devices={jax.devices()}",
                             "clock": args.clock})
  rows = []
  for name in args.models:
    row = bench_masks(name, repeats=args.repeats, clock=clock)
    print(f"{name}: " + "; ".join(f"{k} {[round(x, 3) for x in v]}"
                                  for k, v in row["seconds"].items()), flush=True)
    rows.append(row)
  print()
  print(common.format_table(rows, MASK_COLUMNS))
  if not args.skip_roofline:
    print()
    print(common.format_table(bench_roofline(args.repeats, clock), ROOF_COLUMNS))
  print(f"\nload average at the end: {common.machine_info()['loadavg_1_5_15']}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
