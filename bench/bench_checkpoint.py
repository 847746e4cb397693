r"""Asynchronous against synchronous orbax checkpoint saves in the training loop.

  python -m bench.bench_checkpoint [--models=mlp,resnet20] [--repeats=5] [--checkpoints=10]

Each contender is one `lipprune.train.train` call from the same state and key into a fresh
checkpoint directory, saving ``--checkpoints`` times (every ``steps / checkpoints`` steps, the last
at the end) with ``async_checkpoints=False`` (``sync``: each save returns when written) or ``True``
(``async``, the loop's default: the write runs on orbax's background thread while the next steps
run; the call returns once every checkpoint is finalized). Models and data are those of
bench/bench_loop.py (LeNet-300-100 on digits-shaped data, ResNet-20 on CIFAR-shaped data).
Contenders alternate repeats (`bench.common.measure_interleaved`); the ratio is async / sync speed
(above 1: async is faster). "identical" checks the final states and the last checkpoints of the two
contenders bit for bit.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from typing import Sequence

import numpy as np

from bench import common
from bench.bench_loop import LOOP_MODELS

COLUMNS = (("model", "model", ""), ("steps", "steps", "d"), ("checkpoints", "saves", "d"),
           ("state_mb", "state MB", ".1f"), ("sync_steps_per_s", "sync steps/s", ",.1f"),
           ("async_steps_per_s", "async steps/s", ",.1f"), ("ratio", "async/sync speed", ".2f"),
           ("best_ratio", "best repeats", ".2f"), ("identical", "identical", ""))


def bench_model(name: str, *, steps: int | None, repeats: int, checkpoints: int) -> dict:
  import jax
  from lipprune import models
  from lipprune import train as train_lib
  from lipprune.train.checkpoint import Checkpointer

  registry_name, kwargs, _, n, shape, batch, default_steps = LOOP_MODELS[name]
  steps = steps or default_steps
  rng = np.random.default_rng(0)
  data = {"x": rng.random((n, *shape), dtype=np.float32),
          "y": rng.integers(0, 10, n).astype(np.int32)}
  model = models.create(registry_name, 10, **kwargs)
  params, model_state = model.init(jax.random.key(0), data["x"][:1])
  tx = train_lib.direction("sgd", momentum=0.9, weight_decay=1e-4)
  sched = train_lib.schedule("step", base_lr=0.05, total_steps=1000, boundaries=(500,))
  state0 = train_lib.TrainState.create(params, model_state, tx)
  step = jax.jit(train_lib.make_train_step(train_lib.cross_entropy(model), tx, sched))
  every = max(1, steps // checkpoints)
  root = tempfile.mkdtemp(prefix="lipprune_bench_ckpt_")
  finals, dirs = {}, {}

  def make(label: str):
    def run(num_steps: int) -> None:
      directory = os.path.join(root, label)
      shutil.rmtree(directory, ignore_errors=True)  # a fresh run, never a resumed one
      finals[label] = jax.block_until_ready(train_lib.train(
          state0, step, data, batch_size=batch, num_steps=num_steps, key=jax.random.key(1),
          log_every=num_steps, checkpoint_every=every, ckpt_dir=directory,
          async_checkpoints=label == "async"))
      dirs[label] = directory
    return run

  try:
    seconds = common.measure_interleaved({"sync": make("sync"), "async": make("async")},
                                         steps=steps, warmup=every, repeats=repeats)
    leaves = lambda tree: [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]
    same = lambda a, b: all(np.array_equal(x, y) for x, y in zip(leaves(a), leaves(b)))
    restored = {}
    for label, directory in dirs.items():
      ckpt = Checkpointer(directory)
      restored[label] = ckpt.restore(state0)
      ckpt.close()
    identical = (same(finals["sync"], finals["async"]) and restored["sync"][0] == steps
                 and restored["async"][0] == steps
                 and same(restored["sync"][1], restored["async"][1]))
  finally:
    shutil.rmtree(root, ignore_errors=True)
  rate = {k: common.throughput(1, steps, v) for k, v in seconds.items()}
  best = {k: common.best_throughput(1, steps, v) for k, v in seconds.items()}
  return {"model": name, "steps": steps, "checkpoints": steps // every,
          "state_mb": sum(x.nbytes for x in jax.tree.leaves(state0)) / 2**20,
          "sync_steps_per_s": rate["sync"], "async_steps_per_s": rate["async"],
          "ratio": common.ratio(rate["async"], rate["sync"]),
          "best_ratio": common.ratio(best["async"], best["sync"]),
          "identical": "yes" if identical else "NO", "seconds": seconds}


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m bench.bench_checkpoint",
                                   description=__doc__.split("\n\n")[0])
  parser.add_argument("--models", default="mlp,resnet20", help=f"subset of {sorted(LOOP_MODELS)}")
  parser.add_argument("--steps", type=int, default=None, help="steps per train call")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--checkpoints", type=int, default=10, help="saves per train call")
  args = parser.parse_args(sys.argv[1:] if argv is None else argv)
  names = common.parse_subset(parser, "models", args.models, LOOP_MODELS)
  if args.repeats < 1 or args.checkpoints < 1 or (args.steps is not None and args.steps < 1):
    parser.error("--repeats, --checkpoints and --steps must be positive")
  import jax
  common.print_machine_info({"jax": f"{jax.__version__} devices={jax.devices()}"})
  rows = []
  for name in names:
    row = bench_model(name, steps=args.steps, repeats=args.repeats, checkpoints=args.checkpoints)
    print(f"{name}: seconds {({k: [round(s, 3) for s in v] for k, v in row['seconds'].items()})}",
          flush=True)
    rows.append(row)
  print()
  print(common.format_table(rows, COLUMNS))
  return 0 if all(r["identical"] == "yes" for r in rows) else 1


if __name__ == "__main__":
  sys.exit(main())
