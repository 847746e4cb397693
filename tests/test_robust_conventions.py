"""The official code's conventions (Yang et al.'s robust-local-lipschitz), each checked against an
independent computation written here: loss reductions and the learning-rate translation rule, the
gradient-regularization convention, Yang's LLR, and the local Lipschitz estimators."""
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lipprune.models import Model
from lipprune.robust import lipschitz, losses
from lipprune.train import TrainState, direction, make_train_step, schedule
from tests.conftest import TinyMLP


def _setup(n=16, dim=8, classes=3, seed=0, batch_norm=False):
  model = Model(TinyMLP(num_classes=classes, use_bn=batch_norm))
  kx, ky, kp = jax.random.split(jax.random.key(seed), 3)
  x = jax.random.uniform(kx, (n, dim))
  y = jax.random.randint(ky, (n,), 0, classes)
  params, state = model.init(kp, x[:1])
  return model, params, state, x, y


_METHODS = [("natural", {}), ("adversarial", dict(eps=0.1, steps=3)),
            ("rst", dict(eps=0.1, steps=3)), ("trades", dict(eps=0.1, steps=3)),
            ("gradient_regularization", {}), ("llr", dict(eps=0.1, steps=3)),
            ("llr_yang", dict(eps=0.1))]


def test_every_method_has_a_reduction_option():
  assert {m for m, _ in _METHODS} == set(losses.METHODS)
  for name in losses.METHODS:
    assert "reduction" in inspect.signature(getattr(losses, name)).parameters, name
  with pytest.raises(ValueError, match="reduction"):
    losses.trades(None, eps=0.1, reduction="none")


@pytest.mark.parametrize("name,kw", _METHODS)
def test_summed_loss_is_batch_size_times_mean(name, kw):
  model, params, state, x, y = _setup(batch_norm=True)
  batch, key = {"x": x, "y": y}, jax.random.key(3)
  mean, aux_m = losses.make_loss(name, model, **kw)(params, state, batch, key)
  total, aux_s = losses.make_loss(name, model, reduction="sum", **kw)(params, state, batch, key)
  np.testing.assert_allclose(total, len(x) * mean, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(aux_m["model_state"]), jax.tree.leaves(aux_s["model_state"])):
    np.testing.assert_allclose(a, b, rtol=1e-6)
  if name != "llr_yang":  # weighted: sum_i w_i l_i, the weighted mean times sum_i w_i
    w = jnp.linspace(0.5, 2.0, len(x))
    wb = {"x": x, "y": y, "weight": w}
    mean_w = losses.make_loss(name, model, **kw)(params, state, wb, key)[0]
    sum_w = losses.make_loss(name, model, reduction="sum", **kw)(params, state, wb, key)[0]
    np.testing.assert_allclose(sum_w, float(jnp.sum(w)) * mean_w, rtol=1e-5)


def _steps(loss_fn, tx, lr, params, state, batches):
  ts = TrainState.create(params, state, tx)
  step = jax.jit(make_train_step(loss_fn, tx, schedule("constant", base_lr=lr, total_steps=10)))
  for i, b in enumerate(batches):
    ts, _ = step(ts, b, jax.random.key(i))
  return ts.params


