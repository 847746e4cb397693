"""TensorBoard event files of scalar metrics, written without TensorFlow.

An event file is a sequence of TFRecords, each holding one serialized ``tensorflow.Event``
protocol buffer. Only the few fields a scalar needs are written, encoded here by hand::

  record  = uint64 len | uint32 masked_crc32c(len) | data | uint32 masked_crc32c(data)
  Event   = wall_time (1, double) | step (2, int64) | file_version (3, string) | summary (5)
  Summary = repeated value (1)
  Value   = tag (1, string) | simple_value (2, float)

``masked_crc32c(x) = rotate_right(crc32c(x), 15) + 0xa282ead8 (mod 2^32)``. The first event of a
file carries ``file_version = 'brain.Event:2'``, as TensorFlow's writer does. Values are float32
(``simple_value``), as in any TensorBoard scalar.

The JSON-lines metric records stay the source of truth; an event file is a view of them. A run's
file is named by the first step it covers (``events.out.tfevents.<first_step:010d>.lipprune``), so
the segments of one run (`lipprune.train.train` with ``first_step``) share a run directory and
TensorBoard reads their files in step order. Resume safety: a run resumed from a checkpoint first
rebuilds its file from its (trimmed) metric records (`RunEvents.reset`), which drops the points a
killed attempt wrote after that checkpoint; it then appends. A kill at any moment thus leaves at
worst a file that the next attempt rewrites. Whole-result rows (`write_scalars`) go to a file of
their own, replaced in one step, so writing one twice never duplicates a point.

Rebuilt points carry the wall time of the rebuild (the records keep no time); steps and values are
the records'. Why by hand: clu's ``metric_writers`` write through TensorFlow, tensorboardX through
generated protobuf classes; the ~100 lines here need neither, and tests read the files back with
TensorBoard's own reader.

Layout (the jobs'): ``<workdir>/tb/<run>/`` with one run directory per seed / arm / round, e.g.
``tb/seed_0/original`` and ``tb/seed_0/<arm>/round_2`` (experiments.prune); tags are the record keys
(``train/loss``, ``eval/accuracy``, ``steps_per_sec``) and ``result/<field>`` for a finished run's
row. TensorBoard's run filter then selects a seed, an arm or a round by name.

Paths are anything `etils.epath.Path` accepts (local or ``gs://...``): local files are appended to
and replaced through a temporary file (`io.write_bytes`); an object store cannot append, so there
the file is rewritten whole from the bytes this writer holds.
"""
from __future__ import annotations

import os
import struct
import time
from typing import Iterable, Mapping

import jax

from lipprune.train import io

FILE_VERSION = "brain.Event:2"
_SUFFIX = "lipprune"


def _crc32c_table() -> list[int]:
  table = []
  for byte in range(256):
    crc = byte
    for _ in range(8):
      crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # Castagnoli, reflected
    table.append(crc)
  return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
  crc = 0xFFFFFFFF
  for b in data:
    crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
  return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
  crc = crc32c(data)
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
  out = bytearray()
  n &= 0xFFFFFFFFFFFFFFFF  # int64 fields: two's complement, as protobuf encodes negatives
  while True:
    low, n = n & 0x7F, n >> 7
    out.append(low | (0x80 if n else 0))
    if not n:
      return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
  """A length-delimited field (wire type 2)."""
  return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def encode_event(wall_time: float, step: int, *, scalars: Mapping[str, float] | None = None,
                 file_version: str | None = None) -> bytes:
  """One serialized ``Event`` with the given scalars (or the file-version header)."""
  out = bytearray(_varint(1 << 3 | 1) + struct.pack("<d", wall_time))
  out += _varint(2 << 3) + _varint(int(step))
  if file_version is not None:
    out += _field(3, file_version.encode())
  if scalars:
    values = b"".join(
        _field(1, _field(1, tag.encode()) + _varint(2 << 3 | 5) + struct.pack("<f", value))
        for tag, value in scalars.items())
    out += _field(5, values)
  return bytes(out)


def frame(data: bytes) -> bytes:
  """``data`` as one TFRecord."""
  length = struct.pack("<Q", len(data))
  return (length + struct.pack("<I", masked_crc32c(length)) + data
          + struct.pack("<I", masked_crc32c(data)))


def scalars_of(record: Mapping) -> dict[str, float]:
  """The numeric fields of a metric record (``step`` and text fields left out); non-finite values
  stored as text (``'nan'``, ``'inf'``) by `lipprune.train.io` count as numbers."""
  out = {}
  for key, value in record.items():
    if key == "step" or isinstance(value, bool):
      continue
    if isinstance(value, (int, float)):
      out[key] = float(value)
    elif isinstance(value, str) and value.strip().lower() in ("nan", "inf", "-inf", "infinity",
                                                              "-infinity"):
      out[key] = float(value)
  return out


def _file_bytes(events: Iterable[tuple[int, Mapping[str, float]]], wall_time: float) -> bytes:
  out = [frame(encode_event(wall_time, 0, file_version=FILE_VERSION))]
  out += [frame(encode_event(wall_time, step, scalars=values)) for step, values in events if values]
  return b"".join(out)


class RunEvents:
  """The event file of one run (or one segment of a run starting at ``first_step``)."""

  def __init__(self, directory, first_step: int = 0):
    self.first_step = int(first_step)
    self.path = io.as_path(directory) / f"events.out.tfevents.{self.first_step:010d}.{_SUFFIX}"
    self._local = io.is_local(os.fspath(self.path))
    self._data = b""  # what the file holds, for object stores, which cannot append

  def reset(self, records: Iterable[Mapping]) -> None:
    """Rewrites the file from ``records`` (metric records with a ``step`` relative to
    ``first_step``), dropping whatever an earlier attempt wrote."""
    events = [(self.first_step + int(r["step"]), scalars_of(r)) for r in records if "step" in r]
    self._data = _file_bytes(events, time.time())
    io.write_bytes(self.path, self._data)

  def add(self, step: int, values: Mapping) -> None:
    """Appends the scalars of one record at run step ``first_step + step``."""
    scalars = scalars_of(values)
    if not scalars:
      return
    data = frame(encode_event(time.time(), self.first_step + int(step), scalars=scalars))
    if not self._local:
      self._data += data
      io.write_bytes(self.path, self._data)
      return
    with open(os.fspath(self.path), "ab") as f:
      f.write(data)


def write_scalars(directory, step: int, values: Mapping, name: str = "result",
                  skip: Iterable[str] = ()) -> None:
  """Writes the numeric fields of ``values`` (less those named in ``skip``) at ``step`` as a file of
  their own, tagged ``<name>/<field>``; writing the same ``(directory, step, name)`` again replaces
  it. Process 0 writes, the others return. A job writes a result row's scalars before the row's
  JSON file (its "done" marker), so a kill in between rewrites them instead of losing them."""
  if jax.process_index() != 0:
    return
  scalars = {f"{name}/{k}": v for k, v in scalars_of(values).items() if k not in skip}
  io.write_bytes(io.as_path(directory) / f"events.out.tfevents.{int(step):010d}.{name}.{_SUFFIX}",
                 _file_bytes([(int(step), scalars)], time.time()))
