r"""What the paper-scale configs cost: measured train-step time -> device-hours.

  python -m bench.bench_step_times                      # every config below, on jax.devices()
  python -m bench.bench_step_times --only=resnet20 --steps=3

For each config the real model, loss, optimizer and global batch size are built from the config
file; one jitted train step runs on random data of the dataset's shape (compilation excluded), and
    device-hours = steps of the config / (steps / s) / 3600 x number of devices.
Run it on the machine you plan to use: the numbers in docs/scale.md say which device produced them.
"""
from __future__ import annotations

import argparse
import importlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from lipprune import models
from lipprune import train as train_lib

# name: (config module[:arg], job, train-set size, input shape, classes, pruning rounds)
CONFIGS = {
    "resnet20": ("cifar10_resnet20", "train", 50_000, (32, 32, 3), 10, 1),
    "resnet56_prune20": ("prune_cifar10_resnet56", "prune", 50_000, (32, 32, 3), 10, 20),
    "wrn40x10_trades": ("robust_cifar10_wrn", "robust", 50_000, (32, 32, 3), 10, 1),
    "resnet50_imagenet": ("prune_imagenet_resnet50", "train", 1_281_167, (224, 224, 3), 1000, 1),
}


def build_step(name: str):
  module, job, n_train, shape, classes, rounds = CONFIGS[name]
  config = importlib.import_module(f"experiments.configs.{module}").get_config()
  model = models.create(config.model, classes, **dict(config.get("model_kwargs", {})))
  x = jnp.asarray(np.random.default_rng(0).random((config.batch_size, *shape), np.float32))
  y = jnp.asarray(np.random.default_rng(1).integers(0, classes, config.batch_size), jnp.int32)
  params, model_state = model.init(jax.random.key(0), x[:1])
  tx = train_lib.direction(config.optimizer, momentum=config.momentum, nesterov=config.nesterov,
                           weight_decay=config.weight_decay)
  if job == "robust":
    from experiments import robust as robust_job  # pylint: disable=g-import-not-at-top
    loss_fn = robust_job.build_loss(model, "trades:beta=6", config)
  else:
    loss_fn = train_lib.cross_entropy(model)
  sched = train_lib.schedule("constant", base_lr=0.01, total_steps=1)
  step = jax.jit(train_lib.make_train_step(loss_fn, tx, sched), donate_argnums=0)
  state = train_lib.TrainState.create(params, model_state, tx)
  total_steps = int(config.num_epochs * (n_train // config.batch_size)) * rounds
  return step, state, {"x": x, "y": y}, total_steps, config


def measure(name: str, steps: int) -> dict:
  step, state, batch, total_steps, config = build_step(name)
  state, m = step(state, batch, jax.random.key(0))  # compile
  jax.block_until_ready(m)
  t = time.perf_counter()
  for i in range(steps):
    state, m = step(state, batch, jax.random.key(i + 1))
  jax.block_until_ready(m)
  sec = (time.perf_counter() - t) / steps
  devices = jax.device_count()
  return {"config": name, "batch": config.batch_size, "step_s": sec, "total_steps": total_steps,
          "device_hours": total_steps * sec / 3600 * devices, "devices": devices}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--only", default=",".join(CONFIGS), help="comma-separated config names")
  parser.add_argument("--steps", type=int, default=3, help="timed steps per config")
  args = parser.parse_args()
  names = [n for n in args.only.split(",") if n]
  for n in names:
    if n not in CONFIGS:
      raise SystemExit(f"--only: unknown config {n!r}; expected some of {list(CONFIGS)}")
  print(f"devices: {jax.devices()}")
  print("| config | global batch | s / step | steps in the run | device-hours |")
  print("|---|---:|---:|---:|---:|")
  for n in names:
    r = measure(n, args.steps)
    print(f"| {n} | {r['batch']} | {r['step_s']:.3f} | {r['total_steps']:,} | "
          f"{r['device_hours']:,.1f} |", flush=True)


if __name__ == "__main__":
  main()
