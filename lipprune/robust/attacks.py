"""Evasion attacks: PGD under l_inf and l_2, FGSM, targeted PGD and the multi-target attack.

Every attack is a pure function of an explicit ``jax.random`` key, traceable under ``jax.jit`` (the
step loop is a ``lax.fori_loop``) and batched over the leading axis. The model enters as a closure
``logits_fn(x) -> logits``, typically

  logits_fn = lambda x: model.apply(params, model_state, x, train=False)[0]

so batch norm runs in inference mode during attacks (pass a train-mode closure to change that).

Projected gradient ascent (Madry et al., ICLR 2018) on a per-example objective ``L(x')``:

  x'_{k+1} = Proj_{B_p(x, eps) ∩ [lo, hi]^d} ( x'_k + alpha * s(grad L(x'_k)) ),

with ``s(g) = sign(g)`` for l_inf and ``s(g) = g / ||g||_2`` for l_2. The l_inf projection is a clip
to ``[x - eps, x + eps]``; the l_2 one rescales ``delta`` to ``delta * min(1, eps / ||delta||_2)``.
Both are followed by a clip to the box; since ``x`` itself lies in the box, that clip only shrinks
``|delta|`` componentwise and so never leaves the ball.

Objectives (``objective=``): ``'ce'`` the cross-entropy on the label (untargeted), ``'kl'`` the
TRADES inner objective ``KL(p(x) || p(x'))`` (Zhang et al., ICML 2019), ``'targeted'`` the negated
cross-entropy on a target class ``-CE(f(x'), t)``, and ``'margin'`` the CW margin
``max_{j != y} f_j(x') - f_y(x')``.
"""
from __future__ import annotations

from typing import Callable

import chex
import jax
import jax.numpy as jnp
import optax

from lipprune.train import chunks

NORMS = ("linf", "l2")
STARTS = ("uniform", "normal", "none")
OBJECTIVES = ("ce", "kl", "targeted", "margin")


def _check_choice(name, value, allowed):
  if value not in allowed:
    raise ValueError(f"{name}={value!r}; expected one of {list(allowed)}")


def _flat_norm(v: jax.Array) -> jax.Array:
  """Per-example l_2 norm over all but the leading axis, shape (B,) broadcastable back."""
  return jnp.sqrt(jnp.sum(jnp.square(v.reshape(v.shape[0], -1)), axis=1))


def _expand(v: jax.Array, like: jax.Array) -> jax.Array:
  return v.reshape((-1,) + (1,) * (like.ndim - 1))


def project(x_adv: jax.Array, x: jax.Array, *, eps: float, norm: str = "linf",
            box: tuple[float, float] | None = (0.0, 1.0)) -> jax.Array:
  """Projects ``x_adv`` onto the ``eps``-ball around ``x`` (l_inf or l_2), then onto the box."""
  _check_choice("norm", norm, NORMS)
  delta = x_adv - x
  if norm == "linf":
    delta = jnp.clip(delta, -eps, eps)
  else:
    n = _flat_norm(delta)
    delta = delta * _expand(jnp.minimum(1.0, eps / jnp.maximum(n, 1e-12)), delta)
  out = x + delta
  if box is not None:
    out = jnp.clip(out, box[0], box[1])
  return out


def random_start(key: jax.Array, x: jax.Array, *, eps: float, norm: str = "linf",
                 start: str = "uniform", start_std: float = 1e-3,
                 box: tuple[float, float] | None = (0.0, 1.0),
                 start_clip: bool = True) -> jax.Array:
  """The PGD starting point.

  * ``uniform``: uniform in the ball: ``U(-eps, eps)^d`` for l_inf; for l_2 a direction uniform on
    the sphere (normalized Gaussian) times radius ``eps * U^(1/d)``.
  * ``normal``: ``x + start_std * N(0, I)`` (TRADES and the Lipschitz estimate use 0.001).
  * ``none``: ``x``.
  The result is projected onto the ball and the box, unless ``start_clip=False``: then it is
  returned as drawn (the official TRADES and Lipschitz code start from the unclipped
  ``x + 0.001 N(0, I)``, which may leave the box by about 0.003 at pixels at 0 or 1; the first
  projected step brings it back).
  """
  _check_choice("start", start, STARTS)
  if start == "none":
    return x
  if start == "normal":
    x0 = x + start_std * jax.random.normal(key, x.shape, x.dtype)
  elif norm == "linf":
    x0 = x + jax.random.uniform(key, x.shape, x.dtype, -eps, eps)
  else:
    dkey, rkey = jax.random.split(key)
    g = jax.random.normal(dkey, x.shape, x.dtype)
    d = g / _expand(jnp.maximum(_flat_norm(g), 1e-12), g)
    dim = x[0].size
    r = eps * jax.random.uniform(rkey, (x.shape[0],), x.dtype) ** (1.0 / dim)
    x0 = x + d * _expand(r, d)
  return project(x0, x, eps=eps, norm=norm, box=box) if start_clip else x0


