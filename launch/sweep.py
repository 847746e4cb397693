r"""Expand a small grid into one lipprune run per grid point, each with its own workdir.

  python launch/sweep.py --job=prune --config=experiments/configs/prune_digits_mlp.py \
      --grid "config.arms=global_magnitude:fine_tune,global_magnitude:lr_rewind" \
      --grid "config.seed=0,1,2" --grid "config.prune.fraction=0.2,0.5" \
      --workdir_root=/tmp/sweep [--launcher=local|print|slurm] [--dry_run] -- --config.num_seeds=1

Arguments:
  --job            train | prune | robust | separation | fairness
  --config         the config file every run starts from (checked: every grid key must be a field)
  --grid KEY=V1,V2,...   one axis of the grid (repeatable); the runs are the cartesian product, in
                   the order the axes are given. Values go through unchanged as --config.KEY=V (a
                   scalar given for a tuple field becomes a 1-tuple). Use ';' instead of ',' to
                   separate values that contain commas: --grid "config.lr_boundaries_epochs=(1,2);(3,4)".
  --workdir_root   each run's workdir is WORKDIR_ROOT/<name>, the name built from the grid values,
                   e.g. arms-global_magnitude_fine_tune-1a2b3c__seed-0: stable (the same point
                   always gets the same name, so rerunning the sweep resumes every run) and
                   filesystem-safe (characters outside [A-Za-z0-9._-] become '_' and a short hash
                   of the raw value is appended to keep names unique).
  --launcher       local: run the points one after another here (a failed run does not stop the
                   others; the exit status says whether any failed); print: print one command per
                   line for another launcher (e.g. `| xargs -P 4 -I{} sh -c {}` or a cluster's job
                   array); slurm: submit each point with launch/slurm.sh.
  --launcher_arg   passed to launch/slurm.sh for every point, e.g. --launcher_arg=--gpus_per_node=4
                   (repeatable)
  --python         the interpreter in the commands (default: this one for local, python3 otherwise)
  --dry_run        print the commands that would run and execute nothing
  arguments after -- are passed to every run unchanged.

Replicates: a run does seeds ``seed .. seed + num_seeds - 1``; a grid over ``config.seed`` therefore
needs ``-- --config.num_seeds=1`` (checked) unless the config has one seed, or runs would overlap.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import itertools
import os
import re
import shlex
import subprocess
import sys
from typing import Sequence

JOBS = ("train", "prune", "robust", "separation", "fairness", "joint")
LAUNCHERS = ("local", "print", "slurm")
_KEY = re.compile(r"^(config\.)?[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_MAX_NAME = 200  # well under the 255-byte limit of a path component


class SweepError(ValueError):
  """A bad sweep argument; the message names it."""


def parse_grid(specs: Sequence[str]) -> list[tuple[str, list[str]]]:
  """Parses ``KEY=V1,V2`` axes into ``[(field, [values])]``; ``field`` drops the ``config.``."""
  axes, seen = [], set()
  for spec in specs:
    key, sep, values = spec.partition("=")
    key = key.strip()
    if not sep or not _KEY.match(key):
      raise SweepError(f"malformed --grid {spec!r}: expected KEY=V1,V2,... with KEY like config.seed")
    field = key.removeprefix("config.")
    if field in seen:
      raise SweepError(f"--grid {spec!r}: the key {key} appears in two --grid axes")
    seen.add(field)
    vals = [v.strip() for v in values.split(";" if ";" in values else ",")]
    if not values.strip() or any(not v for v in vals):
      raise SweepError(f"malformed --grid {spec!r}: empty value in {values!r}")
    if len(set(vals)) != len(vals):
      raise SweepError(f"--grid {spec!r}: a value is repeated")
    axes.append((field, vals))
  if not axes:
    raise SweepError("at least one --grid KEY=V1,V2,... is required")
  return axes


def _safe(text: str) -> str:
  """``text`` if it is made of [A-Za-z0-9._-], else its sanitized form plus a hash of ``text``."""
  safe = _UNSAFE.sub("_", text)
  if safe == text and not text.startswith(("-", ".")):
    return text
  return f"{safe.lstrip('-.') or '_'}-{hashlib.sha1(text.encode()).hexdigest()[:6]}"


def run_name(point: Sequence[tuple[str, str]]) -> str:
  """The workdir name of a grid point: ``field-value`` pairs joined by ``__``."""
  name = "__".join(f"{_safe(field)}-{_safe(value)}" for field, value in point)
  if len(name) > _MAX_NAME:
    name = f"{name[:_MAX_NAME - 9]}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
  return name


def expand(axes: list[tuple[str, list[str]]]) -> list[list[tuple[str, str]]]:
  """The cartesian product of the axes, the last axis varying fastest."""
  return [list(zip([f for f, _ in axes], vals)) for vals in itertools.product(*(v for _, v in axes))]


def check_fields(config_path: str, axes: list[tuple[str, list[str]]],
                 passthrough: Sequence[str] = ()) -> None:
  """Raises SweepError if a grid field is not in the config that ``config_path`` builds, or if the
  runs of a grid over ``seed`` would share seeds (each does ``num_seeds`` of them: the config's, or
  the ``--config.num_seeds`` of ``passthrough``)."""
  fields = [f for f, _ in axes]
  path, _, arg = config_path.partition(":")
  if not os.path.isfile(path):
    raise SweepError(f"--config={config_path!r}: no such file (run from the repository root)")
  try:
    spec = importlib.util.spec_from_file_location("_sweep_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config(arg) if arg else module.get_config()
  except ImportError as e:  # ml_collections missing here: the job itself will check
    print(f"sweep.py: not checking the grid keys ({e})", file=sys.stderr)
    return
  for field in fields:
    node = config
    for part in field.split("."):
      if not hasattr(node, "keys") or part not in node.keys():
        raise SweepError(f"--grid key config.{field} is not a field of {path}")
      node = node[part]
  firsts = dict(axes).get("seed")
  if firsts is None or "num_seeds" in fields:
    return
  count = config.get("num_seeds", 1)
  try:
    for arg in passthrough:
      if arg.startswith("--config.num_seeds="):
        count = int(arg.partition("=")[2])
    firsts = sorted(int(v) for v in firsts)
  except ValueError as e:
    raise SweepError(f"--grid config.seed and --config.num_seeds take integers ({e})") from None
  if any(b - a < count for a, b in zip(firsts, firsts[1:])):
    raise SweepError(f"--grid config.seed={','.join(map(str, firsts))}: each run does "
                     f"config.num_seeds={count} seeds from its seed, so runs would repeat seeds; "
                     "add -- --config.num_seeds=1 (or space the seeds num_seeds apart)")


def commands(args, points) -> list[tuple[str, list[str]]]:
  """``[(workdir, argv)]`` for every point, with the launcher's argv."""
  out = []
  for point in points:
    workdir = os.path.join(args.workdir_root, run_name(point))
    overrides = [f"--config.{f}={v}" for f, v in point] + list(args.passthrough)
    if args.launcher == "slurm":
      slurm = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slurm.sh")
      argv = ["bash", os.path.relpath(slurm), f"--job={args.job}", f"--config={args.config}",
              f"--workdir={workdir}", *args.launcher_arg]
      if args.python:
        argv.append(f"--python={args.python}")
      argv += ["--", *overrides]
    else:
      python = args.python or (sys.executable if args.launcher == "local" else "python3")
      argv = [python, "-m", f"experiments.{args.job}", f"--config={args.config}",
              f"--workdir={workdir}", *overrides]
    out.append((workdir, argv))
  return out


