"""Auto-PGD and an AutoAttack-style evaluation (Croce & Hein, ICML 2020), in JAX.

APGD is PGD with momentum and a step size that adapts itself, so it has no step-size parameter to
tune. With ``N`` iterations, projection ``P`` onto the ``eps``-ball (l_inf or l_2) and the box,
``s(g) = sign(g)`` (l_inf) or ``g / ||g||_2`` (l_2), ``eta_0 = 2 eps`` and ``alpha = 0.75``:

  z_{k+1} = P(x_k + eta_k s(grad f(x_k)))
  x_{k+1} = P(x_k + a_k (z_{k+1} - x_k) + (1 - a_k)(x_k - x_{k-1})),  a_0 = 1, a_k = alpha,

keeping per example the iterate with the largest loss ``f_max``/``x_max``. At the checkpoints
``w_j = ceil(p_j N)``, ``p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``
(for ``N = 100``: 22, 41, 57, 70, 80, 87, 93, 99), the step is halved and the iterate restarts
from ``x_max`` (with its gradient) when

  1. the loss rose in fewer than ``rho (w_j - w_{j-1})`` of the iterations since the last
     checkpoint (``rho = 0.75``), or
  2. the step was not halved at the last checkpoint and ``f_max`` has not improved since.

We follow the paper's text where the authors' code differs in detail: condition 1 is a strict
``<``, condition 2 may fire at the first checkpoint, and the checkpoints are ``ceil(p_j N)``
(equal to the code's integer schedule for ``N = 100``). The start is the code's: a uniform
``t ~ U(-1, 1)^d`` rescaled to ``eps * t / ||t||_inf`` (l_inf) or a Gaussian direction of length
``eps`` (l_2), clipped to the box.

Losses (``loss=``): ``'ce'`` (APGD-CE); ``'dlr'``, the difference-of-logits ratio
``-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3)`` (``z`` sorted decreasingly; at least 3 classes);
``'dlr_targeted'`` (APGD-T), ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)`` (at least 4).

An example counts as broken as soon as any iterate is misclassified; `apgd` returns that iterate
(else the largest-loss one). Everything is traceable under ``jax.jit``: the iteration count, the
number of restarts and of target classes are static and the loops are ``lax.fori_loop``.

`autoattack` is the ``standard`` AutoAttack sequence without its FAB-T and Square members: APGD-CE
(1 restart) then APGD-T (``num_targets`` = min(9, classes - 1) targets: the classes with the
largest clean logits after the top one, 1 restart each), both ``N = 100``, reporting per point
which attacks it survives; the robust accuracy is the fraction surviving every attack.
"""
from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lipprune.robust.attacks import NORMS, _check_choice, _expand, _flat_norm, ascent_direction
from lipprune.robust.attacks import project

LOSSES = ("ce", "dlr", "dlr_targeted")


def checkpoints(steps: int) -> tuple[int, ...]:
  """The iterations ``w_1 < w_2 < ...`` (in 1..steps) at which APGD may halve its step."""
  p_prev, p, out = 0.0, 0.22, []
  while p <= 1.0:
    w = math.ceil(round(p * steps, 9))
    if 0 < w <= steps and (not out or w > out[-1]):
      out.append(w)
    p_prev, p = p, p + max(p - p_prev - 0.03, 0.06)
  return tuple(out)


def _sorted_logits(logits):
  return -jnp.sort(-logits, axis=-1)


def dlr(logits: jax.Array, y: jax.Array) -> jax.Array:
  """Untargeted difference-of-logits ratio per example (larger = closer to misclassified)."""
  z = _sorted_logits(logits)
  true = jnp.take_along_axis(logits, y[:, None], axis=-1)[:, 0]
  other = jnp.max(jnp.where(jax.nn.one_hot(y, logits.shape[-1], dtype=bool), -jnp.inf, logits), -1)
  return -(true - other) / (z[:, 0] - z[:, 2] + 1e-12)


def dlr_targeted(logits: jax.Array, y: jax.Array, target: jax.Array) -> jax.Array:
  """Targeted DLR ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)`` per example."""
  z = _sorted_logits(logits)
  true = jnp.take_along_axis(logits, y[:, None], axis=-1)[:, 0]
  tgt = jnp.take_along_axis(logits, target[:, None], axis=-1)[:, 0]
  return -(true - tgt) / (z[:, 0] - 0.5 * (z[:, 2] + z[:, 3]) + 1e-12)


def _loss_values(logits, y, loss, target):
  if loss == "ce":
    return optax.softmax_cross_entropy_with_integer_labels(logits, y)
  if loss == "dlr":
    return dlr(logits, y)
  return dlr_targeted(logits, y, target)


