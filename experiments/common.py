"""Shared pieces of the absl entry points: config validation, workdirs, multi-process setup."""
from __future__ import annotations

import os
from typing import Any, Iterable

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from lipprune.train import compilation, io


def define_job_flags() -> None:
  """Defines ``--config`` (an ml_collections config file, ``--config.x=y`` overrides) and
  ``--workdir``, once per process: jobs import each other's builders, and absl flags may be defined
  only once."""
  if "config" not in flags.FLAGS:
    config_flags.DEFINE_config_file("config", None, "Path to an ml_collections config file.",
                                    lock_config=True)
  if "workdir" not in flags.FLAGS:
    flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and results.")


def start_job(argv) -> tuple:
  """The opening of every job's ``main``: rejects stray arguments, quiets library INFO logs,
  initializes jax.distributed when launched multi-process; returns ``(config, workdir)``."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  quiet_library_logs()
  maybe_initialize_distributed()
  compilation.enable_persistent_cache()  # $LIPPRUNE_COMPILATION_CACHE: a directory, or 'off'
  return flags.FLAGS.config, flags.FLAGS.workdir


def validate_choice(field: str, value: Any, allowed: Iterable[Any]) -> None:
  """Raises ValueError naming ``field``, the bad ``value`` and the allowed values."""
  allowed = list(allowed)
  if value not in allowed:
    raise ValueError(f"config.{field}={value!r} is not valid; expected one of {allowed}")


def validate_positive(field: str, value, allow_zero: bool = False) -> None:
  ok = value >= 0 if allow_zero else value > 0
  if not ok:
    raise ValueError(f"config.{field}={value!r} must be {'>= 0' if allow_zero else '> 0'}")


def validate_range(field: str, value, low, high) -> None:
  if not low <= value <= high:
    raise ValueError(f"config.{field}={value!r} must lie in [{low}, {high}]")


# Fields that change how a run is sliced or logged, never its numbers: a resumed run may change them.
BOOKKEEPING_FIELDS = ("stop_after_steps", "log_every", "checkpoint_every")


def prepare_workdir(workdir: str, config, ignore=BOOKKEEPING_FIELDS) -> None:
  """Creates ``workdir`` and writes ``config.json``. On a rerun the saved config must match, except
  for the ``ignore`` fields (a changed config in a resumed workdir would silently mix two
  experiments)."""
  if not workdir:
    raise ValueError("--workdir is required: the directory for checkpoints, metrics and results")
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, "config.json")
  new = io._jsonable(config)
  if os.path.exists(path):
    old = io.read_json(path)
    if old != new:
      changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and k not in ignore)
      if not changed:
        return
      raise ValueError(
          f"{workdir} holds a run with a different config (fields {changed}); use a new --workdir "
          "or delete the old one")
    return
  if jax.process_index() == 0:
    io.write_json(path, new)


class _DropLibraryInfo(logging.logging.Filter):
  """Keeps INFO lines of lipprune and the experiments; drops the INFO chatter of orbax/jax."""

  def filter(self, record):
    return record.levelno > logging.logging.INFO or "orbax" not in record.pathname


def quiet_library_logs() -> None:
  logging.get_absl_handler().addFilter(_DropLibraryInfo())


def finished_result(workdir: str, filename: str):
  """The saved result of a finished run (``workdir/filename``, read as JSON), or ``None``: a job
  rerun on a finished workdir reports its results again instead of recomputing them."""
  path = os.path.join(workdir, filename)
  if not os.path.exists(path):
    return None
  logging.info("%s is finished: %s", workdir, path)
  return io.read_json(path)


def maybe_initialize_distributed() -> None:
  """Calls ``jax.distributed.initialize()`` when launched as one process of several.

  Detected from the environment: explicit ``JAX_COORDINATOR_ADDRESS`` + ``JAX_NUM_PROCESSES`` +
  ``JAX_PROCESS_ID``; Slurm with more than one task; GKE TPU pods (``TPU_WORKER_HOSTNAMES`` listing
  several workers); or ``LIPPRUNE_DISTRIBUTED=1``, which calls ``jax.distributed.initialize()``
  without arguments so that JAX auto-detects the cluster (a Cloud TPU VM pod slice learns its
  workers from the VM metadata server, not the environment: launch/tpu_vm.sh sets it).
  """
  env = os.environ
  if env.get("LIPPRUNE_DISTRIBUTED") == "1":
    jax.distributed.initialize()
    logging.info("jax.distributed: process %d of %d, %d global devices", jax.process_index(),
                 jax.process_count(), jax.device_count())
    return
  explicit = "JAX_COORDINATOR_ADDRESS" in env and int(env.get("JAX_NUM_PROCESSES", "1")) > 1
  slurm = int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_JOB_ID" in env
  tpu_pod = len([h for h in env.get("TPU_WORKER_HOSTNAMES", "").split(",") if h]) > 1
  if not (explicit or slurm or tpu_pod):
    return
  if explicit:
    jax.distributed.initialize(coordinator_address=env["JAX_COORDINATOR_ADDRESS"],
                               num_processes=int(env["JAX_NUM_PROCESSES"]),
                               process_id=int(env["JAX_PROCESS_ID"]))
  else:
    jax.distributed.initialize()
  logging.info("jax.distributed: process %d of %d, %d global devices", jax.process_index(),
               jax.process_count(), jax.device_count())
