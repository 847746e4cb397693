"""Masked optimizers: pruned weights never come back, whatever the optimizer state does."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
from hypothesis import given, settings, strategies as st

from lipprune import sparsity, train
from lipprune.models import Model
import flax.linen as nn


def _tree(rng, shape_a, shape_b):
  return {"a": {"kernel": jnp.array(rng.normal(size=shape_a), jnp.float32),
                "bias": jnp.array(rng.normal(size=shape_a[-1:]), jnp.float32)},
          "b": {"kernel": jnp.array(rng.normal(size=shape_b), jnp.float32)}}


OPTS = {
    "sgd_momentum_wd": lambda: train.direction("sgd", momentum=0.9, weight_decay=1e-2),
    "sgd_nesterov_wd": lambda: train.direction("sgd", momentum=0.9, nesterov=True, weight_decay=5e-2),
    "adam_l2": lambda: train.direction("adam", weight_decay=1e-2),
    "adamw": lambda: train.direction("adamw", weight_decay=1e-2),
    "optax_adam_lr": lambda: optax.adam(0.1),
}


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2 ** 16), opt=st.sampled_from(sorted(OPTS)), steps=st.integers(1, 12),
       density=st.floats(0.05, 0.95))
def test_masked_keeps_pruned_zero(seed, opt, steps, density):
  rng = np.random.default_rng(seed)
  params = _tree(rng, (4, 5), (2, 2, 3, 4))
  masks = {"a": {"kernel": jnp.array(rng.random((4, 5)) < density, jnp.float32), "bias": None},
           "b": {"kernel": jnp.array(rng.random((2, 2, 3, 4)) < density, jnp.float32)}}
  # The optimizer state starts dense (as after weight rewinding) with non-zero moments everywhere.
  inner = OPTS[opt]()
  tx = sparsity.masked(inner, masks)
  state = tx.init(params)
  for _ in range(3):
    _, state = inner.update(jax.tree.map(lambda x: x + 1.0, params), state, params)
  params = train.apply_masks(params, masks)
  bias0 = params["a"]["bias"]
  for _ in range(steps):
    grads = jax.tree.map(lambda x: jnp.array(rng.normal(size=x.shape), jnp.float32), params)
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, jax.tree.map(lambda u: -0.1 * u, updates))
  for k in ("a", "b"):
    pruned = np.asarray(masks[k]["kernel"]) == 0
    assert np.all(np.asarray(params[k]["kernel"])[pruned] == 0.0)
  # Unmasked leaves and surviving weights do train.
  assert not np.allclose(params["a"]["bias"], bias0)


class _Tiny(nn.Module):
  @nn.compact
  def __call__(self, x, train):
    x = nn.relu(nn.Dense(16, name="dense_0")(x.reshape(x.shape[0], -1)))
    return nn.Dense(3, name="head")(x)


def test_train_step_keeps_zeros_many_steps():
  model = Model(_Tiny())
  rng = np.random.default_rng(0)
  x = rng.normal(size=(64, 6)).astype(np.float32)
  y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 1).astype(np.int32)
  params, ms = model.init(jax.random.key(0), x[:2])
  masks = sparsity.global_magnitude(params, sparsity.init_masks(params), 0.7)
  for name in ("sgd_momentum_wd", "adam_l2"):
    tx = OPTS[name]()
    state = train.TrainState.create(train.apply_masks(params, masks), ms, tx, masks=masks)
    state = state.replace(opt_state=jax.tree.map(lambda z: z + 0.3 if z.dtype == jnp.float32 else z,
                                                 state.opt_state))
    step = jax.jit(train.make_train_step(train.cross_entropy(model), tx,
                                         train.schedule("constant", base_lr=0.05, total_steps=1)))
    first = None
    for i in range(60):
      state, metrics = step(state, {"x": x, "y": y}, jax.random.key(i))
      first = first if first is not None else float(metrics["loss"])
    assert float(metrics["loss"]) < first
    for k in ("dense_0", "head"):
      pruned = np.asarray(masks[k]["kernel"]) == 0
      assert pruned.any() and np.all(np.asarray(state.params[k]["kernel"])[pruned] == 0.0)
