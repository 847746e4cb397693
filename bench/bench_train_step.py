r"""Train-step throughput: lipprune's jitted step against PyTorch (CPU, eager) on the same models.

  python -m bench.bench_train_step [--batch_size=128] [--steps=N] [--models=mlp,resnet20]

For each model, both implementations train the same architecture with the same batch size, loss
(mean softmax cross-entropy) and optimizer (SGD, momentum 0.9, weight decay 5e-4, constant learning
rate 0.01) on one fixed random batch held in memory, so the number is the step itself, not data
loading. Throughput is ``batch_size * steps / median(seconds of a repeat)`` in examples/s; the
ratio is lipprune / torch (above 1: lipprune is faster). The table also gives the ratio of the
two fastest repeats, the least disturbed estimate on a machine shared with other jobs.

* lipprune: ``lipprune.train.make_train_step(cross_entropy(model), direction('sgd', ...),
  schedule('constant', ...))`` under ``jax.jit`` with the state donated, driven as
  ``lipprune.train.loop.train`` drives it (a ``fold_in`` key per step); a repeat ends with
  ``jax.block_until_ready``. Warmup steps run first, so compilation is never timed.
* torch: ``zero_grad(set_to_none=True)``, forward, ``F.cross_entropy``, ``backward``,
  ``torch.optim.SGD(momentum=0.9, weight_decay=5e-4).step()``; NCHW tensors, eager mode, default
  optimizer implementation. ``--torch_compile`` adds the same step with the model under
  ``torch.compile`` (its compilation runs in the untimed warmup).

The two models are the same function: LeNet-300-100 (784-300-100-10, ReLU) and the CIFAR ResNet-20
of He et al. (2016) with option-A shortcuts (stride-2 subsampling plus zero channels), widths
16/32/64, batch norm (momentum 0.1 in torch's convention, epsilon 1e-5), no conv biases. Parameter
counts are checked equal (266,610 and 269,722). One difference is left on purpose: torch's
idiomatic ``padding=1`` pads a stride-2 3x3 conv on both sides, XLA's SAME pads (0, 1); shapes and
FLOPs are identical. ``torch_model(..., same_padding=True)`` reproduces SAME exactly, and
tests/test_bench.py copies lipprune's weights into it and checks the logits agree.

Threads: XLA's CPU backend uses every core of the machine; torch gets
``torch.set_num_threads(os.cpu_count())`` (``--torch_threads`` overrides) so both use all cores.
``main`` sets ``OMP_WAIT_POLICY=PASSIVE`` (unless already set) before importing torch: with
torch's default busy-waiting OpenMP workers, any other job on the cores makes torch 5-20x slower
while XLA's thread pool slows about 2x, which would measure the neighbours, not the step.
Contenders alternate repeats (bench.common.measure_interleaved) so load drift hits both alike.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Any, Callable, Sequence

import numpy as np

from bench import common

NUM_CLASSES = 10
LEARNING_RATE = 0.01
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4


@dataclasses.dataclass(frozen=True)
class Spec:
  """A benchmarked model: its input (HWC) and default steps per timed repeat."""

  input_shape: tuple[int, int, int]
  default_steps: int


SPECS = {
    "mlp": Spec(input_shape=(28, 28, 1), default_steps=100),
    "resnet20": Spec(input_shape=(32, 32, 3), default_steps=6),
}


@dataclasses.dataclass
class Contender:
  """One implementation ready to train: ``run(n)`` performs ``n`` steps and blocks until done."""

  run: Callable[[int], None]
  num_params: int
  last_loss: Callable[[], float]


def random_batch(name: str, batch_size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Uniform [0, 1) NHWC images and uniform labels, float32 / int32."""
  rng = np.random.default_rng(seed)
  x = rng.random((batch_size, *SPECS[name].input_shape), dtype=np.float32)
  y = rng.integers(0, NUM_CLASSES, batch_size).astype(np.int32)
  return x, y


# ---------------------------------------------------------------------------------------------
# lipprune


