"""Unrolled attack loops find the same adversarial points as rolled ones; the default unrolls
only where lipprune.train.loop_modes says it pays (convolutional models on XLA:CPU)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lipprune import models
from lipprune.robust import attacks
from lipprune.train import chunks, loop_modes
import lipprune.robust.models  # noqa: F401  (registers yang_cnn1)


def _objective(name, batch=6):
  model = models.create(name, 10, **({"hidden": (32,)} if name == "mlp" else {}))
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.random((batch, 28, 28, 1), dtype=np.float32))
  y = jnp.asarray(rng.integers(0, 10, batch).astype(np.int32))
  params, state = model.init(jax.random.key(0), x[:1])

  def ce(z):
    return optax.softmax_cross_entropy_with_integer_labels(
        model.apply(params, state, z, train=False)[0], y)
  return ce, x


@pytest.mark.parametrize("name", ["mlp", "yang_cnn1"])
@pytest.mark.parametrize("keep_best", [False, True])
def test_unrolled_and_rolled_ascent_give_the_same_points(name, keep_best):
  ce, x = _objective(name)

  @jax.jit
  def run(x, key):
    return [attacks.maximize(ce, x, key, eps=0.1, step_size=0.02, steps=5, keep_best=keep_best,
                             unroll=unroll) for unroll in (False, True)]
  rolled, unrolled = run(x, jax.random.key(3))
  np.testing.assert_array_equal(np.asarray(rolled), np.asarray(unrolled))
  assert np.max(np.abs(np.asarray(rolled) - np.asarray(x))) > 0.05  # it did move


def test_default_follows_the_measured_table(monkeypatch):
  ce_dense, x = _objective("mlp")
  ce_conv, _ = _objective("yang_cnn1")
  monkeypatch.setattr(loop_modes, "ATTACK_UNROLL", {("cpu", "conv"): True})
  backend = jax.default_backend()
  assert chunks.unroll_attack(ce_conv, x) == (backend == "cpu")
  assert not chunks.unroll_attack(ce_dense, x)
  monkeypatch.setattr(loop_modes, "ATTACK_UNROLL", {})
  assert not chunks.unroll_attack(ce_conv, x)