def _start(key, x, eps, norm, box):
  if norm == "linf":
    t = jax.random.uniform(key, x.shape, x.dtype, -1.0, 1.0)
    scale = jnp.max(jnp.abs(t.reshape(t.shape[0], -1)), axis=1)
  else:
    t = jax.random.normal(key, x.shape, x.dtype)
    scale = _flat_norm(t)
  x0 = x + eps * t / _expand(jnp.maximum(scale, 1e-12), t)
  return x0 if box is None else jnp.clip(x0, box[0], box[1])


def _check_classes(logits_fn, x, loss):
  num_classes = jax.eval_shape(logits_fn, x).shape[-1]
  need = {"ce": 2, "dlr": 3, "dlr_targeted": 4}[loss]
  if num_classes < need:
    raise ValueError(f"loss={loss!r} needs at least {need} classes, the model has {num_classes}")
  return num_classes


def _one_run(logits_fn, x, y, key, *, eps, norm, steps, loss, target, alpha, rho, box):
  """One APGD run; returns (x_out, fooled (B,), best loss (B,))."""
  ckpt = checkpoints(steps)
  is_ckpt = np.zeros(steps + 1, bool)
  window = np.zeros(steps + 1, np.float32)
  prev = 0
  for w in ckpt:
    is_ckpt[w], window[w], prev = True, w - prev, w
  is_ckpt, window = jnp.asarray(is_ckpt), jnp.asarray(window)

  def value_and_grad(z):
    def total(z):
      logits = logits_fn(z)
      vals = _loss_values(logits, y, loss, target)
      return jnp.sum(vals), (vals, logits)
    (_, (vals, logits)), g = jax.value_and_grad(total, has_aux=True)(z)
    return vals, g, jnp.argmax(logits, -1) != y

  def proj(z):
    return project(z, x, eps=eps, norm=norm, box=box)

  x0 = _start(key, x, eps, norm, box)
  f0, g0, fooled0 = value_and_grad(x0)
  b = x.shape[0]
  init = dict(x_prev=x0, x=x0, g=g0, f=f0, eta=jnp.full((b,), 2.0 * eps, x.dtype),
              x_best=x0, g_best=g0, f_best=f0, f_best_ckpt=f0,
              halved_last=jnp.zeros((b,), bool), increases=jnp.zeros((b,), jnp.float32),
              x_found=x0, fooled=fooled0)

  def body(k, s):
    a = jnp.where(k > 0, alpha, 1.0)
    z = proj(s["x"] + _expand(s["eta"], x) * ascent_direction(s["g"], norm))
    x_new = proj(s["x"] + a * (z - s["x"]) + (1.0 - a) * (s["x"] - s["x_prev"]))
    f_new, g_new, fooled_new = value_and_grad(x_new)
    s = dict(s)
    s["increases"] = s["increases"] + (f_new > s["f"])
    newly = fooled_new & ~s["fooled"]
    s["x_found"] = jnp.where(_expand(newly, x), x_new, s["x_found"])
    s["fooled"] = s["fooled"] | fooled_new
    better = f_new > s["f_best"]
    s["x_best"] = jnp.where(_expand(better, x), x_new, s["x_best"])
    s["g_best"] = jnp.where(_expand(better, x), g_new, s["g_best"])
    s["f_best"] = jnp.where(better, f_new, s["f_best"])
    s["x_prev"], s["x"], s["g"], s["f"] = s["x"], x_new, g_new, f_new
    at_ckpt = is_ckpt[k + 1]
    cond1 = s["increases"] < rho * window[k + 1]
    cond2 = ~s["halved_last"] & (s["f_best"] <= s["f_best_ckpt"])
    halve = at_ckpt & (cond1 | cond2)
    s["eta"] = jnp.where(halve, 0.5 * s["eta"], s["eta"])
    s["x"] = jnp.where(_expand(halve, x), s["x_best"], s["x"])
    s["g"] = jnp.where(_expand(halve, x), s["g_best"], s["g"])
    s["f"] = jnp.where(halve, s["f_best"], s["f"])
    s["halved_last"] = jnp.where(at_ckpt, halve, s["halved_last"])
    s["f_best_ckpt"] = jnp.where(at_ckpt, s["f_best"], s["f_best_ckpt"])
    s["increases"] = jnp.where(at_ckpt, 0.0, s["increases"])
    return s

  s = jax.lax.fori_loop(0, steps, body, init)
  x_out = jnp.where(_expand(s["fooled"], x), s["x_found"], s["x_best"])
  return x_out, s["fooled"], s["f_best"]


