"""Compilation costs: JAX's persistent compilation cache, and a clock for the time spent compiling.

A study (seeds x arms x rounds) compiles the same programs again and again: every seed builds its
own model and train step, and a rerun or a resumed job starts in a fresh process. JAX can keep
compiled executables on disk and reuse them whenever the same program (same HLO, same devices,
same compile options, same jax/jaxlib) is compiled again; `enable_persistent_cache` switches that
on. Entry points call it once at start-up (``experiments.common.start_job``).

Where the cache lives, first match wins:

* ``$LIPPRUNE_COMPILATION_CACHE``: a directory, or ``off`` (also ``0``, ``none``, ``false``) to
  disable the cache;
* ``jax_compilation_cache_dir`` when already set (``$JAX_COMPILATION_CACHE_DIR`` or
  ``jax.config.update``): left as it is;
* ``$XDG_CACHE_HOME/lipprune/jax`` (default ``~/.cache/lipprune/jax``).

A cache hit returns the very executable that was stored, so results do not change. The cache only
grows; delete the directory to reclaim the space (or set ``jax_compilation_cache_max_size``).

`CompileClock` measures the wall time the process spends tracing, lowering and compiling (or loading
from the cache), from JAX's own monitoring events, so that a loop can report compile time apart from
its step rate.
"""
from __future__ import annotations

import os
import threading

import jax
from absl import logging

ENV_VAR = "LIPPRUNE_COMPILATION_CACHE"
_OFF = ("off", "0", "none", "false", "no")
# Programs that compile faster than this are not worth a disk write; the smallest lipprune step
# programs compile in ~0.1-0.3 s on CPU, which a cache hit still beats.
MIN_COMPILE_SECONDS = 0.1


def default_cache_dir() -> str:
  root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(root, "lipprune", "jax")


def _configured_dir() -> str | None:
  return jax.config.jax_compilation_cache_dir


def enable_persistent_cache(directory: str | None = None, *,
                            min_compile_seconds: float = MIN_COMPILE_SECONDS) -> str | None:
  """Turns on JAX's persistent compilation cache; returns its directory (``None``: left off).

  Args:
    directory: where to keep compiled programs; ``None`` follows the rules of the module docstring
      (``$LIPPRUNE_COMPILATION_CACHE``, an already configured ``jax_compilation_cache_dir``, then
      ``~/.cache/lipprune/jax``). ``'off'`` disables it.
    min_compile_seconds: programs compiling faster than this are not stored.
  """
  if directory is None:
    directory = os.environ.get(ENV_VAR) or _configured_dir() or default_cache_dir()
  if str(directory).strip().lower() in _OFF:
    logging.info("persistent compilation cache: off (%s)", ENV_VAR)
    return None
  directory = os.path.abspath(os.path.expanduser(str(directory)))
  try:
    os.makedirs(directory, exist_ok=True)
  except OSError as e:  # a read-only home must not stop a job: it only loses the cache
    logging.warning("persistent compilation cache disabled: cannot create %s (%s)", directory, e)
    return None
  jax.config.update("jax_compilation_cache_dir", directory)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_seconds))
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  logging.info("persistent compilation cache: %s", directory)
  return directory


# The spans JAX reports around the stages of turning a Python function into an executable.
_COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
                   "/jax/core/compile/jaxpr_to_mlir_module_duration",
                   "/jax/core/compile/backend_compile_duration")


class CompileClock:
  """Seconds of wall time spent in tracing/lowering/compiling since this clock was created.

  Listens to JAX's monitoring time spans; nested spans (a jitted function traced inside another)
  are counted once, as the union of the intervals. ``seconds()`` is cumulative: a caller takes the
  difference around the code it measures. Listening costs nothing between compilations.
  """

  def __init__(self):
    self._lock = threading.Lock()
    self._closed = 0.0
    self._open: list[tuple[float, float]] = []
    jax.monitoring.register_event_time_span_listener(self._on_span)

  def _on_span(self, event: str, start_time: float, end_time: float, **_) -> None:
    if event not in _COMPILE_EVENTS:
      return
    with self._lock:
      self._open.append((start_time, end_time))

  def seconds(self) -> float:
    """Total compile seconds so far. Call it between compilations (spans are counted when they
    end, so an outer span still in progress would be missed and later counted in full)."""
    with self._lock:
      spans, self._open = sorted(self._open), []
      end = float("-inf")
      for s, e in spans:
        self._closed += max(0.0, e - max(s, end))
        end = max(end, e)
      return self._closed


_CLOCK: CompileClock | None = None


def compile_clock() -> CompileClock:
  """The process-wide `CompileClock` (created, and registered with JAX, on first use)."""
  global _CLOCK
  if _CLOCK is None:
    _CLOCK = CompileClock()
  return _CLOCK
