"""Shared pieces of the absl entry points: flags, config validation, workdirs, multi-process setup.

Every job keeps one workdir contract (docs in /work/shared/DESIGN.md, "Workdirs"):

1. validate the config (`validate_*`) and check the workdir read-only (`check_workdir`): a bad field,
   a workdir that is a file or not writable, or a workdir holding a different experiment fails here;
2. load the data and check every data-dependent size (the job's own checks);
3. `open_workdir`: take the workdir's lock, sweep orphaned temporary files, write ``config.json``;
4. compute. Nothing is written to the workdir before step 3, so a run that fails in steps 1-2 never
   blocks its corrected rerun.

The lock taken in step 3 is released when the job function decorated with `workdir_job` returns or
raises (or when the process ends, for a call outside any such function).

A workdir is a local path or a URI of a file system `etils.epath` supports (``gs://bucket/run``):
every file of it goes through `lipprune.train.io`, and the lock is an object created only if
absent where there is no ``flock`` (`_object_lock`).
"""
from __future__ import annotations

import atexit
import datetime
import errno
import fcntl
import functools
import json
import math
import os
import secrets
import socket
import sys
import threading
import time
from typing import Any, Iterable

import jax
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from lipprune.data import loader
from lipprune.train import compilation, io

LOCK_NAME = ".lock"


def define_job_flags() -> None:
  """Defines ``--config`` (an ml_collections config file, ``--config.x=y`` overrides) and
  ``--workdir``, once per process: a job may import another (joint composes prune and robust), and
  absl flags may be defined only once."""
  if "config" not in flags.FLAGS:
    config_flags.DEFINE_config_file("config", None, "Path to an ml_collections config file.",
                                    lock_config=True)
  if "workdir" not in flags.FLAGS:
    flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and results.")


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing (``app.run(main, flags_parser=common.parse_flags)``), except that
  ``--config.no_such_field=1`` exits with status 1 and a message naming the field and the fields the
  config has (ml_collections raises a bare ``AttributeError`` for it)."""
  try:
    return app.parse_flags_with_usage(argv)
  except (AttributeError, KeyError):
    spec = _flag_value(argv, "config")
    if spec is None or "config" not in flags.FLAGS:
      raise
    problems = unknown_overrides(flags.FLAGS["config"].parser.parse(spec), _overrides(argv))
    if not problems:
      raise
    sys.stderr.write("FATAL Flags parsing error: " + "; ".join(problems) + "\n")
    sys.exit(1)


def _flag_value(argv: list[str], name: str) -> str | None:
  for i, arg in enumerate(argv):
    for prefix in (f"--{name}=", f"-{name}="):
      if arg.startswith(prefix):
        return arg[len(prefix):]
    if arg in (f"--{name}", f"-{name}") and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _overrides(argv: list[str]) -> list[str]:
  """The field paths of ``--config.a.b=v`` / ``--noconfig.a`` arguments."""
  out = []
  for arg in argv:
    name = arg.lstrip("-").split("=", 1)[0]
    for prefix in ("config.", "noconfig."):
      if name.startswith(prefix):
        out.append(name[len(prefix):])
  return out


def unknown_overrides(config, paths: Iterable[str]) -> list[str]:
  """One message per dotted field path of ``paths`` that ``config`` lacks, naming the known fields
  at the level where the path leaves the config."""
  problems = []
  for path in paths:
    node, walked = config, []
    for part in path.split("."):
      if not hasattr(node, "keys") or part not in node:
        known = sorted(node.keys()) if hasattr(node, "keys") else []
        where = "the config" if not walked else f"config.{'.'.join(walked)}"
        hint = "" if walked else renamed_field_hint(part)
        problems.append(f"--config.{path}: {where} has no field {part!r}{hint}; known fields: {known}")
        break
      node, walked = node[part], walked + [part]
  return problems


def start_job(argv) -> tuple:
  """The opening of every job's ``main``: rejects stray arguments, quiets library INFO logs,
  initializes jax.distributed when launched multi-process; returns ``(config, workdir)``."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  quiet_library_logs()
  maybe_initialize_distributed()
  compilation.enable_persistent_cache()  # $LIPPRUNE_COMPILATION_CACHE: a directory, or 'off'
  return flags.FLAGS.config, flags.FLAGS.workdir


