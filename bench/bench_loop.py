r"""The training loop per dispatch mode against the loop of 6f4bed3, and attack loops rolled vs
unrolled; writes the table of measured choices that lipprune uses by default.

  python -m bench.bench_loop                         # both parts, every model, print only
  python -m bench.bench_loop --write_table           # ... and rewrite lipprune/train/loop_modes.py
  python -m bench.bench_loop --part=attack --models=cnn --repeats=3

Training loop (``--part=loop``). Each contender is one call of a loop function that trains
``--steps`` steps from the same initial state with the same key, the way a study calls it once per
round: ``old`` is ``lipprune/train/loop.py`` as of commit 6f4bed3 (host batches, one dispatch
per step, metrics summed eagerly; read with ``git show``), the others are today's
``lipprune.train.train`` with ``loop_mode`` and ``steps_per_dispatch`` forced (``step``: one step
per dispatch, ``scan-k``: a rolled loop of up to k steps, ``unroll-k``: k steps unrolled; all with
the data on the device). Models: ``mlp`` is LeNet-300-100 on digits-shaped data (1437 examples of
8x8x1, batch 64: the setting of experiments/configs/prune_digits_mlp.py), ``resnet20`` is
ResNet-20 on 512 CIFAR-shaped examples, batch 32. SGD with momentum 0.9 and weight decay 1e-4.
Every contender's final state is compared with the old loop's, bit for bit.

Attacks (``--part=attack``). l_inf PGD-10 (eps 0.1, step 0.025, uniform start, cross-entropy)
through ``lipprune.robust.attacks.maximize`` with ``unroll=False`` and ``unroll=True`` on a batch
of 128 MNIST-shaped inputs, for ``mlp`` (LeNet-300-100) and ``cnn`` (yang_cnn1); the adversarial
points of the two are compared bit for bit.

Seeds (``--part=seeds``). ``lipprune.train.train_seeds`` with ``--seeds`` runs of the loop models
above, ``vmapped=False`` (one after the other) against ``vmapped=True`` (one vmapped program); the
parameters agree within float rounding (printed: the largest difference over a parameter array,
relative to that array's largest magnitude).

Repeats alternate between contenders (`bench.common.measure_interleaved`, compilation in the
untimed warmup); the table gives the median and the fastest repeat and the machine load.
``--write_table`` records, per (backend, family), the fastest contender whose numbers equal the old
loop's (and unrolled attacks where they are faster with identical points) in
``lipprune/train/loop_modes.py``, and vmapped seeds where they are faster; a loop mode that changes
a single bit is never chosen.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import pprint
import subprocess
import sys
import tempfile
from typing import Callable, Sequence

import numpy as np

from bench import common

BASELINE = "6f4bed3"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLE_PATH = os.path.join(REPO, "lipprune", "train", "loop_modes.py")
# name: (registry name, model kwargs, family, examples, input shape, batch, default steps)
LOOP_MODELS = {
    "mlp": ("mlp", {"hidden": (300, 100)}, "dense", 1437, (8, 8, 1), 64, 660),
    "resnet20": ("resnet20", {}, "conv", 512, (32, 32, 3), 32, 8),
}
LOOP_MODES = {"dense": ("step", "scan-16", "scan-64", "scan-256", "unroll-4"),
              "conv": ("step", "unroll-4")}
ATTACK_MODELS = {"mlp": ("mlp", "dense", 20), "cnn": ("yang_cnn1", "conv", 2)}
TABLES = {
    "TRAIN_LOOP": "(backend, family) -> {'mode', 'k', and the measurement behind the choice}",
    "ATTACK_UNROLL": "(backend, family) -> whether fixed-length attack/ascent loops are unrolled",
    "SEEDS_VMAP": "(backend, family) -> whether lipprune.train.train_seeds vmaps by default",
}


def old_loop_module(commit: str = BASELINE):
  """``lipprune/train/loop.py`` at ``commit``, imported under another name; ``None`` without git."""
  try:
    source = subprocess.run(["git", "show", f"{commit}:lipprune/train/loop.py"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout
  except (OSError, subprocess.CalledProcessError):
    return None
  path = os.path.join(tempfile.mkdtemp(prefix="lipprune_old_loop_"), "old_loop.py")
  with open(path, "w", encoding="utf-8") as f:
    f.write(source)
  spec = importlib.util.spec_from_file_location("lipprune_old_loop", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _parse_mode(label: str) -> tuple[str | None, int | None]:
  mode, _, k = label.partition("-")
  return mode, (int(k) if k else None)


def loop_contenders(name: str, modes: Sequence[str], old=None, seed: int = 0):
  """``{label: run(n)}`` for model ``name`` (each run trains n steps from the same state) and a
  ``finals`` dict that receives each contender's last final state."""
  import jax
  from lipprune import models
  from lipprune import train as train_lib

  registry_name, kwargs, _, n, shape, batch, _ = LOOP_MODELS[name]
  rng = np.random.default_rng(seed)
  data = {"x": rng.random((n, *shape), dtype=np.float32),
          "y": rng.integers(0, 10, n).astype(np.int32)}
  model = models.create(registry_name, 10, **kwargs)
  params, model_state = model.init(jax.random.key(seed), data["x"][:1])
  tx = train_lib.direction("sgd", momentum=0.9, weight_decay=1e-4)
  sched = train_lib.schedule("step", base_lr=0.05, total_steps=1000, boundaries=(500,))
  state0 = train_lib.TrainState.create(params, model_state, tx)
  step = jax.jit(train_lib.make_train_step(train_lib.cross_entropy(model), tx, sched))
  key = jax.random.key(seed + 1)
  finals = {}

  def make(label: str) -> Callable[[int], None]:
    def run(steps: int) -> None:
      kw = dict(batch_size=batch, num_steps=steps, key=key, log_every=steps)
      if label == "old":
        state = old.train(state0, step, data, **kw)
      else:
        mode, k = _parse_mode(label)
        state = train_lib.train(state0, step, data, loop_mode=mode, steps_per_dispatch=k,
                                device_data=True, **kw)
      finals[label] = jax.block_until_ready(state)
    return run

  labels = (["old"] if old is not None else []) + list(modes)
  return {label: make(label) for label in labels}, finals


