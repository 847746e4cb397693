r"""Whole-study wall time against the implementation at an earlier commit, with identical results.

  python -m bench.bench_study                                  # both studies, 2 repeats each
  python -m bench.bench_study --studies=prune_digits_mlp --repeats=3 --baseline=6f4bed3
  python -m bench.bench_study --studies=robust_digits_mlp --set=num_seeds=1   # a quicker variant

For each study (a config under experiments/configs and its job), the same command

  python -m experiments.<job> --config=experiments/configs/<study>.py --workdir=<fresh dir>

runs in a fresh process from two source trees: ``old``, the baseline commit unpacked with ``git
archive`` (6f4bed3: the start of issue 13), and ``new``, this working tree. Repeats alternate
(old, new, then new, old, ...) so that both see the same drift of a shared machine's load. Every
``new`` run gets an empty persistent compilation cache (``$LIPPRUNE_COMPILATION_CACHE``), so the
time is that of a first run (``--cache=warm`` reuses one cache across the new runs instead, the
time of a rerun); the old code has no such cache. The new side of ``prune_digits_mlp`` runs with
``--config.fuse_masks=False``, the baseline's way to mask gradients (`STUDIES`).

Reported per study: the wall seconds of every repeat, the ratio new/old of the medians and of the
fastest repeats, the children's CPU seconds (user + system) and the load average before and after
each run. "identical results" means every result file (prune: results.json; robust: results.csv
and table.json) of the new run equals the old run's, the same floats, not merely close ones; the
metric keys whose metrics.jsonl records differ anywhere are listed (``steps_per_sec`` aside, which
is a timing).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Sequence

from bench import common

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# study: (job, result files compared, overrides of the new side only). The new side of a pruning
# study masks its gradients as the baseline did (fuse_masks=False, lipprune 0.1's product), so
# that its results can equal the baseline's bit for bit; the default select is faster still
# (bench/bench_step_costs.py) but changes the last bits.
STUDIES = {"prune_digits_mlp": ("prune", ("results.json",), ("fuse_masks=False",)),
           "robust_digits_mlp": ("robust", ("results.csv", "table.json"), ())}


def unpack(commit: str, dest: str) -> str:
  """The tree of ``commit`` extracted under ``dest`` (``git archive``); returns its path."""
  root = os.path.join(dest, f"tree_{commit}")
  os.makedirs(root, exist_ok=True)
  archive = subprocess.run(["git", "archive", commit], cwd=REPO, capture_output=True, check=True)
  subprocess.run(["tar", "-x", "-C", root], input=archive.stdout, check=True)
  return root


def run_study(tree: str, study: str, workdir: str, overrides: Sequence[str], cache: str | None):
  """Runs the study's job from ``tree``; returns wall seconds, children's CPU seconds, loads."""
  job = STUDIES[study][0]
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "XLA_FLAGS")}
  env.update(PYTHONPATH=tree, JAX_PLATFORMS=env.get("JAX_PLATFORMS", "cpu"))
  env["LIPPRUNE_COMPILATION_CACHE"] = cache or "off"
  cmd = [sys.executable, "-m", f"experiments.{job}",
         f"--config=experiments/configs/{study}.py", f"--workdir={workdir}",
         *[f"--config.{o}" for o in overrides]]
  load_before = os.getloadavg()
  usage = resource.getrusage(resource.RUSAGE_CHILDREN)
  start = time.perf_counter()
  proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
  seconds = time.perf_counter() - start
  after = resource.getrusage(resource.RUSAGE_CHILDREN)
  if proc.returncode:
    raise RuntimeError(f"{' '.join(cmd)} failed in {tree}:\n{proc.stderr[-3000:]}")
  cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
  return {"seconds": seconds, "cpu_seconds": cpu, "load_before": load_before[0],
          "load_after": os.getloadavg()[0]}


def _metrics_records(workdir: str) -> dict:
  out = {}
  for root, _, files in os.walk(workdir):
    for f in files:
      if f == "metrics.jsonl":
        path = os.path.join(root, f)
        with open(path, encoding="utf-8") as fh:
          rows = [json.loads(line) for line in fh if line.strip()]
        out[os.path.relpath(path, workdir)] = [
            {k: v for k, v in r.items() if k != "steps_per_sec"} for r in rows]
  return out


def compare(study: str, a: str, b: str) -> tuple[list[str], list[str]]:
  """``(result files that differ, metric keys whose records differ anywhere)`` between workdirs
  ``a`` and ``b``; both empty when the two runs computed the same floats."""
  files = []
  for name in STUDIES[study][1]:
    with open(os.path.join(a, name), encoding="utf-8") as fa, \
         open(os.path.join(b, name), encoding="utf-8") as fb:
      if fa.read() != fb.read():
        files.append(name)
  ra, rb = _metrics_records(a), _metrics_records(b)
  keys = set()
  for path in set(ra) | set(rb):
    rows_a, rows_b = ra.get(path, []), rb.get(path, [])
    if len(rows_a) != len(rows_b):
      keys.add(f"{path}: {len(rows_a)} vs {len(rows_b)} records")
      continue
    for x, y in zip(rows_a, rows_b):
      keys |= {k for k in set(x) | set(y) if x.get(k) != y.get(k)}
  return files, sorted(keys)


def bench_study(study: str, old_tree: str, new_tree: str, scratch: str, *, repeats: int,
                overrides: Sequence[str] = (), warm_cache: bool = False,
                keep: bool = False) -> dict:
  runs = {"old": [], "new": []}
  files, keys = set(), set()
  shared_cache = os.path.join(scratch, f"cache_{study}")
  for r in range(repeats):
    order = ("old", "new") if r % 2 == 0 else ("new", "old")
    workdirs = {}
    for impl in order:
      workdirs[impl] = os.path.join(scratch, f"{study}_{impl}_{r}")
      cache = None
      if impl == "new":
        cache = shared_cache if warm_cache else os.path.join(scratch, f"cache_{study}_{r}")
      tree = old_tree if impl == "old" else new_tree
      extra = () if impl == "old" else STUDIES[study][2]
      result = run_study(tree, study, workdirs[impl], (*overrides, *extra), cache)
      runs[impl].append(result)
      print(f"{study} repeat {r} {impl}: {result['seconds']:.1f} s wall, "
            f"{result['cpu_seconds']:.1f} s CPU, load {result['load_before']:.1f} -> "
            f"{result['load_after']:.1f}", flush=True)
    f, k = compare(study, workdirs["old"], workdirs["new"])
    files |= set(f)
    keys |= set(k)
    if not keep:
      for impl in order:
        shutil.rmtree(workdirs[impl], ignore_errors=True)
  old = [x["seconds"] for x in runs["old"]]
  new = [x["seconds"] for x in runs["new"]]
  return {"study": study, "repeats": repeats,
          "old_median_s": statistics.median(old), "new_median_s": statistics.median(new),
          "ratio": statistics.median(new) / statistics.median(old),
          "best_ratio": min(new) / min(old),
          "cpu_ratio": (statistics.median(x["cpu_seconds"] for x in runs["new"])
                        / statistics.median(x["cpu_seconds"] for x in runs["old"])),
          "identical": not files, "metrics_identical": not keys, "differing_files": sorted(files),
          "differing_metrics": sorted(keys), "runs": runs}


COLUMNS = (("study", "study", ""), ("repeats", "repeats", "d"),
           ("old_median_s", "old s (median)", ".1f"), ("new_median_s", "new s (median)", ".1f"),
           ("ratio", "new/old (medians)", ".2f"), ("best_ratio", "new/old (fastest)", ".2f"),
           ("cpu_ratio", "new/old CPU s", ".2f"), ("identical", "identical results", ""),
           ("metrics_identical", "identical metric records", ""))


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="python -m bench.bench_study",
                                   description=__doc__.split("\n\n")[0])
  parser.add_argument("--studies", default=",".join(STUDIES))
  parser.add_argument("--baseline", default="6f4bed3", help="commit of the old implementation")
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--cache", choices=("cold", "warm"), default="cold")
  parser.add_argument("--set", action="append", default=[],
                      help="config override for both sides, e.g. --set=num_seeds=1")
  parser.add_argument("--scratch", default=None, help="directory for workdirs and caches")
  parser.add_argument("--keep", action="store_true", help="keep the workdirs for inspection")
  args = parser.parse_args(argv)
  args.studies = common.parse_subset(parser, "studies", args.studies, STUDIES)
  if args.repeats < 1:
    parser.error("--repeats must be positive")
  return args


def main(argv: Sequence[str] | None = None) -> int:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  scratch = args.scratch or tempfile.mkdtemp(prefix="lipprune_bench_study_")
  common.print_machine_info({"baseline": args.baseline, "cache": args.cache,
                             "overrides": args.set, "scratch": scratch})
  old_tree = unpack(args.baseline, scratch)
  rows = []
  for study in args.studies:
    rows.append(bench_study(study, old_tree, REPO, scratch, repeats=args.repeats,
                            overrides=args.set, warm_cache=args.cache == "warm",
                            keep=args.keep))
  print()
  print(common.format_table(rows, COLUMNS))
  for row in rows:
    if row["differing_files"] or row["differing_metrics"]:
      print(f"{row['study']}: result files that differ: {row['differing_files']}; metric keys "
            f"whose records differ: {row['differing_metrics']}")
  print(f"\nload average at the end: {os.getloadavg()}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
