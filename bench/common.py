"""Timing helpers shared by the benchmarks: warmup, repeated timing with medians, tables, ratios.

A benchmark wraps each contender in a ``run(n)`` callable that performs ``n`` steps and returns only
once their results are materialized (``jax.block_until_ready`` for JAX; PyTorch on CPU is
synchronous). `measure_interleaved` warms every contender up first (so JAX compilation is never
timed), then alternates their timed repeats: on a shared machine whose load drifts, every contender
sees the same drift instead of one of them getting the quiet minute.

Throughput is ``examples_per_step * steps / median(repeat seconds)``; the median, not the mean,
because a single preempted repeat on a busy machine would otherwise drag the number down.
`best_throughput` uses the fastest repeat instead: other jobs can only add time, so on a shared
machine the minimum is the least disturbed estimate (the reasoning of Python's ``timeit``).
"""
from __future__ import annotations

import datetime
import importlib
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np


def optional_import(name: str):
  """The module ``name``, or None when it is not installed (bench-only dependencies)."""
  try:
    return importlib.import_module(name)
  except ImportError:
    return None


def import_torch():
  """torch for a benchmark, or None when absent; sets ``OMP_WAIT_POLICY=PASSIVE`` first.

  libgomp reads the policy once, when torch loads it. Busy-waiting OpenMP workers collapse when the
  cores are shared (a ResNet-20 step measured 2.3 s with the default policy and 0.36 s with PASSIVE
  at load average 6 on 2 cores), which would measure the neighbours, not the step; export another
  value to override.
  """
  os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
  return optional_import("torch")


def missing_dependency_message(name: str, requirement_file: str = "requirements-bench.txt") -> str:
  return (f"{name} is not installed; this benchmark needs it. Install the bench dependencies with "
          f"`pip install -r {requirement_file}` and rerun.")


def time_calls(run: Callable[[int], Any], *, steps: int, repeats: int,
               clock: Callable[[], float] = time.perf_counter) -> list[float]:
  """Wall seconds of ``repeats`` calls ``run(steps)``; ``run`` must block until its work is done."""
  if steps <= 0 or repeats <= 0:
    raise ValueError(f"steps and repeats must be positive, got steps={steps}, repeats={repeats}")
  seconds = []
  for _ in range(repeats):
    start = clock()
    run(steps)
    seconds.append(clock() - start)
  return seconds


def measure_interleaved(runs: Mapping[str, Callable[[int], Any]], *, steps: int, warmup: int,
                        repeats: int, clock: Callable[[], float] = time.perf_counter,
                        shuffle_seed: int | None = None) -> dict[str, list[float]]:
  """Warms each ``runs[name]`` up with ``warmup`` steps, then times ``repeats`` rounds.

  Each round times ``run(steps)`` once per contender, in the given order, so the contenders'
  repeats alternate; with ``shuffle_seed`` in a new random order every round (so that none always
  runs right after another), for `paired_ratio`. Returns ``{name: [seconds of repeat r for r in
  range(repeats)]}``.
  """
  if warmup < 0 or repeats < 1:
    raise ValueError(f"warmup must be >= 0 and repeats >= 1, got warmup={warmup}, "
                     f"repeats={repeats}")
  for run in runs.values():
    if warmup:
      run(warmup)
  order = list(runs)
  rng = None if shuffle_seed is None else np.random.default_rng(shuffle_seed)
  seconds: dict[str, list[float]] = {name: [] for name in runs}
  for _ in range(repeats):
    for i in (range(len(order)) if rng is None else rng.permutation(len(order))):
      seconds[order[i]].extend(time_calls(runs[order[i]], steps=steps, repeats=1, clock=clock))
  return seconds


def paired_ratio(seconds: Sequence[float], base: Sequence[float], *, level: float = 0.95,
                 resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
  """``(median, low, high)`` of the per-round ratios ``seconds[r] / base[r]``: their median and a
  percentile-bootstrap interval of it at ``level``. Both contenders of a round ran within a second
  of each other, so the slow changes of a shared machine's load cancel in the ratio, which they
  do not in the ratio of two medians."""
  ratios = np.asarray(seconds, float) / np.asarray(base, float)
  if ratios.ndim != 1 or ratios.size < 2:
    raise ValueError(f"need >= 2 paired rounds of equal length, got {np.shape(seconds)} and "
                     f"{np.shape(base)}")
  rng = np.random.default_rng(seed)
  medians = np.median(rng.choice(ratios, size=(resamples, ratios.size)), axis=1)
  tail = 100 * (1 - level) / 2
  return (float(np.median(ratios)), float(np.percentile(medians, tail)),
          float(np.percentile(medians, 100 - tail)))


def throughput(examples_per_step: int, steps: int, seconds: Sequence[float]) -> float:
  """Examples per second of the median repeat: ``examples_per_step * steps / median(seconds)``."""
  median = statistics.median(seconds)
  if median <= 0:
    raise ValueError(f"non-positive median time {median}")
  return examples_per_step * steps / median


def best_throughput(examples_per_step: int, steps: int, seconds: Sequence[float]) -> float:
  """Examples per second of the fastest repeat, the least disturbed one on a shared machine."""
  best = min(seconds)
  if best <= 0:
    raise ValueError(f"non-positive time {best}")
  return examples_per_step * steps / best


def parse_subset(parser, flag: str, text: str, allowed) -> list[str]:
  """The comma-separated names of ``text``; ``parser.error`` (exit 2) unless a non-empty subset
  of ``allowed``."""
  names = [n.strip() for n in text.split(",") if n.strip()]
  if not names or set(names) - set(allowed):
    parser.error(f"--{flag}={text!r}: expected a comma-separated subset of {sorted(allowed)}")
  return names


def ratio(numerator: float, denominator: float) -> float:
  """``numerator / denominator``, NaN when the denominator is zero."""
  return numerator / denominator if denominator else float("nan")


def format_table(rows: Sequence[Mapping[str, Any]],
                 columns: Sequence[tuple[str, str, str]]) -> str:
  """A plain-text table; ``columns`` are ``(key, header, format spec)``, e.g. ``('x', 'ex/s', ',.0f')``.

  Numbers are right-aligned, text left-aligned; the output is also valid Markdown.
  """
  header = [h for _, h, _ in columns]
  body = [[format(row[key], spec) for key, _, spec in columns] for row in rows]
  widths = [max(len(c) for c in col) for col in zip(header, *body)]
  numeric = [all(isinstance(row[key], (int, float)) for row in rows) for key, _, _ in columns]

  def line(cells):
    padded = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)]
    return "| " + " | ".join(padded) + " |"

  rule = "|" + "|".join(("-" * (w + 1) + ":") if num else ("-" * (w + 2))
                        for w, num in zip(widths, numeric)) + "|"
  return "\n".join([line(header), rule] + [line(r) for r in body])


def machine_info() -> dict[str, Any]:
  """What a benchmark number depends on: host, CPU count, load, Python, date (UTC)."""
  try:
    load = tuple(round(v, 2) for v in os.getloadavg())
  except OSError:
    load = None
  return {
      "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
      "platform": platform.platform(),
      "processor": _cpu_model(),
      "cpu_count": os.cpu_count(),
      "loadavg_1_5_15": load,
      "python": sys.version.split()[0],
  }


def _cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


def print_machine_info(extra: Mapping[str, Any] | None = None, file=None) -> None:
  info = {**machine_info(), **(extra or {})}
  for key, value in info.items():
    print(f"{key}: {value}", file=file or sys.stdout)
