"""Console scripts (``lipprune-train``, ``lipprune-prune``, ...) and config-file loading.

The experiment jobs live in the checkout's ``experiments/`` folder, run there as
``python -m experiments.<job> --config=experiments/configs/<file>.py``. The wheel installs that
folder as ``lipprune.experiments`` (pyproject.toml's ``package-dir``), so that the distribution has
the one top-level package ``lipprune``; its console scripts run the same jobs from any directory::

  lipprune-train --config=mnist5k_mlp --workdir=/tmp/w          # an installed config, by name
  lipprune-fairness --config=fairness_synthetic.py:mlp --workdir=/tmp/f  # with .py, an argument
  lipprune-robust --config=./my_config.py --workdir=/tmp/r      # any config file, by path

``--config`` is a path when that file exists, else the name of a config installed with the package
(``lipprune.experiments.configs``); anything else exits with status 2 naming the installed configs,
before any compute.

Config files are loaded by path (ml_collections' ``DEFINE_config_file``) as top-level modules,
from experiments/configs/ in a checkout and from lipprune/experiments/configs/ in an installation,
so they cannot import each other by a package name; ``sibling_config`` loads a sibling by its file.

This module imports only the standard library at the top: config files import it.
"""
from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import sys
import types

# The jobs with a console script lipprune-<job>: modules lipprune.experiments.<job> with a main.
JOBS = ("train", "prune", "robust", "fairness", "joint", "separation")


def sibling_config(config_file: str, name: str) -> types.ModuleType:
  """The config module ``name`` (``name.py``) from the folder of ``config_file``.

  Args:
    config_file: the calling config's ``__file__``.
    name: the sibling's file name without ``.py``, e.g. ``"mnist5k_mlp"``.
  """
  path = os.path.join(os.path.dirname(os.path.abspath(config_file)), f"{name}.py")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"config {name!r}: expected the file {path}; configs there: "
                            f"{', '.join(installed_configs(os.path.dirname(path)))}")
  spec = importlib.util.spec_from_file_location(f"lipprune_config_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def installed_configs(configs_dir: str) -> list[str]:
  """The config names (file names without ``.py``) in ``configs_dir``."""
  return sorted(f[:-3] for f in os.listdir(configs_dir)
                if f.endswith(".py") and not f.startswith("_"))


def resolve_config(spec: str, configs_dir: str) -> str:
  """``--config``'s value ``path[:arg]`` or ``name[.py][:arg]`` as ``path[:arg]``.

  An existing file wins; else ``name`` is looked up in ``configs_dir``.

  Raises:
    ValueError: neither a file nor an installed config; the message lists the installed configs.
  """
  target, sep, arg = spec.partition(":")
  if os.path.isfile(target):
    return spec
  name = target[:-3] if target.endswith(".py") else target
  names = installed_configs(configs_dir)
  if os.sep in target or name not in names:
    raise ValueError(f"--config={spec}: {target!r} is neither a config file nor an installed "
                     f"config; installed configs: {', '.join(names)}")
  return os.path.join(configs_dir, f"{name}.py") + sep + arg


def resolve_config_argv(argv: list[str], configs_dir: str) -> list[str]:
  """``argv`` with the value of ``--config=X`` / ``--config X`` passed through ``resolve_config``
  (``--config.field=value`` overrides are left as they are)."""
  out = list(argv)
  for i, arg in enumerate(out):
    for prefix in ("--config=", "-config="):
      if arg.startswith(prefix):
        out[i] = prefix + resolve_config(arg[len(prefix):], configs_dir)
    if arg in ("--config", "-config") and i + 1 < len(out):
      out[i + 1] = resolve_config(out[i + 1], configs_dir)
  return out


def run_job(job: str, argv: list[str] | None = None) -> None:
  """Runs ``lipprune.experiments.<job>`` as ``python -m experiments.<job>`` does in a checkout."""
  from absl import app, flags  # pylint: disable=g-import-not-at-top
  configs = importlib.import_module("lipprune.experiments.configs")
  argv = list(sys.argv if argv is None else argv)
  try:
    argv = resolve_config_argv(argv, os.path.dirname(configs.__file__))
  except ValueError as e:
    sys.stderr.write(f"FATAL Flags parsing error: {e}\n")
    sys.exit(2)
  module = importlib.import_module(f"lipprune.experiments.{job}")
  common = importlib.import_module("lipprune.experiments.common")
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(module.main, argv=argv, flags_parser=common.parse_flags)


# The console scripts' entry points (pyproject.toml [project.scripts]), one per name in JOBS.
train = functools.partial(run_job, "train")
prune = functools.partial(run_job, "prune")
robust = functools.partial(run_job, "robust")
fairness = functools.partial(run_job, "fairness")
joint = functools.partial(run_job, "joint")
separation = functools.partial(run_job, "separation")
