r"""PGD-10 attack throughput: lipprune's jitted attack against PyTorch (CPU, eager), same models.

  python -m bench.bench_pgd [--batch_size=128] [--models=mlp,cnn] [--repeats=3]

The attack is the same on both sides: l_inf PGD (Madry et al. 2018), eps = 0.1, 10 steps of
eps / 4, uniform random start, ascent on the summed cross-entropy, ``sign`` steps, projection onto
the ball and the [0, 1] box, the model in inference mode and its weights frozen (only input
gradients). Throughput is ``batch_size * attacks / median(seconds of a repeat)`` in attacked
examples per second; the ratio is lipprune / torch (above 1: lipprune is faster).

* lipprune: ``lipprune.robust.attacks.pgd`` under ``jax.jit`` (the 10 steps are a
  ``lax.fori_loop`` inside one compiled program, unrolled where lipprune.train.loop_modes says it
  pays: the CNN on CPU); a repeat ends with ``jax.block_until_ready``.
* torch: a Python loop of ``requires_grad_`` / forward / ``F.cross_entropy(reduction='sum')`` /
  ``torch.autograd.grad`` / sign step / ``torch.min(torch.max(...))`` / ``clamp``; with
  ``--torch_compile`` also the same loop around the model under ``torch.compile``.

Models, with lipprune's initial weights copied into torch so both attack the same function:
``mlp`` = LeNet-300-100 (lipprune.models 'mlp', 784-300-100-10) and ``cnn`` = the paper's CNN1
(lipprune.robust.models 'yang_cnn1': conv3x3(32)-conv3x3(64)-maxpool-dense(128)-dense(10)). Before
timing, both run the attack without random start from the same batch and the fraction of equal
adversarial coordinates is printed (sign steps agree except where a gradient entry is ~0).

Threads: XLA's CPU backend uses every core; torch gets ``torch.set_num_threads(os.cpu_count())``
(``--torch_threads`` overrides; on an oversubscribed machine torch's OpenMP threads spin-wait and
its multi-thread number collapses, so compare with ``--torch_threads=1`` there too).
Without torch installed the benchmark prints how to install it and exits 0.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

import numpy as np

from bench import common

EPS = 0.1
STEPS = 10
STEP_SIZE = EPS / 4
MODELS = {"mlp": ("mlp", 20), "cnn": ("yang_cnn1", 2)}  # name -> (registry name, attacks/repeat)


def random_batch(batch_size: int, seed: int = 0):
  rng = np.random.default_rng(seed)
  x = rng.random((batch_size, 28, 28, 1), dtype=np.float32)
  y = rng.integers(0, 10, batch_size).astype(np.int32)
  return x, y


def lipprune_attack(name: str, seed: int = 0):
  """(params, jitted ``attack(params, x, y, key, start) -> x_adv``) for model ``name``."""
  import jax  # pylint: disable=g-import-not-at-top
  from lipprune import models  # pylint: disable=g-import-not-at-top
  from lipprune.robust import attacks  # pylint: disable=g-import-not-at-top
  import lipprune.robust.models  # noqa: F401  pylint: disable=g-import-not-at-top

  model = models.create(MODELS[name][0], 10)
  params, state = model.init(jax.random.key(seed), np.zeros((1, 28, 28, 1), np.float32))

  def attack(params, x, y, key, start):
    fn = lambda z: model.apply(params, state, z, train=False)[0]  # noqa: E731
    return attacks.pgd(fn, x, y, key, eps=EPS, step_size=STEP_SIZE, steps=STEPS, start=start)

  return params, jax.jit(attack, static_argnames="start")


def torch_model(torch, name: str, params):
  """The torch twin of lipprune's model ``name`` holding a copy of ``params`` (frozen)."""
  nn = torch.nn
  t = lambda a: torch.tensor(np.asarray(a))  # noqa: E731

  def linear(p):
    layer = nn.Linear(*np.asarray(p["kernel"]).shape)
    layer.weight.data = t(np.asarray(p["kernel"]).T.copy())
    layer.bias.data = t(p["bias"])
    return layer

  def conv(p):
    k = np.asarray(p["kernel"])  # HWIO
    layer = nn.Conv2d(k.shape[2], k.shape[3], k.shape[0])
    layer.weight.data = t(k.transpose(3, 2, 0, 1).copy())
    layer.bias.data = t(p["bias"])
    return layer

  class NHWCFlatten(nn.Module):
    def forward(self, x):  # flatten as flax does: (h, w, c), channel fastest
      return x.permute(0, 2, 3, 1).flatten(1)

  if name == "mlp":
    net = nn.Sequential(nn.Flatten(), linear(params["dense_0"]), nn.ReLU(),
                        linear(params["dense_1"]), nn.ReLU(), linear(params["head"]))
  else:
    net = nn.Sequential(conv(params["conv1"]), nn.ReLU(), conv(params["conv2"]), nn.ReLU(),
                        nn.MaxPool2d(2), NHWCFlatten(), linear(params["fc1"]), nn.ReLU(),
                        linear(params["fc2"]))
  net.eval()
  for p in net.parameters():
    p.requires_grad_(False)
  return net


