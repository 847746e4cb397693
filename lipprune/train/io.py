"""Result files that survive a crash, through one small path layer.

Local paths: every write goes to a temporary file ``.tmp-<name>.<pid>.<random>`` in the target's
folder, then `os.replace`, so a reader sees the old file or the new one, never half of one; files
are created with mode ``0666`` minus the umask (``0644`` under the usual ``022``), like any other
tool's output. `sweep_temp_files` removes the temporary files a killed writer leaves.

Paths with a scheme (``gs://bucket/run``) go through `etils.epath`: an object store replaces an
object in one step, so writes there need no temporary file; appending rewrites the object.
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


def _epath(path):
  from etils import epath  # pylint: disable=g-import-not-at-top
  return epath.Path(path)


def exists(path) -> bool:
  return os.path.exists(path) if is_local(path) else _epath(path).exists()


def read_text(path) -> str:
  if is_local(path):
    with open(path, encoding="utf-8") as f:
      return f.read()
  return _epath(path).read_text(encoding="utf-8")


def write_text(path, text: str) -> None:
  """Writes ``text`` to ``path`` atomically (readers see the old file or the new one, never half)."""
  if not is_local(path):
    p = _epath(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return
  path = os.fspath(path)
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  tmp = os.path.join(directory, f"{TEMP_PREFIX}{os.path.basename(path)}.{os.getpid()}."
                                f"{secrets.token_hex(4)}")
  # os.open applies the umask to 0o666 (tempfile.mkstemp would force 0o600).
  fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
  try:
    with os.fdopen(fd, "w", encoding="utf-8") as f:
      f.write(text)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


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
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "a+b") as f:
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