# ---------------------------------------------------------------------------------------------
# Config values.


def validate_choice(field: str, value: Any, allowed: Iterable[Any]) -> None:
  """Raises ValueError naming ``field``, the bad ``value`` and the allowed values."""
  allowed = list(allowed)
  if value not in allowed:
    raise ValueError(f"config.{field}={value!r} is not valid; expected one of {allowed}")


def _check_number(field: str, value, integer: bool) -> None:
  kind = "an integer" if integer else "a finite number"
  ok_type = (int, np.integer) if integer else (int, float, np.integer, np.floating)
  if isinstance(value, (bool, np.bool_)) or not isinstance(value, ok_type):
    raise ValueError(f"config.{field}={value!r} must be {kind}")
  if not math.isfinite(value):
    raise ValueError(f"config.{field}={value!r} must be {kind}")


def validate_positive(field: str, value, allow_zero: bool = False, integer: bool = False) -> None:
  """``value`` is a finite number (an int if ``integer``) that is > 0 (>= 0 with ``allow_zero``)."""
  _check_number(field, value, integer)
  ok = value >= 0 if allow_zero else value > 0
  if not ok:
    raise ValueError(f"config.{field}={value!r} must be {'>= 0' if allow_zero else '> 0'}")


def validate_range(field: str, value, low, high, high_open: bool = False) -> None:
  """``value`` is a finite number in ``[low, high]`` (``[low, high)`` with ``high_open``)."""
  _check_number(field, value, integer=False)
  if not (low <= value < high if high_open else low <= value <= high):
    raise ValueError(f"config.{field}={value!r} must lie in [{low}, {high}{')' if high_open else ']'}")


# Replicates: every job names them ``seed`` (the first) and ``num_seeds`` (how many); the fields that
# named them before fail with a message naming their replacement.
RENAMED_FIELDS = {
    "seeds": "config.seed (the first seed) and config.num_seeds (how many: seeds seed, seed+1, ..., "
             "seed+num_seeds-1)",
    "num_datasets": "config.num_seeds (one data set per seed: seeds seed, ..., seed+num_seeds-1)",
}


# Fields added after workdirs were first written, with the value an older workdir's run used: such a
# workdir resumes with that value and is never taken for a run made with the new default.
ADDED_FIELDS = {"fuse_masks": (False, "0.2")}


def added_field_hint(field: str) -> str:
  """A hint for an `ADDED_FIELDS` field that an older workdir's ``config.json`` lacks, else ``''``."""
  if field not in ADDED_FIELDS:
    return ""
  value, version = ADDED_FIELDS[field]
  return (f" (config.{field} is new in lipprune {version}; this workdir's run was made before, "
          f"with what is now {field}={value}: resume it with --config.{field}={value})")


def renamed_field_hint(field: str) -> str:
  """`` (renamed: ...)`` for a top-level field of `RENAMED_FIELDS`, else ``''``."""
  new = RENAMED_FIELDS.get(field)
  return f" (config.{field} was renamed: use {new})" if new else ""


def replicate_seeds(config) -> list[int]:
  """The seeds of a job's replicates, ``seed .. seed + num_seeds - 1``, after checking both fields
  and that the config uses none of the old names (`RENAMED_FIELDS`)."""
  for old in RENAMED_FIELDS:
    if old in config:
      raise ValueError(f"config.{old} was renamed: use {RENAMED_FIELDS[old]}")
  validate_positive("seed", config.seed, allow_zero=True, integer=True)
  validate_positive("num_seeds", config.num_seeds, integer=True)
  return list(range(config.seed, config.seed + config.num_seeds))