def apgd(logits_fn: Callable, x: jax.Array, y: jax.Array, key: jax.Array, *, eps: float,
         norm: str = "linf", steps: int = 100, loss: str = "ce", target: jax.Array | None = None,
         restarts: int = 1, alpha: float = 0.75, rho: float = 0.75,
         box: tuple[float, float] | None = (0.0, 1.0)) -> jax.Array:
  """APGD with ``loss`` (see the module docstring) and ``restarts`` random starts.

  Returns adversarial inputs (shape of ``x``, inside the ball and the box): per example a
  misclassified iterate of any restart if one was found, else the largest-loss iterate.
  ``target`` (B,) is required for ``loss='dlr_targeted'``.
  """
  _check_choice("norm", norm, NORMS)
  _check_choice("loss", loss, LOSSES)
  if loss == "dlr_targeted" and target is None:
    raise ValueError("loss='dlr_targeted' needs target")
  if steps < 1 or restarts < 1:
    raise ValueError(f"steps={steps}, restarts={restarts}; both must be >= 1")
  _check_classes(logits_fn, x, loss)
  run = lambda k: _one_run(logits_fn, x, y, k, eps=eps, norm=norm, steps=steps,  # noqa: E731
                           loss=loss, target=target, alpha=alpha, rho=rho, box=box)

  def body(r, carry):
    x_out, fooled, f_best = carry
    cand, fooled_r, f_r = run(jax.random.fold_in(key, r))
    take = (fooled_r & ~fooled) | (~fooled & ~fooled_r & (f_r > f_best))
    return (jnp.where(_expand(take, x), cand, x_out), fooled | fooled_r,
            jnp.where(take, f_r, f_best))

  first = run(jax.random.fold_in(key, 0))
  x_out, _, _ = jax.lax.fori_loop(1, restarts, body, first)
  return x_out


def target_classes(clean_logits: jax.Array, num_targets: int) -> jax.Array:
  """(num_targets, B): for each example the classes with the 2nd, 3rd, ... largest clean logit."""
  order = jnp.argsort(-clean_logits, axis=-1)
  return order[:, 1:num_targets + 1].T


def apgd_targeted(logits_fn: Callable, x: jax.Array, y: jax.Array, key: jax.Array, *,
                  eps: float, norm: str = "linf", steps: int = 100, num_targets: int = 9,
                  restarts: int = 1, box: tuple[float, float] | None = (0.0, 1.0)) -> jax.Array:
  """APGD-T: targeted-DLR APGD toward each of the ``num_targets`` classes with the largest clean
  logits after the top one (capped at classes - 1), keeping per example a successful target."""
  num_classes = _check_classes(logits_fn, x, "dlr_targeted")
  num_targets = min(num_targets, num_classes - 1)
  targets = target_classes(jax.lax.stop_gradient(logits_fn(x)), num_targets)

  def body(j, carry):
    x_out, fooled = carry
    cand = apgd(logits_fn, x, y, jax.random.fold_in(key, j), eps=eps, norm=norm, steps=steps,
                loss="dlr_targeted", target=targets[j], restarts=restarts, box=box)
    fooled_j = jnp.argmax(logits_fn(cand), -1) != y
    take = fooled_j & ~fooled
    return jnp.where(_expand(take, x), cand, x_out), fooled | fooled_j

  x_out, _ = jax.lax.fori_loop(0, num_targets, body,
                               (x, jnp.argmax(logits_fn(x), -1) != y))
  return x_out


def autoattack(logits_fn: Callable, x: jax.Array, y: jax.Array, key: jax.Array, *, eps: float,
               norm: str = "linf", steps: int = 100, restarts: int = 1, num_targets: int = 9,
               box: tuple[float, float] | None = (0.0, 1.0)) -> dict[str, jax.Array]:
  """The ``standard`` APGD-CE + APGD-T evaluation of one batch.

  Returns boolean (B,) arrays: ``clean`` (correct on ``x``), ``apgd_ce`` and ``apgd_t`` (correct
  under that attack alone, and clean-correct), ``robust`` (all of them: the per-point worst case).
  Both attacks run on the whole batch here (a jitted batch has a fixed shape); `lipprune.robust.
  evaluate` runs APGD-T only on the points APGD-CE left robust, which gives the same ``robust``.
  """
  k_ce, k_t = jax.random.split(key)
  clean = jnp.argmax(logits_fn(x), -1) == y
  x_ce = apgd(logits_fn, x, y, k_ce, eps=eps, norm=norm, steps=steps, loss="ce",
              restarts=restarts, box=box)
  x_t = apgd_targeted(logits_fn, x, y, k_t, eps=eps, norm=norm, steps=steps,
                      num_targets=num_targets, restarts=restarts, box=box)
  ce_ok = clean & (jnp.argmax(logits_fn(x_ce), -1) == y)
  t_ok = clean & (jnp.argmax(logits_fn(x_t), -1) == y)
  return {"clean": clean, "apgd_ce": ce_ok, "apgd_t": t_ok, "robust": ce_ok & t_ok}