def same_state(a, b) -> bool:
  import jax
  return all(np.array_equal(np.asarray(x), np.asarray(y))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def bench_loop_model(name: str, *, steps: int | None = None, repeats: int = 5, warmup_steps=None,
                     modes: Sequence[str] | None = None, old=None) -> list[dict]:
  _, _, fam, _, _, batch, default_steps = LOOP_MODELS[name]
  steps = steps or default_steps
  runs, finals = loop_contenders(name, modes or LOOP_MODES[fam], old)
  seconds = common.measure_interleaved(runs, steps=steps, warmup=warmup_steps or steps,
                                       repeats=repeats)
  reference = "old" if "old" in runs else "step"
  rows = []
  for label, secs in seconds.items():
    rows.append({
        "model": name, "family": fam, "contender": label, "steps": steps,
        "steps_per_s": steps / float(np.median(secs)), "best_steps_per_s": steps / min(secs),
        "seconds": secs, "identical": same_state(finals[label], finals[reference]),
    })
  ref = next(r for r in rows if r["contender"] == reference)
  for r in rows:
    r["ratio"] = r["steps_per_s"] / ref["steps_per_s"]
    r["best_ratio"] = r["best_steps_per_s"] / ref["best_steps_per_s"]
  return rows


def attack_contenders(name: str, batch: int = 128, seed: int = 0):
  import jax
  import jax.numpy as jnp
  import optax
  from lipprune import models
  from lipprune.robust import attacks
  import lipprune.robust.models  # noqa: F401  (registers yang_cnn1)

  model = models.create(ATTACK_MODELS[name][0], 10)
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.random((batch, 28, 28, 1), dtype=np.float32))
  y = jnp.asarray(rng.integers(0, 10, batch).astype(np.int32))
  params, state = model.init(jax.random.key(seed), x[:1])
  outputs = {}

  def make(unroll: bool):
    def attack(p, x, y, key):
      def objective(z):
        logits = model.apply(p, state, z, train=False)[0]
        return optax.softmax_cross_entropy_with_integer_labels(logits, y)
      return attacks.maximize(objective, x, key, eps=0.1, step_size=0.025, steps=10,
                              unroll=unroll)
    fn = jax.jit(attack)

    def run(n: int) -> None:
      for i in range(n):
        out = fn(params, x, y, jax.random.key(i))
      outputs[unroll] = jax.block_until_ready(out)
    return run

  return {"rolled": make(False), "unrolled": make(True)}, outputs


def bench_attack_model(name: str, *, repeats: int = 5, attacks_per_repeat: int | None = None):
  _, fam, default = ATTACK_MODELS[name]
  n = attacks_per_repeat or default
  runs, outputs = attack_contenders(name)
  seconds = common.measure_interleaved(runs, steps=n, warmup=1, repeats=repeats)
  rolled, unrolled = seconds["rolled"], seconds["unrolled"]
  return {"model": name, "family": fam, "attacks": n,
          "rolled_ex_per_s": common.throughput(128, n, rolled),
          "unrolled_ex_per_s": common.throughput(128, n, unrolled),
          "ratio": float(np.median(rolled) / np.median(unrolled)),
          "best_ratio": min(rolled) / min(unrolled),
          "identical": bool(np.array_equal(np.asarray(outputs[False]), np.asarray(outputs[True]))),
          "rolled_seconds": rolled, "unrolled_seconds": unrolled}


