r"""What a train step costs: masked against dense, and the MLP step against the machine's matmul
rate.

  python -m bench.bench_step_costs [--models=mlp,resnet20] [--rounds=100,60] [--clock=wall|cpu]

Masked overhead, as the training loop runs a step. The same lipprune step (cross-entropy, SGD
momentum 0.9, weight decay 5e-4, cosine learning rate) runs as the loop's own compiled chunk
(``lipprune.train.chunks.device_chunk``: batches gathered on device, metric sums and the finite
checks included) with the dispatch plan the loop takes on this backend (on XLA:CPU: 16 steps per
rolled loop for LeNet-300-100, one step per dispatch for ResNet-20). Contenders: ``dense``
(``masks=None``), ``masked`` (a 0/1 mask on every prunable leaf, 80% of each zero at random: the
arithmetic does not depend on which; ``make_train_step``'s default select) and
``masked_product`` (``fuse_masks=False``, lipprune 0.1's product). ``mlp`` is LeNet-300-100 on
MNIST-shaped inputs at batch 128, ``resnet20`` ResNet-20 on CIFAR-shaped inputs at batch 32.

Every round times each contender once, in a new random order; the overhead is the median over
rounds of masked / dense time - 1, with a 95% bootstrap interval (``common.paired_ratio``): pairing
by round cancels the slow load changes of a shared machine, which the ratio of two medians does
not.

Matmul rate. ``jnp.dot`` of two float32 1024 x 1024 matrices (2 * 1024^3 FLOPs) under jit, and the
LeNet-300-100 step's own matrix products counted by hand: forward ``2 B sum_l d_in d_out``, the
weight gradients as much again, and the input gradients of the layers after the first, at batch
``B`` = 128 and 1024. The fraction is step FLOP rate / matmul FLOP rate.

``--clock=cpu`` times with the process CPU time (all threads) instead of the wall clock.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Sequence

import numpy as np

from bench import common

# model: (input shape, batch, calls of the chunk per timed sample, default rounds)
MODELS = {"mlp": ((28, 28, 1), 128, 4, 100), "resnet20": ((32, 32, 3), 32, 1, 60)}
LENET = (784, 300, 100, 10)
CONTENDERS = ("dense", "masked", "masked_product")


def chunk_runs(name: str, *, seed: int = 0, density: float = 0.2):
  """``({contender: run(n)}, plan)`` for model ``name``: ``run(n)`` runs the training loop's
  compiled chunk (``plan.k`` steps, the loop's plan on this backend) ``n`` times, feeding each
  call's (donated) state to the next."""
  import jax
  import jax.numpy as jnp
  from lipprune import models
  from lipprune import sparsity
  from lipprune import train as train_lib
  from lipprune.train import chunks, parallel

  shape, batch, _, _ = MODELS[name]
  rng = np.random.default_rng(seed)
  rows = 16 * batch
  host = {"x": rng.random((rows, *shape), dtype=np.float32),
          "y": rng.integers(0, 10, rows).astype(np.int32)}
  mesh = parallel.make_mesh()
  data = parallel.replicate(host, mesh)
  model = models.create(name, 10)
  params, model_state = model.init(jax.random.key(seed), host["x"][:1])
  tx = train_lib.direction("sgd", momentum=0.9, weight_decay=5e-4)
  sched = train_lib.schedule("cosine", base_lr=0.05, total_steps=100_000)
  loss_fn = train_lib.cross_entropy(model)
  masks = jax.tree.map(
      lambda m: None if m is None else jnp.asarray(rng.random(m.shape) < density, jnp.float32),
      sparsity.init_masks(params), is_leaf=lambda x: x is None)
  example = {k: jax.ShapeDtypeStruct((batch,) + v.shape[1:], v.dtype) for k, v in host.items()}
  key = jax.random.key(seed + 1)
  runs, plan = {}, None
  for label in CONTENDERS:
    masked = label != "dense"
    step = jax.jit(train_lib.make_train_step(loss_fn, tx, sched,
                                             fuse_masks=label != "masked_product"))
    state = train_lib.TrainState.create(train_lib.apply_masks(params, masks) if masked else params,
                                        model_state, tx, masks=masks if masked else None)
    family, shapes = chunks.step_info(step, state, example, key)
    plan = chunks.choose_plan(jax.default_backend(), family)
    program = chunks.device_chunk(step, plan.mode, plan.k, mesh)
    carry = chunks.zero_carry(shapes, jax.ShapeDtypeStruct((), jnp.bool_), mesh)
    idx = parallel.replicate(rng.integers(0, rows, (plan.k, batch)).astype(np.int32), mesh)
    runs[label] = _runner(program, chunks.copy_tree(state), carry, data, idx, key, plan.k)
  return runs, plan


def _runner(program, state, carry, data, idx, key, k):
  import jax
  holder = [state]

  def run(n: int) -> None:
    for _ in range(n):
      holder[0], _, _ = program(holder[0], carry, data, idx, key, np.int32(0), np.int32(k))
    jax.block_until_ready(holder[0])
  return run


def bench_masks(name: str, *, rounds: int | None = None, clock=time.perf_counter) -> dict:
  runs, plan = chunk_runs(name)
  _, batch, calls, default_rounds = MODELS[name]
  seconds = common.measure_interleaved(runs, steps=calls, warmup=2,
                                       repeats=rounds or default_rounds, clock=clock, shuffle_seed=0)
  d = seconds["dense"]
  row = {"model": name, "batch": batch, "plan": f"{plan.mode}-{plan.k}",
         "dense_ms": 1e3 * float(np.median(d)) / (calls * plan.k), "rounds": len(d),
         "seconds": seconds}
  for label in CONTENDERS[1:]:
    median, low, high = common.paired_ratio(seconds[label], d)
    row[f"{label}_ms"] = 1e3 * float(np.median(seconds[label])) / (calls * plan.k)
    row[f"{label}_overhead"] = median - 1
    row[f"{label}_ci"] = f"[{low - 1:+.1%}, {high - 1:+.1%}]"
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


MASK_COLUMNS = (("model", "model", ""), ("batch", "batch", "d"), ("plan", "plan", ""),
                ("rounds", "rounds", "d"), ("dense_ms", "dense ms/step", ".3f"),
                ("masked_ms", "masked ms/step", ".3f"),
                ("masked_overhead", "masked overhead (paired median)", "+.1%"),
                ("masked_ci", "95% CI", ""),
                ("masked_product_ms", "`fuse_masks=False` ms/step", ".3f"),
                ("masked_product_overhead", "`fuse_masks=False` overhead", "+.1%"),
                ("masked_product_ci", "95% CI", ""))
ROOF_COLUMNS = (("batch", "batch", "d"), ("step_gflops", "LeNet step GFLOP/s", ".1f"),
                ("matmul_gflops", "1024^2 matmul GFLOP/s", ".1f"),
                ("fraction", "fraction of matmul rate", ".0%"))


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="python -m bench.bench_step_costs",
                                   description=__doc__.split("\n\n")[0])
  parser.add_argument("--models", default="mlp,resnet20")
  parser.add_argument("--rounds", default="",
                      help="paired rounds per model, one number or one per model (default "
                           + ",".join(f"{m}={v[3]}" for m, v in MODELS.items()) + ")")
  parser.add_argument("--repeats", type=int, default=7, help="repeats of the matmul-rate part")
  parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
  parser.add_argument("--skip_roofline", action="store_true")
  args = parser.parse_args(argv)
  args.models = common.parse_subset(parser, "models", args.models, MODELS)
  if args.repeats < 1:
    parser.error("--repeats must be positive")
  try:
    rounds = [int(r) for r in args.rounds.split(",")] if args.rounds else []
  except ValueError:
    parser.error(f"--rounds={args.rounds!r} must be integers separated by commas")
  if len(rounds) == 1:
    rounds *= len(args.models)
  if rounds and (len(rounds) != len(args.models) or min(rounds) < 2):
    parser.error(f"--rounds={args.rounds!r}: give one number >= 2, or one per model "
                 f"({len(args.models)})")
  args.rounds = dict(zip(args.models, rounds))
  return args


def main(argv: Sequence[str] | None = None) -> int:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  import jax
  clock = time.perf_counter if args.clock == "wall" else time.process_time
  common.print_machine_info({"jax": f"{jax.__version__} devices={jax.devices()}",
                             "clock": args.clock})
  rows = []
  for name in args.models:
    row = bench_masks(name, rounds=args.rounds.get(name), clock=clock)
    print(f"{name} ({row['rounds']} rounds), median seconds per sample: "
          + "; ".join(f"{k} {np.median(v):.4f}" for k, v in row["seconds"].items()), flush=True)
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