def lipprune_contender(name: str, x: np.ndarray, y: np.ndarray, seed: int = 0) -> Contender:
  """lipprune's jitted train step on ``create(name, 10)``; the batch lives on the device."""
  import jax
  from lipprune import models
  from lipprune import train as train_lib

  model = models.create(name, NUM_CLASSES)
  init_key, run_key = jax.random.split(jax.random.key(seed))
  params, model_state = model.init(init_key, x[:1])
  tx = train_lib.direction("sgd", momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
  sched = train_lib.schedule("constant", base_lr=LEARNING_RATE, total_steps=1)
  step = jax.jit(train_lib.make_train_step(train_lib.cross_entropy(model), tx, sched),
                 donate_argnums=0)
  num_params = sum(int(leaf.size) for leaf in jax.tree.leaves(params))
  batch = jax.device_put({"x": x, "y": y})
  step_keys = jax.random.fold_in(run_key, 1)
  carry = {"state": train_lib.TrainState.create(params, model_state, tx), "i": 0, "loss": None}

  def run(n: int) -> None:
    state, metrics = carry["state"], None
    for _ in range(n):
      state, metrics = step(state, batch, jax.random.fold_in(step_keys, carry["i"]))
      carry["i"] += 1
    jax.block_until_ready((state, metrics))
    carry["state"], carry["loss"] = state, metrics["loss"]

  return Contender(run, num_params, lambda: float(carry["loss"]))


# ---------------------------------------------------------------------------------------------
# PyTorch


def torch_model(name: str, num_classes: int = NUM_CLASSES, *, same_padding: bool = False):
  """The PyTorch twin of ``lipprune.models.create(name, num_classes)`` (mlp or resnet20).

  Submodules carry lipprune's layer names (``dense_0``, ``block_3.conv_1``, ...) so that
  `load_lipprune_variables` can copy weights across by name. ``same_padding`` makes stride-2
  convs pad like XLA's SAME (bottom/right only) for exact numerical comparison; the benchmark
  uses torch's idiomatic symmetric ``padding=1``.
  """
  import torch
  from torch import nn
  import torch.nn.functional as F

  class Conv3x3(nn.Conv2d):
    """3x3 conv, no bias; SAME padding (0, 1) at stride 2 when ``same_padding``."""

    def __init__(self, cin, cout, stride):
      exact = same_padding and stride == 2
      super().__init__(cin, cout, 3, stride=stride, padding=0 if exact else 1, bias=False)
      self.exact = exact

    def forward(self, x):
      if self.exact:
        x = F.pad(x, (0, 1, 0, 1))
      return super().forward(x)

  def he_init(module):
    # lipprune.models.layers: conv He fan-out normal, dense He fan-in normal, zero biases.
    if isinstance(module, nn.Conv2d):
      nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    elif isinstance(module, nn.Linear):
      nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
      nn.init.zeros_(module.bias)

  class MLP(nn.Module):
    """LeNet-300-100: 784-300-100-C with ReLU."""

    def __init__(self, num_inputs=784, hidden=(300, 100)):
      super().__init__()
      widths = (num_inputs, *hidden)
      for i in range(len(hidden)):
        self.add_module(f"dense_{i}", nn.Linear(widths[i], widths[i + 1]))
      self.num_hidden = len(hidden)
      self.head = nn.Linear(widths[-1], num_classes)

    def forward(self, x):
      x = torch.flatten(x, 1)
      for i in range(self.num_hidden):
        x = F.relu(getattr(self, f"dense_{i}")(x))
      return self.head(x)

  class BasicBlock(nn.Module):
    """relu(bn_1(conv_1(relu(bn_0(conv_0(x))))) + shortcut_A(x))."""

    def __init__(self, cin, cout, stride):
      super().__init__()
      self.conv_0 = Conv3x3(cin, cout, stride)
      self.bn_0 = nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)
      self.conv_1 = Conv3x3(cout, cout, 1)
      self.bn_1 = nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)
      self.stride, self.extra = stride, cout - cin

    def forward(self, x):
      y = F.relu(self.bn_0(self.conv_0(x)))
      y = self.bn_1(self.conv_1(y))
      residual = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
      if self.extra:
        residual = F.pad(residual, (0, 0, 0, 0, 0, self.extra))  # zero channels appended
      return F.relu(y + residual)

  class CifarResNet(nn.Module):
    """ResNet-(6n+2), option A shortcuts, widths 16/32/64 (He et al. 2016, Sec. 4.2)."""

    def __init__(self, blocks_per_stage):
      super().__init__()
      self.stem_conv = Conv3x3(3, 16, 1)
      self.stem_bn = nn.BatchNorm2d(16, eps=1e-5, momentum=0.1)
      n, cin = blocks_per_stage, 16
      self.num_blocks = 3 * n
      for i in range(3 * n):
        stage = i // n
        cout = (16, 32, 64)[stage]
        stride = 2 if (stage > 0 and i % n == 0) else 1
        self.add_module(f"block_{i}", BasicBlock(cin, cout, stride))
        cin = cout
      self.head = nn.Linear(64, num_classes)

    def forward(self, x):
      x = F.relu(self.stem_bn(self.stem_conv(x)))
      for i in range(self.num_blocks):
        x = getattr(self, f"block_{i}")(x)
      return self.head(x.mean(dim=(2, 3)))

  if name == "mlp":
    net = MLP()
  elif name == "resnet20":
    net = CifarResNet(blocks_per_stage=3)
  else:
    raise ValueError(f"no torch twin for model {name!r}; expected one of {sorted(SPECS)}")
  net.apply(he_init)
  return net