def seed_contenders(name: str, seeds: int):
  import jax
  from lipprune import models
  from lipprune import train as train_lib

  registry_name, kwargs, _, n, shape, batch, _ = LOOP_MODELS[name]
  rng = np.random.default_rng(0)
  data = {"x": rng.random((n, *shape), dtype=np.float32),
          "y": rng.integers(0, 10, n).astype(np.int32)}
  model = models.create(registry_name, 10, **kwargs)
  tx = train_lib.direction("sgd", momentum=0.9, weight_decay=1e-4)
  sched = train_lib.schedule("step", base_lr=0.05, total_steps=1000, boundaries=(500,))
  step = jax.jit(train_lib.make_train_step(train_lib.cross_entropy(model), tx, sched))
  states = [train_lib.TrainState.create(*model.init(jax.random.key(s), data["x"][:1]), tx)
            for s in range(seeds)]
  keys = [jax.random.key(100 + s) for s in range(seeds)]
  finals = {}

  def make(vmapped: bool):
    def run(steps: int) -> None:
      out = train_lib.train_seeds(states, step, data, keys=keys, vmapped=vmapped,
                                  batch_size=batch, num_steps=steps, log_every=steps)
      finals[vmapped] = jax.block_until_ready(out)
    return run

  return {"sequential": make(False), "vmapped": make(True)}, finals


def bench_seeds_model(name: str, *, seeds: int = 3, steps: int | None = None, repeats: int = 5):
  import jax
  fam, default = LOOP_MODELS[name][2], LOOP_MODELS[name][6]
  steps = steps or default
  runs, finals = seed_contenders(name, seeds)
  seconds = common.measure_interleaved(runs, steps=steps, warmup=steps, repeats=repeats)
  # Per parameter array: the largest difference relative to the array's largest magnitude.
  diffs = [float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / (np.max(np.abs(a)) + 1e-30))
           for a, b in zip(jax.tree.leaves([s.params for s in finals[False]]),
                           jax.tree.leaves([s.params for s in finals[True]]))]
  seq, vm = seconds["sequential"], seconds["vmapped"]
  return {"model": name, "family": fam, "seeds": seeds, "steps": steps,
          "ratio": float(np.median(seq) / np.median(vm)), "best_ratio": min(seq) / min(vm),
          "max_rel_diff": max(diffs), "sequential_seconds": seq, "vmapped_seconds": vm}


def choose(loop_rows: list[dict], attack_rows: list[dict], seed_rows: list[dict], backend: str,
           info: dict) -> dict:
  """The table entries this run measured: per family the fastest contender identical to the old
  loop (median throughput); unrolled attacks where faster (> 5%) with identical points; vmapped
  seeds where faster (> 5%)."""
  tables = {}
  for fam in sorted({r["family"] for r in loop_rows}):
    rows = [r for r in loop_rows if r["family"] == fam and r["contender"] != "old"]
    good = [r for r in rows if r["identical"]]
    if not good:
      continue
    best = max(good, key=lambda r: r["steps_per_s"])
    mode, k = _parse_mode(best["contender"])
    step_rate = next((r["steps_per_s"] for r in rows if r["contender"] == "step"), None)
    tables.setdefault("TRAIN_LOOP", {})[(backend, fam)] = {
        "mode": mode, "k": k or 1, "model": best["model"],
        "vs_old": round(best["ratio"], 2),
        "vs_step": round(best["steps_per_s"] / step_rate, 2) if step_rate else None,
        "measured": info["date"], "load": info["loadavg_1_5_15"]}
  for r in attack_rows:
    tables.setdefault("ATTACK_UNROLL", {})[(backend, r["family"])] = bool(
        r["identical"] and r["ratio"] > 1.05)
  for r in seed_rows:
    tables.setdefault("SEEDS_VMAP", {})[(backend, r["family"])] = bool(r["ratio"] > 1.05)
  return tables


def write_table(tables: dict, path: str = TABLE_PATH) -> None:
  """Rewrites the tables of ``path`` named in ``tables`` (TRAIN_LOOP, ATTACK_UNROLL, SEEDS_VMAP),
  keeping the entries of the other backends and the tables this run did not measure."""
  from lipprune.train import loop_modes  # pylint: disable=g-import-not-at-top
  header = loop_modes.__doc__.strip()
  blocks = [f'"""{header}\n"""\n']
  for name, comment in TABLES.items():
    table = {**getattr(loop_modes, name, {}), **tables.get(name, {})}
    blocks.append(f"# {comment}\n{name} = {pprint.pformat(table, width=100, sort_dicts=True)}\n")
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(blocks))