def torch_pgd(torch, net, x, y, *, random_start: bool, generator=None):
  """The same PGD in PyTorch: NCHW ``x`` in [0, 1], int64 ``y``."""
  F = torch.nn.functional
  if random_start:
    x_adv = (x + torch.empty_like(x).uniform_(-EPS, EPS, generator=generator)).clamp(0, 1)
  else:
    x_adv = x.clone()
  for _ in range(STEPS):
    x_adv.requires_grad_(True)
    loss = F.cross_entropy(net(x_adv), y, reduction="sum")
    (g,) = torch.autograd.grad(loss, x_adv)
    x_adv = x_adv.detach() + STEP_SIZE * g.sign()
    x_adv = torch.min(torch.max(x_adv, x - EPS), x + EPS).clamp(0, 1)
  return x_adv


def agreement(torch, name: str, batch_size: int = 64, seed: int = 0) -> float:
  """Fraction of equal coordinates of the two attacks (no random start) on one batch."""
  import jax  # pylint: disable=g-import-not-at-top
  params, attack = lipprune_attack(name, seed)
  x, y = random_batch(batch_size, seed)
  ours = np.asarray(attack(params, x, y, jax.random.key(0), "none"))
  net = torch_model(torch, name, params)
  xt = torch.tensor(x.transpose(0, 3, 1, 2).copy())
  theirs = torch_pgd(torch, net, xt, torch.tensor(y, dtype=torch.int64), random_start=False)
  theirs = theirs.numpy().transpose(0, 2, 3, 1)
  return float(np.mean(np.abs(ours - theirs) < 1e-5))


def bench_model(torch, name: str, *, batch_size: int, attacks_per_repeat: int | None,
                warmup: int, repeats: int, seed: int = 0, torch_compile: bool = False) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  attacks_per_repeat = attacks_per_repeat or MODELS[name][1]
  params, attack = lipprune_attack(name, seed)
  x, y = random_batch(batch_size, seed)
  xj, yj = jax.device_put(x), jax.device_put(y)
  key = jax.random.key(seed)
  net = torch_model(torch, name, params)
  xt = torch.tensor(x.transpose(0, 3, 1, 2).copy())
  yt = torch.tensor(y, dtype=torch.int64)
  gen = torch.Generator().manual_seed(seed)
  counter = {"jax": 0}

  def run_jax(n):
    out = None
    for _ in range(n):
      counter["jax"] += 1
      out = attack(params, xj, yj, jax.random.fold_in(key, counter["jax"]), "uniform")
    jax.block_until_ready(out)

  def torch_run(model):
    def run(n):
      for _ in range(n):
        torch_pgd(torch, model, xt, yt, random_start=True, generator=gen)
    return run

  runs = {"lipprune": run_jax, "torch": torch_run(net)}
  if torch_compile:
    runs["torch_compile"] = torch_run(torch.compile(net))
  seconds = common.measure_interleaved(runs, steps=attacks_per_repeat, warmup=warmup,
                                       repeats=repeats)
  rates = {k: common.throughput(batch_size, attacks_per_repeat, s) for k, s in seconds.items()}
  best = {k: common.best_throughput(batch_size, attacks_per_repeat, s) for k, s in seconds.items()}
  extra = {}
  if torch_compile:
    extra = {"torch_compile_ex_per_s": rates["torch_compile"],
             "compile_ratio": common.ratio(rates["lipprune"], rates["torch_compile"]),
             "torch_compile_seconds": seconds["torch_compile"]}
  return {**extra, "model": name, "batch_size": batch_size, "attacks": attacks_per_repeat,
          "lipprune_ex_per_s": rates["lipprune"], "torch_ex_per_s": rates["torch"],
          "ratio": common.ratio(rates["lipprune"], rates["torch"]),
          "best_ratio": common.ratio(best["lipprune"], best["torch"]),
          "agreement": agreement(torch, name, min(batch_size, 64), seed),
          "lipprune_seconds": seconds["lipprune"], "torch_seconds": seconds["torch"]}