def load_lipprune_variables(net, params, model_state=None) -> None:
  """Copies lipprune (flax) variables into ``torch_model``'s twin, matching layers by name.

  Dense kernels (in, out) become weights (out, in); conv kernels HWIO become OIHW; batch-norm
  ``scale``/``bias``/``mean``/``var`` become ``weight``/``bias``/``running_mean``/``running_var``.
  Raises KeyError for a variable without a counterpart.
  """
  import jax
  import torch

  targets = dict(net.named_parameters()) | dict(net.named_buffers())
  sources = [(path, leaf, {"kernel": "weight", "scale": "weight", "bias": "bias"})
             for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]]
  stats = (model_state or {}).get("batch_stats", {})
  sources += [(path, leaf, {"mean": "running_mean", "var": "running_var"})
              for path, leaf in jax.tree_util.tree_flatten_with_path(stats)[0]]
  with torch.no_grad():
    for path, leaf, renames in sources:
      keys = [k.key for k in path]
      target = ".".join(keys[:-1] + [renames[keys[-1]]])
      value = np.asarray(leaf)
      if keys[-1] == "kernel":
        value = value.T if value.ndim == 2 else value.transpose(3, 2, 0, 1)
      if target not in targets:
        raise KeyError(f"lipprune variable {'/'.join(keys)} has no torch counterpart {target}")
      if tuple(targets[target].shape) != value.shape:
        raise ValueError(f"{target}: torch shape {tuple(targets[target].shape)} != {value.shape}")
      targets[target].copy_(torch.from_numpy(np.array(value, np.float32, copy=True)))


def torch_contender(name: str, x: np.ndarray, y: np.ndarray, seed: int = 0,
                    compiled: bool = False) -> Contender:
  """A PyTorch training step of ``torch_model(name)`` with torch.optim.SGD: eager, or with the
  model under ``torch.compile`` (forward and backward compiled, the optimizer step eager)."""
  import torch
  import torch.nn.functional as F

  torch.manual_seed(seed)
  net = torch_model(name)
  net.train()
  num_params = sum(p.numel() for p in net.parameters())
  if compiled:
    net = torch.compile(net)
  opt = torch.optim.SGD(net.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM,
                        weight_decay=WEIGHT_DECAY)
  xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))  # NHWC -> NCHW
  yt = torch.from_numpy(y).long()
  carry = {"loss": None}

  def run(n: int) -> None:
    loss = None
    for _ in range(n):
      opt.zero_grad(set_to_none=True)
      loss = F.cross_entropy(net(xt), yt)
      loss.backward()
      opt.step()
    carry["loss"] = loss.detach()

  return Contender(run, num_params, lambda: float(carry["loss"]))


# ---------------------------------------------------------------------------------------------
# The benchmark


def bench_model(name: str, *, batch_size: int = 128, steps: int | None = None, warmup: int = 3,
                repeats: int = 5, seed: int = 0, torch_compile: bool = False) -> dict[str, Any]:
  """Times both implementations of ``name`` (and ``torch.compile``'s with ``torch_compile``);
  returns throughputs, their ratios and param counts.

  Raises RuntimeError when the two parameter counts differ (the models would not be the same).
  """
  if name not in SPECS:
    raise ValueError(f"unknown benchmark model {name!r}; expected one of {sorted(SPECS)}")
  if batch_size <= 0:
    raise ValueError(f"batch_size must be positive, got {batch_size}")
  steps = SPECS[name].default_steps if steps is None else steps
  x, y = random_batch(name, batch_size, seed)
  contenders = {"lipprune": lipprune_contender(name, x, y, seed),
                "torch": torch_contender(name, x, y, seed)}
  if torch_compile:
    contenders["torch_compile"] = torch_contender(name, x, y, seed, compiled=True)
  counts = {k: c.num_params for k, c in contenders.items()}
  if counts["lipprune"] != counts["torch"]:
    raise RuntimeError(f"{name}: parameter counts differ, lipprune {counts['lipprune']:,} vs "
                       f"torch {counts['torch']:,}")
  seconds = common.measure_interleaved({k: c.run for k, c in contenders.items()},
                                       steps=steps, warmup=warmup, repeats=repeats)
  rates = {k: common.throughput(batch_size, steps, s) for k, s in seconds.items()}
  best = {k: common.best_throughput(batch_size, steps, s) for k, s in seconds.items()}
  compile_columns = {}
  if torch_compile:
    compile_columns = {
        "torch_compile_ex_per_s": rates["torch_compile"],
        "compile_ratio": common.ratio(rates["lipprune"], rates["torch_compile"]),
        "compile_best_ratio": common.ratio(best["lipprune"], best["torch_compile"]),
        "torch_compile_seconds": seconds["torch_compile"]}
  return {
      **compile_columns,
      "model": name,
      "batch_size": batch_size,
      "steps": steps,
      "repeats": repeats,
      "lipprune_ex_per_s": rates["lipprune"],
      "torch_ex_per_s": rates["torch"],
      "ratio": common.ratio(rates["lipprune"], rates["torch"]),
      "best_ratio": common.ratio(best["lipprune"], best["torch"]),
      "lipprune_params": counts["lipprune"],
      "torch_params": counts["torch"],
      "lipprune_seconds": seconds["lipprune"],
      "torch_seconds": seconds["torch"],
      "lipprune_final_loss": contenders["lipprune"].last_loss(),
      "torch_final_loss": contenders["torch"].last_loss(),
  }


