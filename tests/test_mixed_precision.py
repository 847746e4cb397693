"""bfloat16 compute with float32 parameters (the models' ``dtype`` kwarg, lipprune.models.layers).

Contract under test: with ``dtype=jnp.bfloat16`` every matmul and convolution runs on bfloat16
operands, while parameters, batch statistics, logits and the optimizer's updated parameters stay
float32; bf16 logits are within a few percent of the float32 logits of the same parameters.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lipprune import models
from lipprune import train as lt

# (name, kwargs shrinking the model, input shape): tracing only, so full-size models are cheap.
ZOO = [
    ("logistic", {}, (2, 8, 8, 1)),
    ("mlp", {"hidden": (16, 8)}, (2, 8, 8, 1)),
    ("lenet5", {}, (2, 8, 8, 1)),
    ("conv2", {"widths": (4, 8), "hidden": (16, 16)}, (2, 8, 8, 3)),
    ("conv4", {"widths": (4, 4, 8, 8), "hidden": (16, 16)}, (2, 8, 8, 3)),
    ("conv6", {"widths": (4, 4, 8, 8, 8, 8), "hidden": (16, 16)}, (2, 8, 8, 3)),
    ("vgg16", {"widths": (4,) * 13, "classifier_width": 8}, (2, 32, 32, 3)),
    ("resnet20", {}, (2, 8, 8, 3)),
    ("wrn", {"depth": 10, "width": 1, "dropout_rate": 0.3}, (2, 8, 8, 3)),
    ("resnet50", {}, (2, 32, 32, 3)),
]
HEAVY_OPS = ("dot_general", "conv_general_dilated")


def _heavy_eqns(jaxpr):
  """Every matmul/convolution equation in ``jaxpr`` and in the jaxprs nested in its equations."""
  for eqn in jaxpr.eqns:
    if eqn.primitive.name in HEAVY_OPS:
      yield eqn
    for value in eqn.params.values():
      for sub in value if isinstance(value, (list, tuple)) else (value,):
        if isinstance(sub, jax.extend.core.ClosedJaxpr):
          yield from _heavy_eqns(sub.jaxpr)
        elif isinstance(sub, jax.extend.core.Jaxpr):
          yield from _heavy_eqns(sub)


def _dtypes(tree):
  return {jnp.dtype(leaf.dtype) for leaf in jax.tree.leaves(tree)}


@pytest.mark.parametrize("name,kwargs,shape", ZOO, ids=[z[0] for z in ZOO])
def test_every_matmul_and_conv_runs_in_bf16_with_f32_params(name, kwargs, shape):
  model = models.create(name, 5, dtype=jnp.bfloat16, **kwargs)
  x = jax.ShapeDtypeStruct(shape, jnp.float32)
  params, state = jax.eval_shape(model.init, jax.random.key(0), x)
  assert _dtypes(params) == {jnp.dtype(jnp.float32)}
  assert _dtypes(state) <= {jnp.dtype(jnp.float32)}

  def forward(params, state, x, key):
    return model.apply(params, state, x, train=True, key=key)

  closed = jax.make_jaxpr(forward)(params, state, x, jax.random.key(1))
  heavy = list(_heavy_eqns(closed.jaxpr))
  assert heavy, f"{name}: no matmul or convolution found"
  for eqn in heavy:
    operand_dtypes = {jnp.dtype(v.aval.dtype) for v in eqn.invars}
    assert operand_dtypes == {jnp.dtype(jnp.bfloat16)}, (name, eqn.primitive.name, operand_dtypes)
  logits, new_state = jax.eval_shape(forward, params, state, x, jax.random.key(1))
  assert logits.dtype == jnp.float32 and logits.shape == (shape[0], 5)
  assert _dtypes(new_state) <= {jnp.dtype(jnp.float32)}


def _rel_err(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return np.linalg.norm(a - b) / np.linalg.norm(b)


# Small nets that are cheap to compile: a plain MLP, a plain CNN, and a CNN with batch norm.
TRAINED = [
    ("mlp", {"hidden": (32, 16)}, (8, 8, 8, 1)),
    ("conv2", {"widths": (8, 8), "hidden": (32, 32)}, (8, 8, 8, 3)),
    ("wrn", {"depth": 10, "width": 1}, (8, 8, 8, 3)),
]


@pytest.mark.parametrize("name,kwargs,shape", TRAINED, ids=[t[0] for t in TRAINED])
def test_bf16_train_step_keeps_f32_state_and_tracks_f32(name, kwargs, shape):
  num_classes = 5
  f32 = models.create(name, num_classes, **kwargs)
  bf16 = models.create(name, num_classes, dtype=jnp.bfloat16, **kwargs)
  kx, ky, kp = jax.random.split(jax.random.key(0), 3)
  batch = {"x": jax.random.uniform(kx, shape), "y": jax.random.randint(ky, (shape[0],), 0,
                                                                       num_classes)}
  params, state = bf16.init(kp, batch["x"])
  params_f32, _ = f32.init(kp, batch["x"])
  # The compute dtype does not change initialization.
  jax.tree.map(np.testing.assert_array_equal, params, params_f32)
  assert _dtypes((params, state)) <= {jnp.dtype(jnp.float32)}

  # Forward: float32 logits, within a few percent of the float32 model with the same parameters.
  for train in (False, True):
    lb = jax.jit(lambda p, s, x: bf16.apply(p, s, x, train=train)[0])(params, state, batch["x"])
    lf = jax.jit(lambda p, s, x: f32.apply(p, s, x, train=train)[0])(params, state, batch["x"])
    assert lb.dtype == jnp.float32
    assert not np.array_equal(lb, lf)  # bf16 rounding really happened
    print(f"{name} train={train}: logits rel. error {_rel_err(lb, lf):.4f}")
    assert _rel_err(lb, lf) < 5e-2, (name, train, _rel_err(lb, lf))

  # One SGD step: float32 params and batch stats out; the update tracks the float32 one.
  tx = lt.direction("sgd", momentum=0.0)
  sched = lt.schedule("constant", base_lr=0.1, total_steps=1)
  out = {}
  for tag, model in (("bf16", bf16), ("f32", f32)):
    step = jax.jit(lt.make_train_step(lt.cross_entropy(model), tx, sched))
    new, metrics = step(lt.TrainState.create(params, state, tx), batch, jax.random.key(1))
    assert np.isfinite(float(metrics["loss"]))
    out[tag] = (new, metrics)
  new, metrics = out["bf16"]
  assert _dtypes((new.params, new.model_state)) <= {jnp.dtype(jnp.float32)}
  assert metrics["loss"].dtype == jnp.float32
  np.testing.assert_allclose(float(metrics["loss"]), float(out["f32"][1]["loss"]), rtol=2e-2)
  delta_bf16 = jax.tree.map(jnp.subtract, new.params, params)
  delta_f32 = jax.tree.map(jnp.subtract, out["f32"][0].params, params)
  flat_b = np.concatenate([np.ravel(a) for a in jax.tree.leaves(delta_bf16)])
  flat_f = np.concatenate([np.ravel(a) for a in jax.tree.leaves(delta_f32)])
  assert np.linalg.norm(flat_f) > 0
  # Gradients flow through bf16 activations (and batch norm's mean subtraction amplifies their
  # rounding), so the update differs by a few to ~15 percent: the direction must still agree.
  cosine = flat_b @ flat_f / (np.linalg.norm(flat_b) * np.linalg.norm(flat_f))
  print(f"{name}: update rel. error {_rel_err(flat_b, flat_f):.4f}, cosine {cosine:.5f}")
  assert _rel_err(flat_b, flat_f) < 0.25 and cosine > 0.97, (name, _rel_err(flat_b, flat_f), cosine)
  if state:  # batch norm running statistics were updated, in float32, close to float32's
    stats_b, stats_f = jax.tree.leaves(new.model_state), jax.tree.leaves(out["f32"][0].model_state)
    for b, f in zip(stats_b, stats_f):
      np.testing.assert_allclose(b, f, rtol=5e-2, atol=5e-3)