TABLE_COLUMNS = (
    ("model", "model", ""),
    ("batch_size", "batch", "d"),
    ("lipprune_ex_per_s", "lipprune PGD-10 ex/s", ",.0f"),
    ("torch_ex_per_s", "torch PGD-10 ex/s", ",.0f"),
    ("ratio", "ratio (lipprune/torch)", ".2f"),
    ("best_ratio", "ratio of best repeats", ".2f"),
    ("agreement", "equal coords", ".4f"),
)
COMPILE_COLUMNS = (
    ("model", "model", ""),
    ("torch_compile_ex_per_s", "torch.compile PGD-10 ex/s", ",.0f"),
    ("compile_ratio", "ratio (lipprune/torch.compile)", ".2f"),
)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="python -m bench.bench_pgd",
                                   description=__doc__.split("\n\n")[0])
  parser.add_argument("--batch_size", type=int, default=128)
  parser.add_argument("--attacks", type=int, default=None,
                      help="attacks per timed repeat (default: " +
                      ", ".join(f"{k} {v[1]}" for k, v in MODELS.items()) + ")")
  parser.add_argument("--warmup", type=int, default=1)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--models", default="mlp,cnn", help=f"subset of {sorted(MODELS)}")
  parser.add_argument("--torch_threads", type=int, default=os.cpu_count())
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--torch_compile", action="store_true",
                      help="also time the attack on the torch model under torch.compile")
  args = parser.parse_args(argv)
  args.models = [m.strip() for m in args.models.split(",") if m.strip()]
  unknown = [m for m in args.models if m not in MODELS]
  if unknown or not args.models:
    parser.error(f"--models: unknown {unknown}; expected a comma-separated subset of {sorted(MODELS)}")
  for field in ("batch_size", "repeats", "torch_threads"):
    if getattr(args, field) < 1:
      parser.error(f"--{field} must be positive, got {getattr(args, field)}")
  return args


def main(argv: Sequence[str] | None = None) -> int:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  torch = common.import_torch()
  if torch is None:
    print(common.missing_dependency_message("torch"), file=sys.stderr)
    return 0
  import jax  # pylint: disable=g-import-not-at-top

  torch.set_num_threads(args.torch_threads)
  common.print_machine_info({"jax": f"{jax.__version__} devices={jax.devices()}",
                             "torch": f"{torch.__version__} threads={torch.get_num_threads()}"})
  rows = []
  for name in args.models:
    row = bench_model(torch, name, batch_size=args.batch_size, attacks_per_repeat=args.attacks,
                      warmup=args.warmup, repeats=args.repeats, seed=args.seed,
                      torch_compile=args.torch_compile)
    print(f"{name}: seconds lipprune {[round(s, 3) for s in row['lipprune_seconds']]}, torch "
          f"{[round(s, 3) for s in row['torch_seconds']]}", flush=True)
    rows.append(row)
  print()
  print(common.format_table(rows, TABLE_COLUMNS))
  if args.torch_compile:
    print()
    print(common.format_table(rows, COMPILE_COLUMNS))
  print(f"\nload average at the end: {common.machine_info()['loadavg_1_5_15']}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