TABLE_COLUMNS = (
    ("model", "model", ""),
    ("batch_size", "batch", "d"),
    ("lipprune_ex_per_s", "lipprune ex/s", ",.0f"),
    ("torch_ex_per_s", "torch ex/s", ",.0f"),
    ("ratio", "ratio (lipprune/torch)", ".2f"),
    ("best_ratio", "ratio of best repeats", ".2f"),
    ("lipprune_params", "params lipprune", ",d"),
    ("torch_params", "params torch", ",d"),
)
COMPILE_COLUMNS = (
    ("model", "model", ""),
    ("torch_compile_ex_per_s", "torch.compile ex/s", ",.0f"),
    ("compile_ratio", "ratio (lipprune/torch.compile)", ".2f"),
    ("compile_best_ratio", "ratio of best repeats", ".2f"),
)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="python -m bench.bench_train_step",
                                   description=__doc__.split("\n\n")[0])
  parser.add_argument("--batch_size", type=int, default=128)
  parser.add_argument("--steps", type=int, default=None,
                      help="steps per timed repeat (default: " +
                      ", ".join(f"{k} {s.default_steps}" for k, s in SPECS.items()) + ")")
  parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation)")
  parser.add_argument("--repeats", type=int, default=5, help="timed repeats; the median counts")
  parser.add_argument("--models", default="mlp,resnet20",
                      help=f"comma-separated subset of {sorted(SPECS)}")
  parser.add_argument("--torch_threads", type=int, default=os.cpu_count())
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--torch_compile", action="store_true",
                      help="also time the torch model under torch.compile (first compile ~30 s)")
  args = parser.parse_args(argv)
  args.models = [m.strip() for m in args.models.split(",") if m.strip()]
  unknown = [m for m in args.models if m not in SPECS]
  if unknown or not args.models:
    parser.error(f"--models: unknown {unknown}; expected a comma-separated subset of {sorted(SPECS)}")
  for field in ("batch_size", "warmup", "repeats", "torch_threads"):
    if getattr(args, field) < (0 if field == "warmup" else 1):
      parser.error(f"--{field} must be positive, got {getattr(args, field)}")
  if args.steps is not None and args.steps < 1:
    parser.error(f"--steps must be positive, got {args.steps}")
  return args


def main(argv: Sequence[str] | None = None) -> int:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  torch_preloaded = "torch" in sys.modules
  torch = common.import_torch()
  if torch is None:
    print(common.missing_dependency_message("torch"), file=sys.stderr)
    return 0
  import jax

  torch.set_num_threads(args.torch_threads)
  common.print_machine_info({
      "jax": f"{jax.__version__} devices={jax.devices()}",
      "torch": f"{torch.__version__} threads={torch.get_num_threads()}",
      "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "") + (
          " (torch was imported before main: its OpenMP read the environment then)"
          if torch_preloaded else ""),
      "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
  })
  rows = []
  for name in args.models:
    row = bench_model(name, batch_size=args.batch_size, steps=args.steps, warmup=args.warmup,
                      repeats=args.repeats, seed=args.seed, torch_compile=args.torch_compile)
    print(f"{name}: {row['steps']} steps x {row['repeats']} repeats; seconds lipprune "
          f"{[round(s, 3) for s in row['lipprune_seconds']]}, torch "
          f"{[round(s, 3) for s in row['torch_seconds']]}; final loss lipprune "
          f"{row['lipprune_final_loss']:.3f}, torch {row['torch_final_loss']:.3f}", flush=True)
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
