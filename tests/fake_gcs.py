"""Offline stand-ins for Google Cloud Storage behind ``gs://`` paths, for tests.

etils.epath sends ``gs://`` paths to fsspec's ``gcs`` file system (gcsfs when installed); these
classes take that protocol's place, so the code under test runs its real ``gs://`` branch:

* `MemoryGCS`: objects in this process's memory (nothing reaches the local disk);
* `DirGCS`: objects as files under ``$FAKE_GCS_ROOT``, shared by processes. As on GCS, a written
  object appears whole when its writer closes it (a writer killed before never shows), and an
  exclusive create (``"xb"``, GCS's ``ifGenerationMatch=0``) fails then if the object exists.

``python -m tests.fake_gcs <module> <args>`` installs `DirGCS` and runs ``python -m <module>``.
"""
import importlib
import io
import os
import runpy
import secrets
import sys

import fsspec
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem
from fsspec.spec import AbstractFileSystem

ROOT_ENV = "FAKE_GCS_ROOT"


class MemoryGCS(MemoryFileSystem):
  protocol = ("gs", "gcs")
  store: dict = {}  # its own, not MemoryFileSystem's ``memory://`` store
  pseudo_dirs = [""]

  def __init__(self, *args, finalize_on_close=None, **kwargs):  # epath passes gcsfs's option
    del finalize_on_close
    super().__init__(*args, **kwargs)

  @classmethod
  def _strip_protocol(cls, path):
    return "/" + AbstractFileSystem._strip_protocol.__func__(cls, path).lstrip("/")


class _Upload(io.BytesIO):
  """An object being written: it lands at ``path`` in one step on close."""

  def __init__(self, path: str, exclusive: bool):
    super().__init__()
    self.path, self.exclusive = path, exclusive

  def close(self):
    if self.closed:
      return
    data = self.getvalue()
    super().close()
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    tmp = os.path.join(os.environ[ROOT_ENV], f".upload-{os.getpid()}-{secrets.token_hex(4)}")
    with open(tmp, "wb") as f:
      f.write(data)
    try:
      if self.exclusive:
        os.link(tmp, self.path)  # FileExistsError if it exists, like a failed precondition
      else:
        os.replace(tmp, self.path)
    finally:
      if os.path.exists(tmp):
        os.remove(tmp)


class DirGCS(LocalFileSystem):
  protocol = ("gs", "gcs")

  def __init__(self, *args, finalize_on_close=None, **kwargs):
    del finalize_on_close
    super().__init__(*args, auto_mkdir=True, **kwargs)

  def _open(self, path, mode="rb", *args, **kwargs):
    if "w" in mode or "x" in mode:
      return _Upload(self._strip_protocol(path), exclusive="x" in mode)
    return super()._open(path, mode, *args, **kwargs)

  @classmethod
  def _strip_protocol(cls, path):
    path = os.fspath(path)
    if path.startswith(os.environ[ROOT_ENV]):
      return path
    return os.path.join(os.environ[ROOT_ENV], path.split("://", 1)[-1].lstrip("/"))


def install(cls) -> None:
  """Makes ``gs://`` paths use ``cls`` in fsspec and etils.epath (until `uninstall`)."""
  from etils.epath import backend  # pylint: disable=g-import-not-at-top
  for name in ("gs", "gcs"):
    fsspec.register_implementation(name, cls, clobber=True)
  backend.fsspec_backend._get_filesystem.cache_clear()  # pylint: disable=protected-access


def uninstall() -> None:
  from etils.epath import backend  # pylint: disable=g-import-not-at-top
  for name in ("gs", "gcs"):
    registry = importlib.import_module("fsspec.registry")
    registry._registry.pop(name, None)  # pylint: disable=protected-access
  backend.fsspec_backend._get_filesystem.cache_clear()  # pylint: disable=protected-access
  MemoryGCS.store.clear()
  MemoryGCS.pseudo_dirs[:] = [""]


if __name__ == "__main__":
  install(DirGCS)
  sys.argv = sys.argv[1:]
  runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
