r"""Inference speed of a physically shrunk structured-pruned network vs the masked dense one.

  python bench/bench_shrink.py --model=vgg16 --batch=32 --repeats=10

Prunes filters by L1 norm (Li et al., ICLR 2017) with the given per-layer fractions, builds the
smaller network with `lipprune.sparsity.shrink`, checks that both compute the same logits, and times
the jitted forward pass of each in the same process, printing the speed-up. Presets:

* ``vgg16``: Li et al.'s VGG-16-pruned-A: 50% of the filters of conv layers 1 and 8-13.
* ``vgg16_half``: 50% of every conv layer's filters.
* ``resnet56``: Li et al.'s ResNet-56-pruned-B: the first conv of each block pruned by 60% / 30% /
  10% in stages 1/2/3, skipping blocks whose first layer is among the sensitive layers
  (16, 18, 20, 34, 38, 54 of the 55 conv layers).
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from lipprune import models, sparsity, train
from lipprune.sparsity import shrink as S


def _resnet56_b() -> dict:
  # Conv layer numbers (1-based, the stem is layer 1): block i's first conv is layer 2 + 2 i.
  skip = {16, 18, 20, 34, 38, 54}
  rates = {}
  for i in range(27):
    if 2 + 2 * i in skip:
      continue
    rates[rf"^block_{i}/conv_0/"] = (0.6, 0.3, 0.1)[i // 9]
  return rates


PRESETS = {
    "vgg16": ("vgg16", {r"^conv_(0|7|8|9|10|11|12)/": 0.5}),
    "vgg16_half": ("vgg16", {r"^conv_\d+/": 0.5}),
    "resnet56": ("resnet56", _resnet56_b()),
}


def _time_pair(fa, args_a, fb, args_b, repeats: int) -> tuple[float, float]:
  """Best wall time of each function, measured alternately so that load drifts hit both alike."""
  jax.block_until_ready(fa(*args_a))  # compile
  jax.block_until_ready(fb(*args_b))
  best_a = best_b = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fa(*args_a))
    t1 = time.perf_counter()
    jax.block_until_ready(fb(*args_b))
    t2 = time.perf_counter()
    best_a, best_b = min(best_a, t1 - t0), min(best_b, t2 - t1)
  return best_a, best_b


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--model", choices=sorted(PRESETS), default="vgg16")
  ap.add_argument("--batch", type=int, default=32)
  ap.add_argument("--repeats", type=int, default=10)
  args = ap.parse_args()
  name, rates = PRESETS[args.model]
  model = models.create(name, 10)
  x = jax.random.uniform(jax.random.key(0), (args.batch, 32, 32, 3))
  params, state = model.init(jax.random.key(1), x[:1])
  masks = sparsity.filter_l1(params, sparsity.init_masks(params), {**rates, "default": 0.0})
  masks = S.channel_masks(params, masks, S.channel_plan(name, params))
  masked = train.apply_masks(params, masks)
  small, sp, ss, kw = S.shrink(name, 10, masked, state, masks, x[:1])

  dense_fn = jax.jit(lambda p, s, x: model.apply(p, s, x, train=False)[0])
  small_fn = jax.jit(lambda p, s, x: small.apply(p, s, x, train=False)[0])
  err = float(jnp.max(jnp.abs(dense_fn(masked, state, x) - small_fn(sp, ss, x))))
  n_dense = sum(np.size(p) for p in jax.tree.leaves(params))
  n_small = sum(np.size(p) for p in jax.tree.leaves(sp))
  t_dense, t_small = _time_pair(dense_fn, (masked, state, x), small_fn, (sp, ss, x), args.repeats)
  print(f"device: {jax.devices()[0].device_kind}  model: {args.model}  batch: {args.batch}")
  print(f"params: masked dense {n_dense:,}  shrunk {n_small:,}  ({n_small / n_dense:.3f})")
  print(f"max |logit difference|: {err:.2e}")
  print(f"forward, best of {args.repeats}: masked dense {1e3 * t_dense:.2f} ms  "
        f"shrunk {1e3 * t_small:.2f} ms  speed-up {t_dense / t_small:.2f}x")


if __name__ == "__main__":
  main()