def ascent_direction(g: jax.Array, norm: str) -> jax.Array:
  """``sign(g)`` for l_inf, ``g / ||g||_2`` per example for l_2 (steepest ascent in that norm)."""
  if norm == "linf":
    return jnp.sign(g)
  return g / _expand(jnp.maximum(_flat_norm(g), 1e-12), g)


def maximize(objective_fn: Callable[[jax.Array], jax.Array], x: jax.Array, key: jax.Array, *,
             eps: float, step_size: float, steps: int, norm: str = "linf", start: str = "uniform",
             start_std: float = 1e-3, box: tuple[float, float] | None = (0.0, 1.0),
             keep_best: bool = False, start_clip: bool = True,
             unroll: bool | None = None) -> jax.Array:
  """Projected steepest ascent of a per-example objective over the ``eps``-ball around ``x``.

  Args:
    objective_fn: ``x' -> (B,)`` per-example values; the ascent follows ``grad sum_i L_i(x')``, which
      is per-example ascent whenever examples do not interact (batch norm in inference mode).
    x: clean inputs, (B, ...).
    key: randomness of the starting point.
    eps, step_size, steps, norm, start, start_std, box: see the module docstring.
    keep_best: return, per example, the iterate with the largest objective seen (x'_0 .. x'_K)
      instead of the last one.
    start_clip: project the starting point onto the ball and the box (see `random_start`).
    unroll: compile the ``steps`` iterations unrolled instead of as a rolled loop (the same
      adversarial points; `lipprune.train.chunks.unroll_attack`). ``None``: as measured for this
      backend and kind of model (``lipprune.train.loop_modes.ATTACK_UNROLL``: convolutional
      models on XLA:CPU, whose convolutions lose their fast fusions inside a loop body).

  Returns:
    Adversarial inputs with the shape of ``x``, inside the ball and the box.
  """
  _check_choice("norm", norm, NORMS)
  chex.assert_rank(x, {2, 3, 4, 5})
  grad_fn = jax.value_and_grad(lambda z: jnp.sum(objective_fn(z)))
  per_example = lambda z: objective_fn(z)  # noqa: E731
  x0 = random_start(key, x, eps=eps, norm=norm, start=start, start_std=start_std, box=box,
                    start_clip=start_clip)
  if unroll is None:
    unroll = chunks.unroll_attack(per_example, x0)

  if not keep_best:
    def body(_, z):
      _, g = grad_fn(z)
      return project(z + step_size * ascent_direction(g, norm), x, eps=eps, norm=norm, box=box)
    return jax.lax.fori_loop(0, steps, body, x0, unroll=bool(unroll))

  def best_of(z, val, best_z, best_val):
    better = val > best_val
    return jnp.where(_expand(better, z), z, best_z), jnp.where(better, val, best_val)

  def body_best(_, carry):
    z, best_z, best_val = carry
    val, vjp = jax.vjp(per_example, z)
    (g,) = vjp(jnp.ones_like(val))
    best_z, best_val = best_of(z, val, best_z, best_val)
    z = project(z + step_size * ascent_direction(g, norm), x, eps=eps, norm=norm, box=box)
    return z, best_z, best_val

  init = (x0, x0, jnp.full((x.shape[0],), -jnp.inf, x.dtype))
  z, best_z, best_val = jax.lax.fori_loop(0, steps, body_best, init, unroll=bool(unroll))
  best_z, _ = best_of(z, per_example(z), best_z, best_val)
  return best_z


def per_example_objective(logits: jax.Array, labels: jax.Array, objective: str, *,
                          clean_logits: jax.Array | None = None,
                          target: jax.Array | None = None) -> jax.Array:
  """The attacked per-example objective (B,) given the logits at ``x'`` (see module docstring)."""
  _check_choice("objective", objective, OBJECTIVES)
  if objective == "ce":
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  if objective == "kl":
    if clean_logits is None:
      raise ValueError("objective='kl' needs clean_logits")
    return kl_divergence(clean_logits, logits)
  if objective == "targeted":
    if target is None:
      raise ValueError("objective='targeted' needs target")
    return -optax.softmax_cross_entropy_with_integer_labels(logits, target)
  return margin(logits, labels)


def kl_divergence(p_logits: jax.Array, q_logits: jax.Array) -> jax.Array:
  """``KL(softmax(p) || softmax(q)) = sum_k p_k (log p_k - log q_k)`` per example."""
  log_p = jax.nn.log_softmax(p_logits)
  log_q = jax.nn.log_softmax(q_logits)
  return jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1)