def validate_fraction(field: str, value) -> None:
  """A fraction of weights to prune or a target sparsity: in ``[0, 1)`` (1 would prune all)."""
  validate_range(field, value, 0.0, 1.0, high_open=True)


def data_kwargs(config) -> dict:
  """The ``lipprune.data.load`` keyword arguments of the config's location fields: ``data_dir``,
  ``download`` and, for the tabular datasets (the only ones with a checksum), ``verify``."""
  kwargs = dict(data_dir=config.get("data_dir") or None, download=config.get("download", False))
  if config.get("dataset") in loader.TABULAR_NAMES:
    kwargs["verify"] = config.get("verify", True)
  return kwargs


# ---------------------------------------------------------------------------------------------
# Workdirs.

# Where the data come from and how a run is sliced and logged, never its numbers: a rerun on the same
# workdir may change them. Every other field is "what is computed" and must match the saved config.
BOOKKEEPING_FIELDS = ("data_dir", "download", "verify", "stop_after_steps", "log_every",
                      "checkpoint_every", "eval_every", "stream_threads", "stream_prefetch")


class WorkdirError(ValueError):
  """The workdir cannot be used: not a directory, not writable, or holding another experiment."""


class WorkdirLockedError(RuntimeError):
  """Another live process holds the workdir's lock."""


def _flat(tree, prefix="") -> dict:
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict) and v:
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def config_differences(old: dict, new: dict, ignore: Iterable[str] = BOOKKEEPING_FIELDS) -> list:
  """Dotted paths of the fields whose values differ between two JSON configs, except ``ignore``d
  fields (at any depth: ``'data_dir'`` also covers ``'joint.data_dir'``)."""
  ignore = set(ignore)
  old, new = _flat(old), _flat(new)
  old = {**{k: v for k, (v, _) in ADDED_FIELDS.items() if k in new}, **old}
  return sorted(k for k in set(old) | set(new)
                if old.get(k) != new.get(k) and k.split(".")[-1] not in ignore and k not in ignore)


def check_workdir(workdir: str, config, ignore: Iterable[str] = BOOKKEEPING_FIELDS) -> None:
  """Read-only checks of ``workdir`` before any data loading or compute; writes nothing.

  Raises `WorkdirError` in plain words when ``workdir`` is empty, is (or lies under) a file, cannot
  be created or written, or holds a ``config.json`` whose computed fields differ from ``config``'s.
  """
  if not workdir:
    raise WorkdirError("--workdir is required: the directory for checkpoints, metrics and results")
  workdir = _normalize(workdir)
  if io.is_local(workdir):
    _check_local_dir(workdir)
  else:
    _check_remote_dir(workdir)
  path = os.path.join(workdir, "config.json")
  if io.exists(path):
    try:
      old = io.read_json(path)
    except (OSError, ValueError) as e:
      raise WorkdirError(f"{path} is unreadable ({e}); use a new --workdir or delete it") from None
    changed = config_differences(old, io._jsonable(config), ignore)  # pylint: disable=protected-access
    if changed:
      renamed = "".join(renamed_field_hint(f) for f in changed)
      renamed += "".join(added_field_hint(f) for f in changed if f not in old)
      raise WorkdirError(
          f"{workdir} holds a run with a different config (fields {changed}){renamed}; use a new "
          "--workdir or delete the old one")


def _normalize(workdir) -> str:
  """A local workdir as an absolute path; a URI (``gs://bucket/run``) without a trailing slash."""
  try:
    return os.fspath(io.as_path(str(workdir)))
  except ValueError as e:
    raise WorkdirError(f"--workdir={e}") from None


