"""Result files that survive a crash: every write goes to a temporary file then `os.replace`."""
from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from typing import Any, Iterable

import numpy as np


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


def write_text(path: str, text: str) -> None:
  """Writes ``text`` to ``path`` atomically (readers see the old file or the new one, never half)."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-" + os.path.basename(path))
  try:
    with os.fdopen(fd, "w", encoding="utf-8") as f:
      f.write(text)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_json(path: str, obj: Any) -> None:
  write_text(path, json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n")


def read_json(path: str) -> Any:
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def write_csv(path: str, rows: Iterable[dict]) -> None:
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


def append_jsonl(path: str, record: dict) -> None:
  """Appends one JSON line (flushed and fsynced: a crash loses at most the line being written)."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "a", encoding="utf-8") as f:
    f.write(json.dumps(_jsonable(record), sort_keys=True) + "\n")
    f.flush()
    os.fsync(f.fileno())


def read_jsonl(path: str) -> list[dict]:
  if not os.path.exists(path):
    return []
  out = []
  with open(path, encoding="utf-8") as f:
    for line in f:
      line = line.strip()
      if line:
        try:
          out.append(json.loads(line))
        except json.JSONDecodeError:  # a line torn by a crash mid-write
          continue
  return out


def truncate_jsonl(path: str, max_step: int, key: str = "step") -> None:
  """Drops records with ``record[key] > max_step``: on resume from a checkpoint at ``max_step`` the
  steps after it are re-run, and their records would otherwise appear twice."""
  if not os.path.exists(path):
    return
  kept = [r for r in read_jsonl(path) if r.get(key, -1) <= max_step]
  write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