def margin(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """``max_{j != y} f_j - f_y``; positive exactly when the example is misclassified (ties aside)."""
  true = jnp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]
  other = jnp.where(jax.nn.one_hot(labels, logits.shape[-1], dtype=bool), -jnp.inf, logits)
  return jnp.max(other, axis=-1) - true


def pgd(logits_fn: Callable, x: jax.Array, y: jax.Array, key: jax.Array, *, eps: float,
        step_size: float, steps: int, norm: str = "linf", objective: str = "ce",
        start: str = "uniform", start_std: float = 1e-3, target: jax.Array | None = None,
        clean_logits: jax.Array | None = None, box: tuple[float, float] | None = (0.0, 1.0),
        keep_best: bool = False, start_clip: bool = True) -> jax.Array:
  """PGD (Madry et al. 2018) on ``objective`` of ``logits_fn`` within the ``eps``-ball.

  ``objective='targeted'`` with ``target`` (B,) gives targeted PGD (descent on ``CE(f(x'), t)``);
  ``objective='kl'`` is TRADES' inner maximization (``clean_logits`` default: ``logits_fn(x)``
  with stopped gradient; start it with ``start='normal'`` since its gradient vanishes at ``x``).
  """
  chex.assert_equal_shape_prefix([x, y], 1)
  if objective == "kl" and clean_logits is None:
    clean_logits = jax.lax.stop_gradient(logits_fn(x))

  def obj(z):
    return per_example_objective(logits_fn(z), y, objective, clean_logits=clean_logits, target=target)

  return maximize(obj, x, key, eps=eps, step_size=step_size, steps=steps, norm=norm, start=start,
                  start_std=start_std, box=box, keep_best=keep_best, start_clip=start_clip)


def fgsm(logits_fn: Callable, x: jax.Array, y: jax.Array, *, eps: float, norm: str = "linf",
         objective: str = "ce", clean_logits: jax.Array | None = None,
         box: tuple[float, float] | None = (0.0, 1.0)) -> jax.Array:
  """Fast gradient (sign) method (Goodfellow et al. 2015): one step of size ``eps`` from ``x``,
  ``x' = Proj(x + eps * s(grad L(x)))``; PGD with ``steps=1, step_size=eps, start='none'``."""
  return pgd(logits_fn, x, y, jax.random.key(0), eps=eps, step_size=eps, steps=1, norm=norm,
             objective=objective, start="none", clean_logits=clean_logits, box=box)


def _stronger(logits_fn, y, cand, best, best_score):
  score = margin(logits_fn(cand), y)
  better = score > best_score
  return jnp.where(_expand(better, cand), cand, best), jnp.where(better, score, best_score)


def pgd_restarts(logits_fn: Callable, x: jax.Array, y: jax.Array, key: jax.Array, *,
                 restarts: int = 1, **pgd_kwargs) -> jax.Array:
  """PGD with ``restarts`` random starts; per example keeps the run with the largest margin
  ``max_{j != y} f_j - f_y`` (so any run that misclassifies wins over every run that does not)."""
  best = x
  best_score = margin(logits_fn(x), y)

  def body(i, carry):
    best, best_score = carry
    cand = pgd(logits_fn, x, y, jax.random.fold_in(key, i), **pgd_kwargs)
    return _stronger(logits_fn, y, cand, best, best_score)

  best, _ = jax.lax.fori_loop(0, restarts, body, (best, best_score))
  return best


def multi_target(logits_fn: Callable, x: jax.Array, y: jax.Array, key: jax.Array, *,
                 num_classes: int, eps: float, step_size: float, steps: int, norm: str = "linf",
                 start: str = "uniform", box: tuple[float, float] | None = (0.0, 1.0),
                 restarts: int = 1) -> jax.Array:
  """The multi-target attack (Gowal et al. 2019): one targeted PGD run per class ``t`` (runs with
  ``t = y`` are skipped per example), keeping per example the adversarial point with the largest
  margin ``max_{j != y} f_j - f_y``."""
  best = x
  best_score = margin(logits_fn(x), y)

  def body(i, carry):
    best, best_score = carry
    t, r = i // restarts, i % restarts
    target = jnp.full_like(y, t)
    cand = pgd(logits_fn, x, y, jax.random.fold_in(key, i), eps=eps, step_size=step_size,
               steps=steps, norm=norm, objective="targeted", start=start, target=target, box=box)
    cand = jnp.where(_expand(y == t, cand), x, cand)
    del r
    return _stronger(logits_fn, y, cand, best, best_score)

  best, _ = jax.lax.fori_loop(0, num_classes * restarts, body, (best, best_score))
  return best
