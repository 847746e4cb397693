"""Offline stand-ins for Google Cloud Storage behind ``gs://`` paths, for tests.

etils.epath sends ``gs://`` paths to fsspec's ``gcs`` file system (gcsfs when installed); these
classes take that protocol's place, so the code under test runs its real ``gs://`` branch:

* `MemoryGCS`: objects in this process's memory (nothing reaches the local disk);
* `DirGCS`: objects as files under ``$FAKE_GCS_ROOT`` (shared by processes; exclusive create is
  ``O_EXCL``, as GCS's ``ifGenerationMatch=0``).

``python -m tests.fake_gcs <module> <args>`` installs `DirGCS` and runs ``python -m <module>``.
"""
import importlib
import os
import runpy
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


class DirGCS(LocalFileSystem):
  protocol = ("gs", "gcs")

  def __init__(self, *args, finalize_on_close=None, **kwargs):
    del finalize_on_close
    super().__init__(*args, auto_mkdir=True, **kwargs)

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