def _check_local_dir(workdir: str) -> None:
  existing = workdir
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    if existing == workdir:
      raise WorkdirError(f"--workdir={workdir} is a file, not a directory; give a directory path "
                         "(it is created if missing)")
    raise WorkdirError(f"--workdir={workdir} cannot be created: {existing} is a file")
  if not os.access(existing, os.W_OK | os.X_OK):
    what = "is not writable" if existing == workdir else f"cannot be created: {existing} is not writable"
    raise WorkdirError(f"--workdir={workdir} {what} (permission denied)")


def _check_remote_dir(workdir: str) -> None:
  """Object stores have no permissions to read ahead of a write: a bucket that refuses writes fails
  when the lock is created, still before any compute."""
  try:
    io.checkpoint_dir(workdir)
  except ValueError as e:
    raise WorkdirError(f"--workdir={e}") from None
  try:
    is_file = io.exists(workdir) and not io.is_dir(workdir)
  except ImportError as e:  # fsspec's backend for the scheme is not installed (gcsfs for gs://)
    raise WorkdirError(f"--workdir={workdir}: {e}") from None
  if is_file:
    raise WorkdirError(f"--workdir={workdir} is a file, not a directory; give a directory path")


_SCOPES: list[list] = []  # the locks taken inside each active `workdir_job` call, innermost last
_HELD: dict[str, dict] = {}  # real workdir path -> {"fd", "path", "count"} for the locks held here


def workdir_job(fn):
  """Decorates a job function: the workdir locks that `open_workdir` takes during the call are
  released when it returns or raises (a lock taken outside any such call lasts until exit)."""

  @functools.wraps(fn)
  def wrapper(*args, **kwargs):
    _SCOPES.append([])
    try:
      return fn(*args, **kwargs)
    finally:
      for key in reversed(_SCOPES.pop()):
        _release(key)

  return wrapper


def open_workdir(workdir: str, config, ignore: Iterable[str] = BOOKKEEPING_FIELDS) -> None:
  """Makes ``workdir`` this process's to write, once validation and data loading have succeeded.

  Repeats `check_workdir`, creates the directory, takes its lock (`WorkdirLockedError` naming the
  holder if a live process has it; a lock left by a dead process is taken over), removes temporary
  files orphaned by a killed writer, and writes ``config.json`` unless the workdir has one already.
  Multi-process: process 0 does all this while the others wait for its outcome.
  """
  error = None
  if jax.process_index() == 0:
    try:
      _open_workdir(workdir, config, ignore)
    except Exception as e:  # pylint: disable=broad-except
      error = e
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    ok = multihost_utils.broadcast_one_to_all(np.int32(error is None))
    if not int(ok) and error is None:
      raise WorkdirError(f"process 0 could not open --workdir={workdir}; its log says why")
  if error is not None:
    raise error


def _open_workdir(workdir, config, ignore) -> None:
  check_workdir(workdir, config, ignore)
  workdir = _normalize(workdir)
  try:
    io.makedirs(workdir)
  except OSError as e:
    raise WorkdirError(f"--workdir={workdir} cannot be created: {e.strerror or e}") from None
  _acquire(workdir)
  check_workdir(workdir, config, ignore)  # under the lock: a concurrent first run may have written
  swept = io.sweep_temp_files(workdir)
  if swept:
    logging.info("removed %d temporary files left by an interrupted write: %s", len(swept), swept)
  path = os.path.join(workdir, "config.json")
  if not io.exists(path):
    io.write_json(path, config)


def _lock_record() -> dict:
  return {"pid": os.getpid(), "host": socket.gethostname(),
          "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
          "command": " ".join(sys.argv)}


def _read_raw(path: str) -> str:
  try:
    return io.read_text(path)
  except OSError:
    return ""


def _parse_record(raw: str) -> dict:
  try:
    record = json.loads(raw or "{}")
  except ValueError:
    return {}
  return record if isinstance(record, dict) else {}


def _read_record(path: str) -> dict:
  return _parse_record(_read_raw(path))


def _describe(record: dict) -> str:
  if not record:
    return "another process (it has not written its details yet)"
  return (f"pid {record.get('pid')} on host {record.get('host')}, started {record.get('started')}"
          f" ({record.get('command', '')})")