def parse_args(argv: Sequence[str]):
  argv = list(argv)
  passthrough = argv[argv.index("--") + 1:] if "--" in argv else []
  argv = argv[:argv.index("--")] if "--" in argv else argv
  parser = argparse.ArgumentParser(
      prog="launch/sweep.py", description=__doc__.split("\n\n")[0],
      formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
  parser.add_argument("--job", required=True, choices=JOBS)
  parser.add_argument("--config", required=True)
  parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...")
  parser.add_argument("--workdir_root", required=True)
  parser.add_argument("--launcher", default="local", choices=LAUNCHERS)
  parser.add_argument("--launcher_arg", action="append", default=[])
  parser.add_argument("--python", default="")
  parser.add_argument("--dry_run", action="store_true")
  args = parser.parse_args(argv)
  args.passthrough = passthrough
  return args, parser


def main(argv: Sequence[str]) -> int:
  args, parser = parse_args(argv)
  try:
    axes = parse_grid(args.grid)
    check_fields(args.config, axes, args.passthrough)
  except SweepError as e:
    parser.error(str(e))  # exits with status 2
  runs = commands(args, expand(axes))
  print(f"sweep.py: {len(runs)} runs", file=sys.stderr)
  if args.dry_run or args.launcher == "print":
    for _, argv_ in runs:
      print(shlex.join(argv_))
    return 0
  failed = []
  for i, (workdir, argv_) in enumerate(runs):
    print(f"sweep.py: [{i + 1}/{len(runs)}] {shlex.join(argv_)}", file=sys.stderr, flush=True)
    if subprocess.call(argv_) != 0:
      failed.append(workdir)
  for workdir in failed:
    print(f"sweep.py: FAILED {workdir}", file=sys.stderr)
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
