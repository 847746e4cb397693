"""APGD and the AutoAttack-style evaluation: the step rule against a NumPy reference written here,
the known optimum of a linear model, the DLR losses by hand, compilation, and strength against
PGD-100 with 5 restarts on a trained digits model."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lipprune import data as data_lib
from lipprune import models
from lipprune.robust import apgd, attacks, evaluate, losses
from lipprune.train import TrainState, direction, loop, make_train_step, schedule


def test_checkpoints_follow_the_papers_schedule():
  # p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06); w_j = ceil(p_j N)
  assert apgd.checkpoints(100) == (22, 41, 57, 70, 80, 87, 93, 99)
  p, q, expected = 0.0, 0.22, []
  while q <= 1:
    expected.append(math.ceil(round(q * 250, 9)))
    p, q = q, q + max(q - p - 0.03, 0.06)
  assert apgd.checkpoints(250) == tuple(expected)


def test_dlr_losses_by_hand():
  logits = jnp.array([[3.0, 1.0, 0.5, -1.0, 2.0]])
  y = jnp.array([0])
  # sorted: 3, 2, 1, 0.5, -1 -> pi1 = 3, pi3 = 1, pi4 = 0.5
  np.testing.assert_allclose(apgd.dlr(logits, y), [-(3.0 - 2.0) / (3.0 - 1.0)], rtol=1e-6)
  np.testing.assert_allclose(apgd.dlr(logits, jnp.array([2])), [-(0.5 - 3.0) / 2.0], rtol=1e-6)
  np.testing.assert_allclose(apgd.dlr_targeted(logits, y, jnp.array([3])),
                             [-(3.0 + 1.0) / (3.0 - 0.75)], rtol=1e-6)
  np.testing.assert_array_equal(apgd.target_classes(logits, 3), [[4], [1], [2]])


def _mlp(seed=0, dim=6, hidden=8, classes=4):
  rng = np.random.default_rng(seed)
  w1 = rng.normal(size=(dim, hidden)).astype(np.float32)
  b1 = rng.normal(size=hidden).astype(np.float32) * 0.1
  w2 = rng.normal(size=(hidden, classes)).astype(np.float32)
  return w1, b1, w2


def _reference_apgd_ce(w1, b1, w2, x, y, x0, *, eps, steps, alpha=0.75, rho=0.75):
  """Croce & Hein's Algorithm 1 (l_inf, CE), one example at a time, with the MLP's input
  gradient derived by hand; returns the first misclassified iterate, else the best-loss one."""
  w1, b1, w2 = (np.asarray(a, np.float64) for a in (w1, b1, w2))

  def loss_grad(z, label):
    h = np.tanh(z @ w1 + b1)
    logits = h @ w2
    p = np.exp(logits - logits.max())
    p /= p.sum()
    dz = p.copy()
    dz[label] -= 1.0
    grad = ((dz @ w2.T) * (1 - h ** 2)) @ w1.T
    return -np.log(p[label]), grad, int(np.argmax(logits))

  p_prev, p, marks = 0.0, 0.22, []
  while p <= 1:
    marks.append(math.ceil(round(p * steps, 9)))
    p_prev, p = p, p + max(p - p_prev - 0.03, 0.06)
  out = []
  for xi, yi, start in zip(np.asarray(x, np.float64), np.asarray(y), np.asarray(x0, np.float64)):
    def proj(z):
      return np.clip(np.clip(z, xi - eps, xi + eps), 0.0, 1.0)

    f, g, pred = loss_grad(start, yi)
    found = start if pred != yi else None
    x_prev, cur, eta = start, start, 2 * eps
    best, g_best, f_best = start, g, f
    last_mark, f_best_mark, halved_last, ups = 0, f, False, 0
    for k in range(steps):
      z = proj(cur + eta * np.sign(g))
      a = alpha if k > 0 else 1.0
      new = proj(cur + a * (z - cur) + (1 - a) * (cur - x_prev))
      f_new, g_new, pred = loss_grad(new, yi)
      ups += f_new > f
      if found is None and pred != yi:
        found = new
      if f_new > f_best:
        best, g_best, f_best = new, g_new, f_new
      x_prev, cur, g, f = cur, new, g_new, f_new
      if k + 1 in marks:
        halve = ups < rho * (k + 1 - last_mark) or (not halved_last and f_best <= f_best_mark)
        if halve:
          eta, cur, g, f = eta / 2, best, g_best, f_best
        halved_last, f_best_mark, last_mark, ups = halve, f_best, k + 1, 0
    out.append(found if found is not None else best)
  return np.stack(out)


def test_apgd_step_rule_matches_numpy_reference():
  w1, b1, w2 = _mlp()
  fn = lambda z: jnp.tanh(z @ w1 + b1) @ w2  # noqa: E731
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.uniform(0.0, 1.0, (24, 6)), jnp.float32)
  y = jnp.asarray(rng.integers(0, 4, 24))
  key = jax.random.key(3)
  eps, steps = 0.15, 30
  # the start: u ~ U(-1, 1)^d drawn from the first restart's key, scaled to eps * u / ||u||_inf
  u = np.asarray(jax.random.uniform(jax.random.fold_in(key, 0), x.shape, jnp.float32, -1.0, 1.0))
  x0 = np.clip(np.asarray(x) + eps * u / np.abs(u).max(1, keepdims=True), 0.0, 1.0)
  expected = _reference_apgd_ce(w1, b1, w2, x, y, x0, eps=eps, steps=steps)
  got = jax.jit(lambda x, y: apgd.apgd(fn, x, y, key, eps=eps, steps=steps))(x, y)
  np.testing.assert_allclose(np.asarray(got), expected, atol=1e-5)
  assert np.abs(np.asarray(got) - np.asarray(x)).max() <= eps + 1e-6


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_apgd_reaches_the_linear_models_optimum(norm):
  # Two-class linear model with a margin larger than any eps-perturbation can remove: CE falls with
  # the margin v.x' + c, so the worst point is x - eps sign(v) (l_inf) or x - eps v / ||v|| (l_2).
  rng = np.random.default_rng(0)
  # Only class 1's logit moves, so CE and DLR (whose denominator z_pi1 - z_pi3 = 3 - (-20) is then
  # constant) share the maximizer; the third class never wins and makes DLR defined. The margin
  # stays near 2, where float32 CE still resolves the differences APGD compares.
  w = np.zeros((6, 3), np.float32)
  w[:, 1] = rng.normal(size=6)
  b = np.array([3.0, -1.0, -20.0], np.float32)
  fn = lambda z: z @ w + b  # noqa: E731
  x = jnp.asarray(rng.uniform(0.3, 0.7, size=(10, 6)), jnp.float32)
  y = jnp.zeros(10, jnp.int32)
  v = w[:, 0] - w[:, 1]
  eps = 0.2
  if norm == "linf":
    expected = np.asarray(x) - eps * np.sign(v)
  else:
    expected = np.asarray(x) - eps * v / np.linalg.norm(v)
  for loss in ("ce", "dlr"):
    x_adv = apgd.apgd(fn, x, y, jax.random.key(0), eps=eps, norm=norm, steps=50, loss=loss)
    assert np.all(np.argmax(np.asarray(fn(x_adv)), -1) == 0)  # still robust
    np.testing.assert_allclose(np.asarray(x_adv), expected, atol=2e-3)


def test_autoattack_is_compiled_with_static_loops():
  w1, b1, w2 = _mlp()
  fn = lambda z: jnp.tanh(z @ w1 + b1) @ w2  # noqa: E731
  x = jnp.full((4, 6), 0.5)
  y = jnp.zeros(4, jnp.int32)

  def size(steps):
    jaxpr = jax.make_jaxpr(lambda x, y: apgd.autoattack(fn, x, y, jax.random.key(0), eps=0.1,
                                                        steps=steps, restarts=2))(x, y)
    return len(jaxpr.eqns), str(jaxpr).count("while")

  assert size(20) == size(100)  # the iterations live in lax loops, not in the trace
  with pytest.raises(ValueError, match="4 classes"):
    apgd.apgd(lambda z: z[:, :3], x, y, jax.random.key(0), eps=0.1, loss="dlr_targeted",
              target=y)


@pytest.fixture(scope="module")
def digits_model():
  """A natural MLP trained on digits for 300 steps (a few seconds), and the test set."""
  train = data_lib.load("digits", "train")
  test = data_lib.load("digits", "test")
  model = models.create("mlp", 10, hidden=(64,))
  params, state = model.init(jax.random.key(0), train.x[:1])
  tx = direction("sgd", momentum=0.9)
  step = jax.jit(make_train_step(losses.natural(model), tx,
                                 schedule("constant", base_lr=0.05, total_steps=300)))
  ts = loop.train(TrainState.create(params, state, tx), step, train.arrays(), batch_size=64,
                  num_steps=300, key=jax.random.key(1), log_every=0)
  return model, ts, test


def test_autoattack_not_weaker_than_pgd100_with_5_restarts(digits_model):
  model, ts, test = digits_model
  fn = lambda z: model.apply(ts.params, ts.model_state, z, train=False)[0]  # noqa: E731
  x, y = jnp.asarray(test.x), jnp.asarray(test.y)
  eps = 0.08
  x_pgd = jax.jit(lambda x, y: attacks.pgd_restarts(
      fn, x, y, jax.random.key(2), restarts=5, eps=eps, step_size=eps / 4, steps=100))(x, y)
  clean = np.asarray(jnp.argmax(fn(x), -1) == y)
  pgd_robust = clean & np.asarray(jnp.argmax(fn(x_pgd), -1) == y)
  aa = jax.jit(lambda x, y: apgd.autoattack(fn, x, y, jax.random.key(3), eps=eps))(x, y)
  aa = {k: np.asarray(v) for k, v in aa.items()}
  np.testing.assert_array_equal(aa["clean"], clean)
  np.testing.assert_array_equal(aa["robust"], aa["apgd_ce"] & aa["apgd_t"])
  assert 0.2 < pgd_robust.mean() < 0.9  # a radius where the comparison means something
  assert aa["robust"].mean() <= pgd_robust.mean()
  assert aa["apgd_ce"].mean() <= pgd_robust.mean() + 0.01
  # the evaluator's dataset-level protocol (APGD-T only on APGD-CE's survivors) agrees
  ev = evaluate.make_robust_evaluator(model, num_classes=10, eps=eps, steps=5, lipschitz=False,
                                      autoattack=True, batch_size=128)
  r = ev(ts.params, ts.model_state, test.arrays(), jax.random.key(4))
  assert r["aa_accuracy"] <= r["apgd_ce_accuracy"] <= r["accuracy"]
  assert abs(r["aa_accuracy"] - aa["robust"].mean()) <= 0.02
  assert r["aa_accuracy"] <= pgd_robust.mean()
