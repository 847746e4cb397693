r"""A prepared accelerator check: what lipprune's paper-scale steps cost on one GPU, in one table.

  python -m bench.device_check                 # one H100/H200: CUDA JAX >= 0.11, PyTorch (< 8 min)
  python -m bench.device_check --tiny          # the same code at toy sizes (CI runs this on CPU)
  python -m bench.device_check --json=out.json --budget_s=420

Needs only JAX, Flax, Optax, Orbax, Chex, absl-py and (for the PyTorch columns) torch: no
ml_collections, tensorflow-datasets or mlxtend on its import path. Synthetic data only (uniform
pixels in [0, 1), uniform labels), generated on the device. Rows, each timed after an untimed
compile/warmup call (whose seconds are printed too), repeats ending in ``block_until_ready`` /
``torch.cuda.synchronize``:

* ``matmul f32`` / ``matmul bf16``: ``jnp.dot`` of two n x n matrices (n = 8192), TFLOP/s.
* ``resnet20 step f32`` / ``bf16``: the jitted lipprune train step of ResNet-20 (CIFAR-10 shaped,
  batch 128, SGD momentum 0.9, weight decay 5e-4; bf16 = ``dtype=bfloat16`` compute, float32
  parameters), examples/s and the implied time of the 182-epoch CIFAR recipe (182 x 50,000
  examples); the PyTorch twin (bench/bench_train_step.py's ``torch_model``, channels-last,
  cuDNN benchmark mode; bf16 under ``torch.autocast``) on the same GPU, and lipprune / torch.
* ``resnet20 masked step``: the f32 step with 80%-zero masks on every prunable leaf; the ratio
  column is masked / dense throughput.
* ``resnet20 loop step`` / ``scan-16``: ``lipprune.train.train`` over 10,000 examples held on the
  device, one step per dispatch against a rolled chunk of 16 steps (the choice
  ``lipprune.train.loop_modes`` needs for this backend; both are bit-identical on CPU).
* ``resnet20 8 seeds vmapped``: one ``jax.vmap``-ed step of 8 independent states and batches;
  ratio = its throughput / that of the single-seed step.
* ``wrn40x10 TRADES step``: WRN-40-10 (the robust CIFAR config), batch 64, TRADES beta 6 with
  10 inner PGD steps, eps 0.031; examples/s and the implied 120-epoch time.
* ``resnet20 PGD-10``: l_inf PGD-10 (eps 8/255, step 2/255) on batch 256, attacked examples/s;
  the same attack written in PyTorch on the twin, and the ratio.

``--tiny`` shrinks everything (LeNet-300-100 on 28x28x1 in place of ResNet-20 and of WRN-40-10,
batch 4, n = 128 matmuls, 1 repeat) so that the whole script runs on a CPU in well under a minute:
CI checks that every row works; its numbers mean nothing. ``--budget_s`` skips the
rows that remain once the time is spent (they print as ``skipped``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from typing import Callable, Sequence

import numpy as np

from bench import common

CIFAR_TRAIN = 50_000


@dataclasses.dataclass(frozen=True)
class Sizes:
  model: str = "resnet20"  # the CIFAR model, with a PyTorch twin in bench/bench_train_step.py
  image: tuple = (32, 32, 3)
  robust_model: tuple = ("wrn", (("depth", 40), ("width", 10)))
  batch: int = 128
  wrn_batch: int = 64
  pgd_batch: int = 256
  matmul: int = 8192
  loop_examples: int = 10_000
  seeds: int = 8
  repeats: int = 5
  steps: int = 10


# LeNet-300-100 compiles in about a second on a CPU where ResNet-20 takes 10-20: the CI run checks
# that every row's code works, not the numbers.
TINY = Sizes(model="mlp", image=(28, 28, 1), robust_model=("mlp", (("hidden", (16,)),)), batch=4,
             wrn_batch=4, pgd_batch=4, matmul=128, loop_examples=32, seeds=2, repeats=1, steps=2)


def timed(fn: Callable[[], object], sync: Callable[[object], object], *, steps: int,
          repeats: int) -> tuple[float, float]:
  """``(compile/warmup seconds, best seconds per call)``; ``fn`` is called ``steps`` times per
  repeat and ``sync`` blocks on its last result."""
  t = time.perf_counter()
  sync(fn())
  warm = time.perf_counter() - t
  best = math.inf
  for _ in range(repeats):
    t = time.perf_counter()
    out = None
    for _ in range(steps):
      out = fn()
    sync(out)
    best = min(best, (time.perf_counter() - t) / steps)
  return warm, best


class Check:
  """Builds and times the rows; ``rows`` collects them as dicts."""

  def __init__(self, sizes: Sizes, budget_s: float, torch=None):
    import jax
    self.jax, self.sizes, self.torch = jax, sizes, torch
    self.deadline = time.perf_counter() + budget_s
    self.rows: list[dict] = []
    self.device = "cuda" if torch is not None and torch.cuda.is_available() else "cpu"

  # ---------------------------------------------------------------- helpers
  def add(self, item, **values):
    row = {"item": item, "lipprune": None, "torch": None, "ratio": None, "implied": "",
           "compile_s": None, **values}
    self.rows.append(row)
    print(f"  {item}: " + ", ".join(f"{k}={v}" for k, v in row.items() if k != "item"
                                    and v not in (None, "")), flush=True)

  def run(self, item, fn):
    if time.perf_counter() > self.deadline:
      self.add(item, implied="skipped (budget)")
      return
    try:
      fn()
    except Exception as e:  # a failing row must not hide the others
      self.add(item, implied=f"error: {type(e).__name__}: {str(e)[:120]}")

  def batch(self, n, seed=0):
    import jax
    kx, ky = jax.random.split(jax.random.key(seed))
    return {"x": jax.random.uniform(kx, (n, *self.sizes.image)),
            "y": jax.random.randint(ky, (n,), 0, 10)}

  def lipprune_step(self, name, batch, *, dtype=None, masks_density=None, loss=None, **kwargs):
    import jax
    import jax.numpy as jnp
    from lipprune import models
    from lipprune import sparsity
    from lipprune import train as train_lib
    if dtype is not None:
      kwargs["dtype"] = dtype
    model = models.create(name, 10, **kwargs)
    params, model_state = model.init(jax.random.key(0), batch["x"][:1])
    tx = train_lib.direction("sgd", momentum=0.9, weight_decay=5e-4)
    sched = train_lib.schedule("constant", base_lr=0.01, total_steps=1)
    masks = None
    if masks_density is not None:
      rng = np.random.default_rng(0)
      masks = jax.tree.map(
          lambda m: None if m is None else jnp.asarray(rng.random(m.shape) < masks_density,
                                                       jnp.float32),
          sparsity.init_masks(params), is_leaf=lambda x: x is None)
      params = train_lib.apply_masks(params, masks)
    state = train_lib.TrainState.create(params, model_state, tx, masks=masks)
    loss_fn = loss(model) if loss is not None else train_lib.cross_entropy(model)
    step = jax.jit(train_lib.make_train_step(loss_fn, tx, sched), donate_argnums=0)
    return model, step, state

  def time_step(self, step, state, batch):
    import jax
    carry = {"state": state}

    def call():
      carry["state"], metrics = step(carry["state"], batch, jax.random.key(0))
      return metrics
    return timed(call, jax.block_until_ready, steps=self.sizes.steps, repeats=self.sizes.repeats)

  def torch_sync(self, out):
    if self.device == "cuda":
      self.torch.cuda.synchronize()
    return out

  def torch_step(self, batch, *, bf16=False):
    """Seconds per PyTorch train step of the model's twin (``None`` without torch)."""
    if self.torch is None:
      return None, None
    from bench import bench_train_step as bts
    torch = self.torch
    import torch.nn.functional as F
    net = bts.torch_model(self.sizes.model).to(self.device).to(
        memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.from_numpy(np.asarray(batch["x"]).transpose(0, 3, 1, 2).copy()).to(
        self.device).contiguous(memory_format=torch.channels_last)
    y = torch.from_numpy(np.asarray(batch["y"]).astype(np.int64)).to(self.device)

    def call():
      opt.zero_grad(set_to_none=True)
      with torch.autocast(self.device, dtype=torch.bfloat16, enabled=bf16):
        loss = F.cross_entropy(net(x), y)
      loss.backward()
      opt.step()
      return loss
    return timed(call, self.torch_sync, steps=self.sizes.steps, repeats=self.sizes.repeats)

  # ---------------------------------------------------------------- rows
  def matmul(self, dtype_name):
    import jax
    import jax.numpy as jnp
    n = self.sizes.matmul
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.dtype(dtype_name))
    dot = jax.jit(jnp.dot)
    warm, s = timed(lambda: dot(a, a), jax.block_until_ready, steps=self.sizes.steps,
                    repeats=self.sizes.repeats)
    self.add(f"matmul {dtype_name} n={n}", lipprune=f"{2 * n ** 3 / s / 1e12:.1f} TFLOP/s",
             compile_s=round(warm, 1))

  def step(self, bf16):
    import jax.numpy as jnp
    b = self.batch(self.sizes.batch)
    _, step, state = self.lipprune_step(self.sizes.model, b, dtype=jnp.bfloat16 if bf16 else None)
    warm, s = self.time_step(step, state, b)
    _, ts = self.torch_step(b, bf16=bf16)
    ex = self.sizes.batch / s
    self.add(f"{self.sizes.model} step {'bf16' if bf16 else 'f32'} (batch {self.sizes.batch})",
             lipprune=f"{ex:,.0f} ex/s", torch=None if ts is None else
             f"{self.sizes.batch / ts:,.0f} ex/s", ratio=None if ts is None else round(ts / s, 2),
             implied=f"182 epochs: {182 * CIFAR_TRAIN / ex / 3600:.2f} h", compile_s=round(warm, 1))
    return s

  def masked(self, dense_seconds):
    b = self.batch(self.sizes.batch)
    _, step, state = self.lipprune_step(self.sizes.model, b, masks_density=0.2)
    warm, s = self.time_step(step, state, b)
    self.add(f"{self.sizes.model} masked step f32", lipprune=f"{self.sizes.batch / s:,.0f} ex/s",
             ratio=round(dense_seconds / s, 3) if dense_seconds else None,
             implied="ratio = masked/dense speed", compile_s=round(warm, 1))

  def loop(self):
    import jax
    from lipprune import train as train_lib
    n = self.sizes.loop_examples
    data = jax.device_get(self.batch(n, seed=1))
    _, step, state = self.lipprune_step(self.sizes.model, self.batch(2))
    steps = max(4, 4 * self.sizes.steps) if self.sizes is TINY else 64
    rates = {}
    for mode, k in (("step", None), ("scan", 16)):
      def call(mode=mode, k=k):
        return train_lib.train(state, step, data, batch_size=self.sizes.batch, num_steps=steps,
                               key=jax.random.key(2), log_every=steps, loop_mode=mode,
                               steps_per_dispatch=k, device_data=True)
      warm, s = timed(call, jax.block_until_ready, steps=1, repeats=max(1, self.sizes.repeats // 2))
      rates[mode] = steps / s
      self.add(f"{self.sizes.model} loop {mode if k is None else f'{mode}-{k}'} ({steps} steps)",
               lipprune=f"{rates[mode]:,.1f} steps/s", compile_s=round(warm, 1),
               ratio=None if mode == "step" else round(rates[mode] / rates["step"], 2),
               implied="" if mode == "step" else "ratio = vs one step per dispatch")

  def seeds(self, single_seconds):
    import jax
    count = self.sizes.seeds
    b = self.batch(self.sizes.batch)
    _, step, state = self.lipprune_step(self.sizes.model, b)
    stacked = jax.tree.map(lambda x: jax.numpy.stack([x] * count), (state, b))
    keys = jax.random.split(jax.random.key(0), count)
    vstep = jax.jit(jax.vmap(step), donate_argnums=0)
    carry = {"state": stacked[0]}

    def call():
      carry["state"], metrics = vstep(carry["state"], stacked[1], keys)
      return metrics
    warm, s = timed(call, jax.block_until_ready, steps=self.sizes.steps,
                    repeats=self.sizes.repeats)
    self.add(f"{self.sizes.model} {count} seeds vmapped",
             lipprune=f"{count * self.sizes.batch / s:,.0f} ex/s",
             ratio=round(count * single_seconds / s, 2) if single_seconds else None,
             implied=f"ratio = vs {count} x 1 seed", compile_s=round(warm, 1))

  def trades(self):
    from lipprune.robust import losses
    name, kwargs = self.sizes.robust_model
    b = self.batch(self.sizes.wrn_batch)
    _, step, state = self.lipprune_step(
        name, b, loss=lambda m: losses.trades(m, eps=0.031, beta=6.0, steps=10), **dict(kwargs))
    warm, s = self.time_step(step, state, b)
    ex = self.sizes.wrn_batch / s
    label = name + "".join(f" {k}={v}" for k, v in kwargs)
    self.add(f"{label} TRADES step (batch {self.sizes.wrn_batch})",
             lipprune=f"{ex:,.0f} ex/s",
             implied=f"120 epochs: {120 * CIFAR_TRAIN / ex / 3600:.1f} h",
             compile_s=round(warm, 1))

  def pgd(self):
    import jax
    from lipprune.robust import attacks
    n = self.sizes.pgd_batch
    b = self.batch(n, seed=3)
    model, _, state = self.lipprune_step(self.sizes.model, b)
    params, ms = state.params, state.model_state
    eps, alpha = 8 / 255, 2 / 255

    @jax.jit
    def attack(params, x, y, key):
      return attacks.pgd(lambda z: model.apply(params, ms, z, train=False)[0], x, y, key, eps=eps,
                         step_size=alpha, steps=10)
    warm, s = timed(lambda: attack(params, b["x"], b["y"], jax.random.key(0)),
                    jax.block_until_ready, steps=self.sizes.steps, repeats=self.sizes.repeats)
    ts = self.torch_pgd(params, ms, b, eps, alpha)
    self.add(f"{self.sizes.model} PGD-10 (batch {n})", lipprune=f"{n / s:,.0f} ex/s",
             torch=None if ts is None else f"{n / ts:,.0f} ex/s",
             ratio=None if ts is None else round(ts / s, 2), compile_s=round(warm, 1))

  def torch_pgd(self, params, model_state, b, eps, alpha):
    if self.torch is None:
      return None
    from bench import bench_train_step as bts
    torch = self.torch
    import torch.nn.functional as F
    net = bts.torch_model(self.sizes.model)
    bts.load_lipprune_variables(net, params, model_state)
    net = net.to(self.device).to(memory_format=torch.channels_last).eval()
    for p in net.parameters():
      p.requires_grad_(False)
    x = torch.from_numpy(np.asarray(b["x"]).transpose(0, 3, 1, 2).copy()).to(
        self.device).contiguous(memory_format=torch.channels_last)
    y = torch.from_numpy(np.asarray(b["y"]).astype(np.int64)).to(self.device)

    def call():
      z = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
      for _ in range(10):
        z.requires_grad_(True)
        g, = torch.autograd.grad(F.cross_entropy(net(z), y, reduction="sum"), z)
        z = torch.min(torch.max(z.detach() + alpha * g.sign(), x - eps), x + eps).clamp(0, 1)
      return z
    _, s = timed(call, self.torch_sync, steps=self.sizes.steps, repeats=self.sizes.repeats)
    return s


COLUMNS = (("item", "item", ""), ("lipprune", "lipprune", ""), ("torch", "PyTorch", ""),
           ("ratio", "ratio", ""), ("implied", "note", ""), ("compile_s", "compile s", ""))


def run(sizes: Sizes, budget_s: float, torch=None) -> list[dict]:
  check = Check(sizes, budget_s, torch)
  dense = {}
  check.run("matmul f32", lambda: check.matmul("float32"))
  check.run("matmul bf16", lambda: check.matmul("bfloat16"))
  check.run("step f32", lambda: dense.__setitem__("f32", check.step(False)))
  check.run("step bf16", lambda: check.step(True))
  check.run("masked step", lambda: check.masked(dense.get("f32")))
  check.run("seeds", lambda: check.seeds(dense.get("f32")))
  check.run("loop", check.loop)
  check.run("PGD-10", check.pgd)
  check.run("TRADES", check.trades)
  return check.rows


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="python -m bench.device_check",
                                   description=__doc__.split("\n\n")[0])
  parser.add_argument("--tiny", action="store_true", help="toy sizes (CI on CPU)")
  parser.add_argument("--budget_s", type=float, default=420.0,
                      help="skip the remaining rows after this many seconds")
  parser.add_argument("--no_torch", action="store_true", help="lipprune columns only")
  parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
  args = parser.parse_args(argv)
  if args.budget_s <= 0:
    parser.error("--budget_s must be positive")
  return args


def main(argv: Sequence[str] | None = None) -> int:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  start = time.perf_counter()
  torch = None if args.no_torch else common.import_torch()
  import jax
  if torch is not None:
    torch.backends.cudnn.benchmark = True
  common.print_machine_info({
      "jax": f"{jax.__version__} backend={jax.default_backend()} devices={jax.devices()}",
      "torch": "not used" if torch is None else f"{torch.__version__} cuda="
               f"{torch.cuda.is_available()}",
      "sizes": "tiny" if args.tiny else "full"})
  rows = run(TINY if args.tiny else Sizes(), args.budget_s, torch)
  table = [{k: ("" if v is None else v) for k, v in r.items()} for r in rows]
  print()
  print(common.format_table(table, COLUMNS))
  print(f"\ntotal {time.perf_counter() - start:.0f} s; load average {os.getloadavg()}")
  if args.json:
    with open(args.json, "w", encoding="utf-8") as f:
      json.dump({"machine": common.machine_info(), "rows": rows}, f, indent=2)
  return 0


if __name__ == "__main__":
  sys.exit(main())