LOOP_COLUMNS = (("model", "model", ""), ("contender", "loop", ""), ("steps", "steps", "d"),
                ("steps_per_s", "steps/s (median)", ",.0f"), ("ratio", "vs ref", ".2f"),
                ("best_ratio", "vs ref, best repeats", ".2f"), ("identical", "bit-identical", ""))
ATTACK_COLUMNS = (("model", "model", ""), ("rolled_ex_per_s", "rolled ex/s", ",.0f"),
                  ("unrolled_ex_per_s", "unrolled ex/s", ",.0f"),
                  ("ratio", "unrolled/rolled speed", ".2f"), ("best_ratio", "best repeats", ".2f"),
                  ("identical", "same points", ""))


SEED_COLUMNS = (("model", "model", ""), ("seeds", "seeds", "d"), ("steps", "steps", "d"),
                ("ratio", "vmapped/sequential speed", ".2f"), ("best_ratio", "best repeats", ".2f"),
                ("max_rel_diff", "max param diff / max |param|", ".1e"))


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="python -m bench.bench_loop",
                                   description=__doc__.split("\n\n")[0])
  parser.add_argument("--part", default="loop,attack,seeds",
                      help="comma-separated subset of loop, attack, seeds")
  parser.add_argument("--seeds", type=int, default=3, help="runs vmapped in the seeds part")
  parser.add_argument("--models", default=None,
                      help=f"subset of {sorted(LOOP_MODELS)} (loop) and {sorted(ATTACK_MODELS)} "
                      "(attack)")
  parser.add_argument("--modes", default=None,
                      help="loop contenders, e.g. step,scan-64,unroll-4 (default per family)")
  parser.add_argument("--steps", type=int, default=None, help="steps per loop call")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--write_table", action="store_true",
                      help=f"rewrite {os.path.relpath(TABLE_PATH, REPO)} from this run")
  args = parser.parse_args(argv)
  args.part = common.parse_subset(parser, "part", args.part, ("loop", "attack", "seeds"))
  if args.models is not None:
    args.models = common.parse_subset(parser, "models", args.models,
                                      set(LOOP_MODELS) | set(ATTACK_MODELS))
  args.modes = None if args.modes is None else [m for m in args.modes.split(",") if m]
  for label in args.modes or ():
    mode, k = _parse_mode(label)
    if mode not in ("step", "scan", "unroll") or (mode != "step" and not k):
      parser.error(f"--modes: {label!r} is not step, scan-K or unroll-K")
  if args.repeats < 1 or (args.steps is not None and args.steps < 1):
    parser.error("--repeats and --steps must be positive")
  return args


def main(argv: Sequence[str] | None = None) -> int:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  import jax
  info = common.machine_info()
  common.print_machine_info({"jax": f"{jax.__version__} devices={jax.devices()}"})
  loop_rows, attack_rows, seed_rows = [], [], []
  if "loop" in args.part:
    old = old_loop_module()
    if old is None:
      print(f"git show {BASELINE} failed: comparing with loop_mode='step' instead", file=sys.stderr)
    for name in [m for m in (args.models or LOOP_MODELS) if m in LOOP_MODELS]:
      rows = bench_loop_model(name, steps=args.steps, repeats=args.repeats, modes=args.modes,
                              old=old)
      for r in rows:
        print(f"{name} {r['contender']}: seconds {[round(s, 3) for s in r['seconds']]}",
              flush=True)
      loop_rows += rows
    print()
    print(common.format_table(loop_rows, LOOP_COLUMNS))
  if "attack" in args.part:
    for name in [m for m in (args.models or ATTACK_MODELS) if m in ATTACK_MODELS]:
      row = bench_attack_model(name, repeats=args.repeats)
      print(f"{name} PGD-10: rolled {[round(s, 3) for s in row['rolled_seconds']]}, unrolled "
            f"{[round(s, 3) for s in row['unrolled_seconds']]}", flush=True)
      attack_rows.append(row)
    print()
    print(common.format_table(attack_rows, ATTACK_COLUMNS))
  if "seeds" in args.part:
    for name in [m for m in (args.models or LOOP_MODELS) if m in LOOP_MODELS]:
      row = bench_seeds_model(name, seeds=args.seeds, steps=args.steps, repeats=args.repeats)
      print(f"{name} {args.seeds} seeds: sequential "
            f"{[round(s, 3) for s in row['sequential_seconds']]}, vmapped "
            f"{[round(s, 3) for s in row['vmapped_seconds']]}", flush=True)
      seed_rows.append(row)
    print()
    print(common.format_table(seed_rows, SEED_COLUMNS))
  print(f"\nload average at the end: {os.getloadavg()}")
  if args.write_table:
    tables = choose(loop_rows, attack_rows, seed_rows, jax.default_backend(), info)
    write_table(tables)
    print(f"wrote {TABLE_PATH}: {tables}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