@pytest.mark.parametrize("name,kw", [("natural", {}), ("trades", dict(eps=0.1, beta=6.0, steps=3))])
def test_learning_rate_translation_rule(name, kw):
  """Summed loss at lr == mean loss at batch_size * lr under SGD (momentum too); Adam: same lr."""
  model, params, state, x, y = _setup(n=32)
  batches = [{"x": x[:16], "y": y[:16]}, {"x": x[16:], "y": y[16:]}, {"x": x[:16], "y": y[:16]}]
  summed = losses.make_loss(name, model, reduction="sum", **kw)
  mean = losses.make_loss(name, model, **kw)
  for momentum in (0.0, 0.9):
    tx = direction("sgd", momentum=momentum)
    p_sum = _steps(summed, tx, 1e-3, params, state, batches)
    p_mean = _steps(mean, tx, 16 * 1e-3, params, state, batches)
    p_wrong = _steps(mean, tx, 1e-3, params, state, batches)
    for a, b, c, p0 in zip(*map(jax.tree.leaves, (p_sum, p_mean, p_wrong, params))):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    moved = [np.abs(np.asarray(a) - np.asarray(p0)).max() for a, p0 in
             zip(jax.tree.leaves(p_sum), jax.tree.leaves(params))]
    not_translated = [np.abs(np.asarray(a) - np.asarray(c)).max() for a, c in
                      zip(jax.tree.leaves(p_sum), jax.tree.leaves(p_wrong))]
    assert max(not_translated) > 0.5 * max(moved)  # the untranslated rate is far off
  tx = direction("adam", eps=1e-12)
  p_sum = _steps(summed, tx, 1e-3, params, state, batches)
  p_mean = _steps(mean, tx, 1e-3, params, state, batches)
  for a, b in zip(jax.tree.leaves(p_sum), jax.tree.leaves(p_mean)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_gradient_regularization_default_is_the_paper_codes():
  """tulip.py: sum CE + lam * sum (dl^2) / 2 with dl = (CE(x + h g/|g|) - CE(x)) / h, h = 1."""
  model, params, state, x, y = _setup()

  def ce_one(xi, yi):
    logits = model.apply(params, state, xi[None], train=False)[0]
    return optax.softmax_cross_entropy_with_integer_labels(logits, yi[None])[0]

  ce = np.asarray(jax.vmap(ce_one)(x, y))
  g = np.asarray(jax.vmap(jax.grad(ce_one))(x, y))
  v = g / np.linalg.norm(g, axis=1, keepdims=True)
  ce_h = np.asarray(jax.vmap(ce_one)(x + 1.0 * v, y))
  dl = (ce_h - ce) / 1.0
  lam = 0.7
  official_sum = ce.sum() + lam * (dl ** 2).sum() / 2
  batch, key = {"x": x, "y": y}, jax.random.key(0)
  total = losses.gradient_regularization(model, lam=lam, reduction="sum")(params, state, batch, key)
  np.testing.assert_allclose(total[0], official_sum, rtol=1e-5)
  mean = losses.gradient_regularization(model, lam=lam)(params, state, batch, key)
  np.testing.assert_allclose(mean[0], official_sum / len(x), rtol=1e-5)
  # the textbook form: CE + lam ||g||^2
  exact = losses.gradient_regularization(model, lam=lam, finite_difference=False, half=False)
  np.testing.assert_allclose(exact(params, state, batch, key)[0],
                             ce.mean() + lam * (g ** 2).sum(1).mean(), rtol=1e-5)


def test_attack_batch_norm_mode_per_method_follows_the_official_code():
  defaults = {name: inspect.signature(getattr(losses, name)).parameters["attack_bn_train"].default
              for name in ("adversarial", "rst", "trades", "llr", "llr_yang")}
  # torch_model.py: model.train() before the PGD of advce/advbeta; trades.py and llr.py call
  # model.eval() before their inner maximization.
  assert defaults == {"adversarial": True, "rst": True, "trades": False, "llr": False,
                      "llr_yang": False}


def _llr_yang_reference(model, params, state, x, y, noise, *, eps, lam, mu, steps, step_size,
                        detached):
  """llr.py, line by line, with numpy for everything but the network's gradients."""
  xs, ys = np.asarray(x, np.float64), np.asarray(y)
  b = len(xs)

  def ce_sum_eval(z):
    logits = model.apply(params, state, z, train=False)[0]
    return jnp.sum(optax.softmax_cross_entropy_with_integer_labels(logits, y))

  mg = np.asarray(jax.grad(ce_sum_eval)(x), np.float64) if detached else np.zeros_like(xs)

  def grad_dot(delta):
    return np.mean(mg.reshape(b, -1) @ delta.reshape(b, -1).T)

  delta = np.asarray(noise, np.float64)
  for _ in range(steps):
    value = float(ce_sum_eval(jnp.asarray(xs + delta, jnp.float32))) - grad_dot(delta)
    g_ce = np.asarray(jax.grad(ce_sum_eval)(jnp.asarray(xs + delta, jnp.float32)), np.float64)
    g = np.sign(value) * (g_ce - mg.sum(0, keepdims=True) / b ** 2)
    g = g / np.abs(g).max(axis=1, keepdims=True)
    delta = delta + step_size * g
    delta = np.clip(xs + delta, 0, 1) - xs
    n = np.abs(delta).max(axis=1, keepdims=True)
    delta = np.where(n > eps, delta * eps / (n + 1e-7), delta)
  logits = model.apply(params, state, x, train=True)[0]
  ce = float(jnp.sum(optax.softmax_cross_entropy_with_integer_labels(logits, y)))
  logits_a = model.apply(params, state, jnp.asarray(xs + delta, jnp.float32), train=True)[0]
  ce_a = float(jnp.sum(optax.softmax_cross_entropy_with_integer_labels(logits_a, y)))
  return ce + lam * abs(ce_a - grad_dot(delta)) + mu * grad_dot(delta) * b, delta


@pytest.mark.parametrize("input_grad", ["zero", "detached"])
def test_llr_yang_matches_the_official_formula(input_grad):
  model, params, state, x, y = _setup(n=12, seed=2)
  key = jax.random.key(5)
  akey = jax.random.split(key, 4)[0]  # the loss draws its start noise from its first subkey
  noise = 1e-3 * jax.random.normal(akey, x.shape)
  eps = 0.2
  expected, delta = _llr_yang_reference(model, params, state, x, y, noise, eps=eps, lam=4.0, mu=3.0,
                                        steps=2, step_size=eps / 2,
                                        detached=input_grad == "detached")
  fn = losses.llr_yang(model, eps=eps, input_grad=input_grad, reduction="sum")
  total, aux = fn(params, state, {"x": x, "y": y}, key)
  np.testing.assert_allclose(total, expected, rtol=1e-5)
  assert np.abs(delta).max() > 0.9 * eps  # two steps of eps / 2 reach the sphere
  if input_grad == "zero":
    assert float(aux["metrics"]["llr_grad_dot"]) == 0.0
  else:
    assert float(aux["metrics"]["llr_grad_dot"]) != 0.0
  with pytest.raises(ValueError, match="input_grad"):
    losses.llr_yang(model, eps=eps, input_grad="live")


def _official_lipschitz(fn, x, noise, *, eps, step_size, steps, sign, shift):
  """estimate_local_lip_v2 of lolip/utils.py, written with numpy around the model's gradient:
  x' = x + noise (no clip); each step x' += sign * step_size * sign(grad mean ratio), then clip to
  the eps-ball and to [0, 1]; the score is the ratio at the last iterate. The released code's
  ``sign`` is -1 (it steps along the gradient of the negated ratio)."""
  xs = np.asarray(x, np.float32)  # float32 like the model, so that no sign(g) tie breaks apart
  fx = fn(x)

  def ratio(z):
    top = jnp.sum(jnp.abs(fx - fn(z)), axis=1)
    bottom = jnp.max(jnp.abs(x - z + shift), axis=1)
    return top / bottom

  z = xs + np.asarray(noise, np.float32)
  for _ in range(steps):
    g = np.asarray(jax.grad(lambda v: jnp.mean(ratio(v)))(jnp.asarray(z)))
    z = z + np.float32(sign * step_size) * np.sign(g)
    z = np.clip(xs + np.clip(z - xs, np.float32(-eps), np.float32(eps)), 0, 1).astype(np.float32)
  return np.asarray(ratio(jnp.asarray(z)))


def test_local_lipschitz_without_start_clip_equals_the_official_formula():
  model, params, state, x, y = _setup(n=20, seed=4)
  x = x.at[:5].set(jnp.round(x[:5]))  # pixels at 0 and 1, where the start leaves the box
  fn = lambda z: model.apply(params, state, z, train=False)[0]  # noqa: E731
  key = jax.random.key(9)
  noise = 1e-3 * jax.random.normal(key, x.shape)
  kw = dict(eps=0.1, step_size=0.003, steps=10)
  ascent = _official_lipschitz(fn, x, noise, sign=1.0, shift=0.0, **kw)
  ours = lipschitz.local_lipschitz(fn, x, key, keep_best=False, **kw)
  np.testing.assert_allclose(ours, ascent, rtol=1e-4)
  released = _official_lipschitz(fn, x, noise, sign=-1.0, shift=1e-6, **kw)
  ours_released = lipschitz.local_lipschitz(fn, x, key, **kw, **lipschitz.ESTIMATORS["released"])
  np.testing.assert_allclose(ours_released, released, rtol=1e-4)
  assert released.mean() < 0.5 * ascent.mean()  # descending the ratio finds far smaller values
  # keeping the best iterate never lowers the estimate; clipping the start changes it
  best = lipschitz.local_lipschitz(fn, x, key, **kw)
  assert np.all(np.asarray(best) >= ascent * (1 - 1e-5))
  clipped = lipschitz.local_lipschitz(fn, x, key, keep_best=False, start_clip=True, **kw)
  assert not np.allclose(clipped, ascent, rtol=1e-6)
  with pytest.raises(ValueError, match="direction"):
    lipschitz.local_lipschitz(fn, x, key, eps=0.1, direction="sideways")
