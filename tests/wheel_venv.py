"""Build lipprune's wheel from the checkout and install it into a fresh venv, offline.

Used by test_packaging (console scripts from outside the checkout) and test_colabs (the notebooks'
install cell). The wheel is built from a copy of the sources (a stale build/ folder of the checkout
cannot leak into it) with the running interpreter's setuptools (``--no-build-isolation``: no
download). The venv sees the running interpreter's site-packages through a .pth file, so that the
dependencies need no download either; a .pth line only appends a folder to sys.path (the .pth
files inside that folder are not processed), so the checkout's editable install of lipprune stays
invisible there: in the venv, ``import lipprune`` finds only what was installed into the venv.
"""
from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import sysconfig

from tests.conftest import REPO

# What pyproject.toml builds from.
SOURCES = ("pyproject.toml", "setup.py", "README.md", "LICENSE", "lipprune", "experiments")


def build_wheel(out_dir: pathlib.Path) -> pathlib.Path:
  """Builds the wheel into ``out_dir`` and returns its path."""
  src = out_dir / "src"
  for name in SOURCES:
    if (REPO / name).is_dir():
      shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    else:
      src.mkdir(parents=True, exist_ok=True)
      shutil.copy2(REPO / name, src / name)
  run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
       "-w", str(out_dir), str(src)])
  (wheel,) = out_dir.glob("lipprune-*.whl")
  return wheel


def make_venv(venv_dir: pathlib.Path) -> pathlib.Path:
  """A venv without lipprune whose interpreter sees this interpreter's packages; its python."""
  run([sys.executable, "-m", "venv", "--without-pip", str(venv_dir)])
  python = venv_dir / "bin" / "python"
  site = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
  deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
  (pathlib.Path(site.stdout.strip()) / "_lipprune_test_deps.pth").write_text("\n".join(deps) + "\n")
  return python


def pip_install(python: pathlib.Path, *args: str) -> None:
  """``pip install --no-deps --no-index ARGS`` into ``python``'s venv."""
  run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", *args])


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
  """Runs ``argv``; a failure raises with its output."""
  proc = subprocess.run(argv, capture_output=True, text=True, **kwargs)
  if proc.returncode != 0:
    raise AssertionError(f"{argv} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
  return proc
