"""Cheaper compilation without other numbers: Model.init compiled equals the op-by-op init, the
persistent compilation cache is configured from the environment and reused by a second process,
and the compile clock counts compilations only."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lipprune import models
from lipprune.train import compilation
import lipprune.robust.models  # noqa: F401  (registers yang_cnn1)
from tests.conftest import REPO


@pytest.mark.parametrize("kernel_init", ["he_normal", "glorot_normal"])
@pytest.mark.parametrize("name,shape", [("mlp", (1, 28, 28, 1)), ("lenet5", (1, 28, 28, 1))])
def test_compiled_init_equals_op_by_op_init(name, shape, kernel_init):
  model = models.create(name, 10, kernel_init=kernel_init)
  x = np.zeros(shape, np.float32)
  with jax.disable_jit():  # every initializer op by op, as Model.init ran before
    want = model.init(jax.random.key(7), x)
  got = model.init(jax.random.key(7), x)
  for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
    if kernel_init == "he_normal":  # Gaussian draws: bit-identical
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    else:  # truncated normal: the inverse erf's polynomial fuses differently, last bits only
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=2e-7)
  again = model.init(jax.random.key(7), x)  # and the compiled init is deterministic
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(again), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # Equal models (one per seed of a study) share one compiled init.
  assert models.create(name, 10, kernel_init=kernel_init) == model


def test_compiled_init_of_a_robust_model_equals_op_by_op_init():
  model = models.create("yang_cnn1", 10)
  x = np.zeros((1, 28, 28, 1), np.float32)
  with jax.disable_jit():
    want = model.init(jax.random.key(7), x)
  got = model.init(jax.random.key(7), x)
  for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_init_inside_a_callers_jit_and_vmap():
  """Model.init traced into a caller's program (the fairness job vmaps fits over data sets) gives
  the parameters of a direct call, per key."""
  model = models.create("mlp", 2, hidden=(8,))
  x = np.zeros((1, 5), np.float32)
  keys = jax.random.split(jax.random.key(3), 3)
  got = jax.jit(jax.vmap(lambda k: model.init(k, x)[0]))(keys)
  for i in range(3):
    want = model.init(keys[i], x)[0]
    for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b)[i], rtol=1e-6, atol=1e-7)


def test_cache_directory_from_the_environment(tmp_path, monkeypatch):
  monkeypatch.setattr(jax.config, "update", lambda name, value: updates.__setitem__(name, value))
  updates = {}
  monkeypatch.setenv(compilation.ENV_VAR, str(tmp_path / "cc"))
  assert compilation.enable_persistent_cache() == str(tmp_path / "cc")
  assert updates["jax_compilation_cache_dir"] == str(tmp_path / "cc")
  assert (tmp_path / "cc").is_dir()
  updates.clear()
  for off in ("off", "0", "None"):
    monkeypatch.setenv(compilation.ENV_VAR, off)
    assert compilation.enable_persistent_cache() is None and not updates
  monkeypatch.delenv(compilation.ENV_VAR)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  monkeypatch.setattr(compilation, "_configured_dir", lambda: None)
  assert compilation.enable_persistent_cache() == str(tmp_path / "xdg" / "lipprune" / "jax")


_PROGRAM = r"""
import sys, jax, jax.numpy as jnp
from lipprune.train import compilation
hits = []
jax.monitoring.register_event_listener(
    lambda event, **kw: hits.append(event) if event.endswith("cache_hits") else None)
compilation.enable_persistent_cache(min_compile_seconds=0)
f = jax.jit(lambda x: jnp.tanh(jnp.sin(x) @ x.T).sum())
print("VALUE", float(f(jnp.arange(64.0).reshape(8, 8) / 64)), "HITS", len(hits))
"""


def test_second_process_loads_the_compiled_program(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO),
             **{compilation.ENV_VAR: str(tmp_path / "cc")})
  outs = [subprocess.run([sys.executable, "-c", _PROGRAM], env=env, cwd=REPO, capture_output=True,
                         text=True, timeout=300) for _ in range(2)]
  for p in outs:
    assert p.returncode == 0, p.stderr[-2000:]
  first, second = (p.stdout.split() for p in outs)
  assert first[1] == second[1]  # the same value from the stored executable
  assert int(first[3]) == 0 and int(second[3]) >= 1
  assert os.listdir(tmp_path / "cc")


def test_compile_clock_counts_compilation_only():
  clock = compilation.compile_clock()
  f = jax.jit(lambda x: jnp.cos(x) * 3 + x.sum())
  before = clock.seconds()
  jax.block_until_ready(f(jnp.ones(17)))
  compiled = clock.seconds()
  assert compiled > before
  for _ in range(20):
    jax.block_until_ready(f(jnp.ones(17)))  # cached: nothing compiles
  assert clock.seconds() == compiled