def _pid_alive(record: dict) -> bool | None:
  """Whether the lock's holder runs: ``None`` when it cannot be told (another host)."""
  if record.get("host") != socket.gethostname() or not isinstance(record.get("pid"), int):
    return None
  try:
    os.kill(record["pid"], 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def _acquire(workdir: str) -> None:
  """Takes ``workdir/.lock`` for this process (re-entrant), or raises `WorkdirLockedError` naming
  the holder (pid, host, start time, command, from the record the lock file holds).

  Local workdirs: an advisory ``flock`` (`_flock`). Workdirs on an object store (``gs://``), which
  has no ``flock``: a lock object created only if absent, kept fresh by a heartbeat
  (`_object_lock`).
  """
  key = os.path.realpath(workdir) if io.is_local(workdir) else workdir
  if key in _HELD:
    _HELD[key]["count"] += 1
  else:
    lock = _flock if io.is_local(key) else _object_lock
    _HELD[key] = dict(lock(workdir, os.path.join(key, LOCK_NAME)), count=1)
  if _SCOPES:
    _SCOPES[-1].append(key)
  else:
    atexit.register(_release, key)


def _flock(workdir: str, path: str) -> dict:
  """The kernel frees a ``flock`` when its holder dies, however it dies, so a killed holder's lock
  is free to take over. On file systems without ``flock`` the record alone decides: a holder on
  this host whose pid is gone is dead, one on another host is taken as alive."""
  while True:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      os.close(fd)
      raise WorkdirLockedError(f"--workdir={workdir} is in use by {_describe(_read_record(path))}; "
                               "wait for it to end or stop it (one writer per workdir)") from None
    except OSError as e:
      if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
        os.close(fd)
        raise
      held = _read_record(path)
      if held and held.get("pid") != os.getpid() and _pid_alive(held) is not False:
        os.close(fd)
        raise WorkdirLockedError(f"--workdir={workdir} is in use by {_describe(held)}; wait for "
                                 f"it to end, or delete {path} if that process is gone") from None
    try:  # a holder releasing its lock unlinks the file: ours must still be the one at `path`
      current = os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
      current = False
    if current:
      break
    os.close(fd)
  stale = _read_record(path)
  if stale:
    logging.warning("%s: taking over the lock of %s, which is no longer running", workdir,
                    _describe(stale))
  os.ftruncate(fd, 0)
  os.pwrite(fd, json.dumps(_lock_record()).encode(), 0)
  os.fsync(fd)
  return {"fd": fd, "path": path}


# Object-store locks: the holder rewrites its record every LOCK_HEARTBEAT_S seconds; a record whose
# heartbeat is older than $LIPPRUNE_LOCK_STALE_S seconds (default LOCK_STALE_S) is stale.
LOCK_HEARTBEAT_S = 60.0
LOCK_STALE_S = 600.0
LOCK_STALE_ENV = "LIPPRUNE_LOCK_STALE_S"
LOCK_SETTLE_S = 1.0  # wait before re-reading a lock just taken: a racing taker's write shows then


def _object_lock(workdir: str, path: str) -> dict:
  """A lock on a file system without ``flock``: ``path`` created only if absent (GCS
  ``ifGenerationMatch=0``, see `io.create_exclusive`) with a record of its holder and a random
  token.

  Stale-lock takeover: the lock of a holder that is gone is taken over, gone meaning a holder on
  this host whose pid no longer runs, or a heartbeat older than ``$LIPPRUNE_LOCK_STALE_S`` seconds
  (default 600: ten missed heartbeats; a holder on another host cannot be asked). The taker deletes
  the stale record only if it still reads the same, creates its own, and after `LOCK_SETTLE_S`
  re-reads it: if another taker's token is there, it yields to that one. A holder whose heartbeat
  finds another's token logs an error (its workdir was taken over; it keeps running).
  """
  token = secrets.token_hex(8)
  stale_after = float(os.environ.get(LOCK_STALE_ENV, LOCK_STALE_S))
  for _ in range(3):
    record = dict(_lock_record(), token=token, heartbeat=time.time())
    if io.create_exclusive(path, json.dumps(record)):
      break
    raw = _read_raw(path)
    held = _parse_record(raw)
    why_gone = _why_gone(held, stale_after) if held else None  # no record: still being written
    if why_gone is None:
      raise WorkdirLockedError(f"--workdir={workdir} is in use by {_describe(held)}; wait for it "
                               f"to end or stop it (one writer per workdir; delete {path} if no "
                               "process uses the workdir)")
    logging.warning("%s: taking over the lock of %s, %s", workdir, _describe(held), why_gone)
    if _read_raw(path) == raw:
      io.remove(path)
  else:
    raise WorkdirLockedError(f"--workdir={workdir}: other processes keep taking its lock")
  time.sleep(LOCK_SETTLE_S)
  held = _read_record(path)
  if held.get("token") != token:
    raise WorkdirLockedError(f"--workdir={workdir} is in use by {_describe(held)}, which took its "
                             "lock at the same time")
  stop = threading.Event()
  beat = threading.Thread(target=_heartbeat, args=(path, record, stop), daemon=True,
                          name=f"lock heartbeat {path}")
  beat.start()
  return {"path": path, "token": token, "stop": stop, "thread": beat}


def _why_gone(held: dict, stale_after: float) -> str | None:
  """Why the holder of a lock record is gone, or ``None`` if it may still run."""
  if held.get("pid") == os.getpid() and held.get("host") == socket.gethostname():
    return "an earlier lock of this process"
  if _pid_alive(held) is False:
    return "which is no longer running"
  age = time.time() - float(held.get("heartbeat", 0))
  if age > stale_after:
    return f"whose last heartbeat is {age:.0f} s old (> ${LOCK_STALE_ENV}={stale_after:g} s)"
  return None


def _heartbeat(path: str, record: dict, stop: threading.Event) -> None:
  while not stop.wait(LOCK_HEARTBEAT_S):
    try:
      held = _read_record(path)
      if held.get("token") != record["token"]:
        logging.error("%s: this process's lock was taken over by %s", path, _describe(held))
        return
      io.write_text(path, json.dumps(dict(record, heartbeat=time.time())))
    except Exception as e:  # pylint: disable=broad-except
      logging.warning("%s: lock heartbeat failed (%s); retrying", path, e)


def _release(key: str) -> None:
  held = _HELD.get(key)
  if held is None:
    return
  held["count"] -= 1
  if held["count"] > 0:
    return
  del _HELD[key]
  if "fd" not in held:  # an object lock
    held["stop"].set()
    held["thread"].join()
    if _read_record(held["path"]).get("token") == held["token"]:
      io.remove(held["path"])
    return
  try:
    os.remove(held["path"])  # before unlocking: a waiter then sees a fresh file, not this one
  except FileNotFoundError:
    pass
  os.close(held["fd"])


def finished_result(workdir: str, filename: str):
  """The saved result of a finished run (``workdir/filename``, read as JSON), or ``None``: a job
  rerun on a finished workdir reports its results again instead of recomputing them."""
  path = os.path.join(workdir, filename)
  if not io.exists(path):
    return None
  logging.info("%s is finished: %s", workdir, path)
  return io.read_json(path)


# ---------------------------------------------------------------------------------------------
# Processes and logs.


class _DropLibraryInfo(logging.logging.Filter):
  """Keeps INFO lines of lipprune and the experiments; drops the INFO chatter of orbax/jax."""

  def filter(self, record):
    return record.levelno > logging.logging.INFO or "orbax" not in record.pathname


def quiet_library_logs() -> None:
  logging.get_absl_handler().addFilter(_DropLibraryInfo())


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
