"""Result files that survive a crash, on any file system `etils.epath` supports.

Every workdir file goes through this module, so a workdir may be a local path or a URI such as
``gs://bucket/run`` (``s3://`` likewise); `as_path` gives the one path object (`etils.epath.Path`).

Local paths: every write goes to a temporary file ``.tmp-<name>.<pid>.<random>`` in the target's
folder, then `os.replace`, so a reader sees the old file or the new one, never half of one; files
are created with mode ``0666`` minus the umask (``0644`` under the usual ``022``), like any other
tool's output. `sweep_temp_files` removes the temporary files a killed writer leaves.

Paths with a scheme go through `etils.epath` (its fsspec backend needs ``gcsfs`` for ``gs://``):
an object store replaces an object in one step, so writes there need no temporary file; appending
rewrites the object. `create_exclusive` (the workdir lock's primitive) uses fsspec's exclusive
mode ``"xb"``, which object stores implement with a precondition (GCS ``ifGenerationMatch=0``).

Orbax checkpoints write their arrays through TensorStore, not epath; `checkpoint_dir` maps a
workdir path to the directory string orbax takes and refuses schemes TensorStore cannot write.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import secrets
from typing import Any, Iterable

import numpy as np

TEMP_PREFIX = ".tmp-"
# Schemes whose checkpoint arrays TensorStore (under orbax) writes itself.
CHECKPOINT_SCHEMES = ("gs", "s3")
# Puts the orbax checkpoints of a workdir on another file system (see `checkpoint_dir`).
CHECKPOINT_ROOT_ENV = "LIPPRUNE_CHECKPOINT_ROOT"


def _jsonable(obj: Any):
  if isinstance(obj, dict):
    return {str(k): _jsonable(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_jsonable(v) for v in obj]
  if hasattr(obj, "to_dict"):  # ml_collections.ConfigDict
    return _jsonable(obj.to_dict())
  if isinstance(obj, (np.generic, np.ndarray)) or type(obj).__module__.startswith("jax"):
    arr = np.asarray(obj)
    return arr.item() if arr.ndim == 0 else arr.tolist()
  if isinstance(obj, float) and not math.isfinite(obj):
    return str(obj)
  return obj


def is_local(path) -> bool:
  """Whether ``path`` is on the local file system (no ``scheme://`` prefix)."""
  return "://" not in os.fspath(path)


def scheme(path) -> str | None:
  """``'gs'`` for ``gs://bucket/x``; ``None`` for a local path."""
  return None if is_local(path) else os.fspath(path).split("://", 1)[0]


def as_path(p):
  """``p`` as an `etils.epath.Path` (local paths made absolute, ``~`` expanded)."""
  from etils import epath  # pylint: disable=g-import-not-at-top
  if is_local(p):
    return epath.Path(os.path.abspath(os.path.expanduser(os.fspath(p))))
  try:
    return epath.Path(os.fspath(p).rstrip("/"))
  except KeyError:
    raise ValueError(f"{os.fspath(p)}: etils.epath has no file system for {scheme(p)}:// (it has "
                     "local paths, gs://, s3://, az://, hf://)") from None


def exists(p) -> bool:
  return as_path(p).exists()


def is_dir(p) -> bool:
  return as_path(p).is_dir()


def makedirs(p) -> None:
  as_path(p).mkdir(parents=True, exist_ok=True)


def remove(p) -> None:
  """Deletes the file ``p``; a missing one is no error."""
  as_path(p).unlink(missing_ok=True)


def read_text(p) -> str:
  return as_path(p).read_text(encoding="utf-8")


def write_bytes(p, data: bytes) -> None:
  """Writes ``data`` to ``p`` atomically (readers see the old file or the new one, never half)."""
  target = as_path(p)
  if not is_local(p):
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return
  directory, name = os.fspath(target.parent), target.name
  os.makedirs(directory, exist_ok=True)
  tmp = os.path.join(directory, f"{TEMP_PREFIX}{name}.{os.getpid()}.{secrets.token_hex(4)}")
  # os.open applies the umask to 0o666 (tempfile.mkstemp would force 0o600).
  fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
    os.replace(tmp, os.fspath(target))
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_text(p, text: str) -> None:
  """Writes ``text`` to ``p`` atomically (readers see the old file or the new one, never half)."""
  write_bytes(p, text.encode("utf-8"))


def create_exclusive(p, text: str) -> bool:
  """Creates the file ``p`` holding ``text`` unless it exists; returns whether this call created it.

  Atomic where the file system has an exclusive create: ``O_EXCL`` locally, fsspec's mode ``"xb"``
  elsewhere (GCS through gcsfs sends ``ifGenerationMatch=0``, S3 ``If-None-Match``). A backend
  without one raises ``NotImplementedError`` from fsspec or ``ValueError`` for the mode; there the
  caller's lock must verify its ownership after creating (see experiments/common.py).
  """
  if is_local(p):
    try:
      fd = os.open(os.fspath(as_path(p)), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
      return False
    with os.fdopen(fd, "w", encoding="utf-8") as f:
      f.write(text)
    return True
  import fsspec  # pylint: disable=g-import-not-at-top
  fs, fs_path = fsspec.core.url_to_fs(os.fspath(p))
  try:
    with fs.open(fs_path, "xb") as f:
      f.write(text.encode("utf-8"))
  except FileExistsError:
    return False
  except (NotImplementedError, ValueError):  # no exclusive create: check, then write
    if fs.exists(fs_path):
      return False
    write_text(p, text)
  return True


def save_figure(fig, p, **savefig_kwargs) -> None:
  """``fig.savefig`` to ``p`` (format from its suffix) through `write_bytes`: atomic, any scheme."""
  buf = io.BytesIO()
  fig.savefig(buf, format=os.path.splitext(os.fspath(p))[1].lstrip(".") or "png", **savefig_kwargs)
  write_bytes(p, buf.getvalue())


def checkpoint_dir(p) -> str:
  """The directory string orbax takes for checkpoints under the workdir path ``p``.

  Orbax writes checkpoint arrays through TensorStore, whose drivers cover local paths, ``gs://``
  and ``s3://`` only; ``p`` on another scheme raises ``ValueError`` unless
  ``$LIPPRUNE_CHECKPOINT_ROOT`` is set. With it set, the checkpoints of a non-local workdir go to
  ``$LIPPRUNE_CHECKPOINT_ROOT/<scheme>/<path without scheme>`` (e.g. a local disk while results go
  to a bucket); local workdirs keep theirs inside the workdir.
  """
  if is_local(p):
    return os.fspath(as_path(p))
  root = os.environ.get(CHECKPOINT_ROOT_ENV)
  if root:
    return os.path.join(checkpoint_dir(root), scheme(p), os.fspath(p).split("://", 1)[1].strip("/"))
  if scheme(p) not in CHECKPOINT_SCHEMES:
    raise ValueError(
        f"{os.fspath(p)}: orbax writes checkpoints through TensorStore, which supports local paths "
        f"and {', '.join(s + '://' for s in CHECKPOINT_SCHEMES)} only; use one of those, or set "
        f"${CHECKPOINT_ROOT_ENV} to a directory for this workdir's checkpoints")
  return os.fspath(p).rstrip("/")


def sweep_temp_files(directory) -> list[str]:
  """Removes the temporary files of interrupted `write_text` calls under ``directory`` (recursively)
  and returns their paths. Call it only while no other process writes there (a job does it after
  taking its workdir's lock)."""
  if not is_local(directory):
    return []
  removed = []
  for root, _, files in os.walk(directory):
    for name in files:
      if name.startswith(TEMP_PREFIX):
        path = os.path.join(root, name)
        try:
          os.remove(path)
        except FileNotFoundError:
          continue
        removed.append(path)
  return sorted(removed)


def write_json(path, obj: Any) -> None:
  """Writes ``obj`` as indented JSON, keys in the dict's own order: a row read back has the columns
  it was written with, so CSV tables built from fresh and read-back rows keep one column order."""
  write_text(path, json.dumps(_jsonable(obj), indent=2) + "\n")


def read_json(path) -> Any:
  return json.loads(read_text(path))


def write_csv(path, rows: Iterable[dict]) -> None:
  """Writes dict rows as CSV atomically; the header is the union of keys in first-seen order."""
  rows = [_jsonable(r) for r in rows]
  fields: list[str] = []
  for r in rows:
    fields += [k for k in r if k not in fields]
  buf = io.StringIO()
  writer = csv.DictWriter(buf, fieldnames=fields)
  writer.writeheader()
  writer.writerows(rows)
  write_text(path, buf.getvalue())


def append_jsonl(path, record: dict) -> None:
  """Appends one JSON line (flushed and fsynced: a crash loses at most the line being written; the
  next record starts on a new line, so a torn last line never swallows it)."""
  line = json.dumps(_jsonable(record), sort_keys=True) + "\n"
  if not is_local(path):  # object stores cannot append: rewrite the object
    old = read_text(path) if exists(path) else ""
    write_text(path, old + ("\n" if old and not old.endswith("\n") else "") + line)
    return
  local = os.fspath(as_path(path))
  os.makedirs(os.path.dirname(local), exist_ok=True)
  with open(local, "a+b") as f:
    if f.seek(0, os.SEEK_END) > 0:
      f.seek(-1, os.SEEK_END)
      if f.read(1) != b"\n":
        line = "\n" + line
    f.write(line.encode("utf-8"))
    f.flush()
    os.fsync(f.fileno())


def read_jsonl(path) -> list[dict]:
  if not exists(path):
    return []
  out = []
  for line in read_text(path).splitlines():
    line = line.strip()
    if line:
      try:
        out.append(json.loads(line))
      except json.JSONDecodeError:  # a line torn by a crash mid-write
        continue
  return out


def truncate_jsonl(path, max_step: int, key: str = "step") -> None:
  """Drops records with ``record[key] > max_step``: on resume from a checkpoint at ``max_step`` the
  steps after it are re-run, and their records would otherwise appear twice."""
  if not exists(path):
    return
  kept = [r for r in read_jsonl(path) if r.get(key, -1) <= max_step]
  write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
