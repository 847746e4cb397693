"""Robust training losses with the lipprune loss contract

  loss_fn(params, model_state, batch, key) -> (loss, {'model_state': ..., 'metrics': {...}}).

Every loss is a mean over the batch (``batch['weight']``, when present, gives a weighted mean).
Learning rates: where a reference implementation sums a term over the batch instead of averaging
it, its gradient is ``batch_size`` times ours, so plain SGD follows the same trajectory with
``lr_lipprune = batch_size * lr_reference`` (Adam is invariant to that scale up to its epsilon).
TRADES' reference code uses ``mean CE + beta * KLDivLoss(reduction='sum') / batch_size``, i.e. two
means, so its learning rates carry over unchanged.

Batch norm. The inner maximization always runs the model in inference mode (running statistics,
``model.eval()`` in the reference code) unless ``attack_bn_train=True``. The outer forward passes
run in train mode and thread ``model_state`` through them in order (clean pass first, then the
adversarial pass), which matches PyTorch, where each train-mode forward updates the running
statistics once. Methods that see only adversarial points (Madry) update them on those alone.

Methods (``x'`` adversarial, ``CE`` per-example cross-entropy, ``p(x) = softmax f(x)``):

* ``natural``:  ``CE(f(x), y)``.
* ``adversarial`` (Madry et al. 2018): ``CE(f(x'), y)``, ``x'`` = PGD on CE (default 10 steps of
  ``eps / 5`` from a uniform start; ``mix`` > 0 gives ``(1 - mix) CE(x') + mix CE(x)``).
* ``rst`` (Raghunathan et al. 2020, supervised form; Yang et al.'s "RST"):
  ``CE(f(x), y) + lam * CE(f(x'), y)``, ``x'`` = PGD on CE.
* ``trades`` (Zhang et al. 2019): ``CE(f(x), y) + beta * KL(p(x) || p(x'))``, ``x'`` = PGD on the KL
  from ``x + 0.001 N(0, I)``, 10 steps of ``2 eps / 10``.
* ``gradient_regularization`` (Ross & Doshi-Velez 2018; Yang et al.'s "GR"):
  ``CE(f(x), y) + lam * ||grad_x CE(f(x), y)||_2^2``, exact by double backprop; ``finite_difference``
  replaces the squared norm by ``((CE(x + h d) - CE(x)) / h)^2`` with ``d = stopgrad(g / ||g||_2)``,
  the directional derivative along the gradient, which equals ``||g||_2`` up to ``O(h)``.
* ``llr`` (Qin et al. 2019): with ``g(delta; x) = |CE(x + delta) - CE(x) - delta^T grad_x CE(x)|``
  and ``gamma(eps, x) = max_{||delta||_inf <= eps} g(delta; x)`` (PGD), the loss is
  ``CE(x) + lam * gamma(eps, x) + mu * |delta_LLR^T grad_x CE(x)|`` (paper: ``lam=4, mu=3``).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from lipprune.robust import attacks
from lipprune.train.losses import accuracy, weighted_mean

METHODS = ("natural", "adversarial", "rst", "trades", "gradient_regularization", "llr")


def _ce(logits, y):
  return optax.softmax_cross_entropy_with_integer_labels(logits, y)


def _attack_logits_fn(model, params, model_state, key, attack_bn_train: bool) -> Callable:
  params = jax.lax.stop_gradient(params)
  if attack_bn_train:
    return lambda z: model.apply(params, model_state, z, train=True, key=key)[0]
  return lambda z: model.apply(params, model_state, z, train=False)[0]


def _metrics(logits, y, **terms):
  return {"accuracy": accuracy(logits, y), **terms}


def natural(model) -> Callable:
  """Natural training: ``mean_i CE(f(x_i), y_i)``."""

  def loss_fn(params, model_state, batch, key):
    logits, state = model.apply(params, model_state, batch["x"], train=True, key=key)
    loss = weighted_mean(_ce(logits, batch["y"]), batch.get("weight"))
    return loss, {"model_state": state, "metrics": _metrics(logits, batch["y"], ce=loss)}

  return loss_fn


def _pgd_ce(model, params, model_state, x, y, key, *, eps, step_size, steps, norm,
            attack_bn_train, start="uniform"):
  akey, dkey = jax.random.split(key)
  fn = _attack_logits_fn(model, params, model_state, dkey, attack_bn_train)
  x_adv = attacks.pgd(fn, x, y, akey, eps=eps, step_size=step_size, steps=steps, norm=norm,
                      objective="ce", start=start)
  return jax.lax.stop_gradient(x_adv)


def adversarial(model, *, eps: float, step_size: float | None = None, steps: int = 10,
                norm: str = "linf", mix: float = 0.0, attack_bn_train: bool = False) -> Callable:
  """Madry et al. (2018): ``(1 - mix) CE(f(x'), y) + mix CE(f(x), y)``, ``x'`` by PGD-``steps``
  on CE with step ``eps / 5`` by default (``mix=0``: the pure adversarial objective; ``eps=0``
  reduces it to natural training)."""
  step_size = eps / 5 if step_size is None else step_size

  def loss_fn(params, model_state, batch, key):
    akey, k1, k2 = jax.random.split(key, 3)
    x, y, w = batch["x"], batch["y"], batch.get("weight")
    x_adv = _pgd_ce(model, params, model_state, x, y, akey, eps=eps, step_size=step_size,
                    steps=steps, norm=norm, attack_bn_train=attack_bn_train)
    state = model_state
    clean = jnp.zeros(())
    if mix:
      logits_c, state = model.apply(params, state, x, train=True, key=k1)
      clean = weighted_mean(_ce(logits_c, y), w)
    logits_a, state = model.apply(params, state, x_adv, train=True, key=k2)
    adv = weighted_mean(_ce(logits_a, y), w)
    loss = (1 - mix) * adv + mix * clean
    return loss, {"model_state": state,
                  "metrics": {"accuracy": accuracy(logits_a, y), "adv_accuracy": accuracy(logits_a, y),
                              "adv_ce": adv}}

  return loss_fn


def rst(model, *, eps: float, lam: float = 1.0, step_size: float | None = None, steps: int = 10,
        norm: str = "linf", attack_bn_train: bool = False) -> Callable:
  """Supervised robust self-training: ``CE(f(x), y) + lam * CE(f(x'), y)``, ``x'`` by PGD on CE."""
  step_size = eps / 5 if step_size is None else step_size

  def loss_fn(params, model_state, batch, key):
    akey, k1, k2 = jax.random.split(key, 3)
    x, y, w = batch["x"], batch["y"], batch.get("weight")
    logits, state = model.apply(params, model_state, x, train=True, key=k1)
    clean = weighted_mean(_ce(logits, y), w)
    if lam == 0:
      return clean, {"model_state": state, "metrics": _metrics(logits, y, ce=clean)}
    x_adv = _pgd_ce(model, params, model_state, x, y, akey, eps=eps, step_size=step_size,
                    steps=steps, norm=norm, attack_bn_train=attack_bn_train)
    logits_a, state = model.apply(params, state, x_adv, train=True, key=k2)
    adv = weighted_mean(_ce(logits_a, y), w)
    return clean + lam * adv, {"model_state": state, "metrics": _metrics(
        logits, y, ce=clean, adv_ce=adv, adv_accuracy=accuracy(logits_a, y))}

  return loss_fn


def trades(model, *, eps: float, beta: float = 6.0, step_size: float | None = None,
           steps: int = 10, norm: str = "linf", start_std: float = 1e-3,
           attack_bn_train: bool = False) -> Callable:
  """TRADES (Zhang et al. 2019): ``CE(f(x), y) + beta * KL(p(x) || p(x'))`` where ``x'`` maximizes
  the KL by PGD (``steps`` steps of ``2 eps / steps`` by default) from ``x + start_std N(0, I)``."""
  step_size = 2 * eps / steps if step_size is None else step_size

  def loss_fn(params, model_state, batch, key):
    akey, dkey, k1, k2 = jax.random.split(key, 4)
    x, y, w = batch["x"], batch["y"], batch.get("weight")
    logits, state = model.apply(params, model_state, x, train=True, key=k1)
    clean = weighted_mean(_ce(logits, y), w)
    if beta == 0:
      return clean, {"model_state": state, "metrics": _metrics(logits, y, ce=clean)}
    fn = _attack_logits_fn(model, params, model_state, dkey, attack_bn_train)
    x_adv = jax.lax.stop_gradient(attacks.pgd(
        fn, x, y, akey, eps=eps, step_size=step_size, steps=steps, norm=norm, objective="kl",
        start="normal", start_std=start_std))
    logits_a, state = model.apply(params, state, x_adv, train=True, key=k2)
    kl = weighted_mean(attacks.kl_divergence(logits, logits_a), w)
    return clean + beta * kl, {"model_state": state, "metrics": _metrics(
        logits, y, ce=clean, kl=kl, adv_accuracy=accuracy(logits_a, y))}

  return loss_fn


def _ce_and_input_grad(model, params, model_state, x, y, key):
  """Per-example CE (B,), its input gradient (B, ...) (differentiable w.r.t. params), the logits
  and the new model state, from one train-mode forward pass."""

  def total(z):
    logits, state = model.apply(params, model_state, z, train=True, key=key)
    ce = _ce(logits, y)
    return jnp.sum(ce), (ce, logits, state)

  (_, (ce, logits, state)), g = jax.value_and_grad(total, has_aux=True)(x)
  return ce, g, logits, state


def _sq_norm(v):
  return jnp.sum(jnp.square(v.reshape(v.shape[0], -1)), axis=1)


def gradient_regularization(model, *, lam: float = 1.0, finite_difference: bool = False,
                            h: float = 1e-2) -> Callable:
  """``CE(f(x), y) + lam * ||grad_x CE(f(x), y)||_2^2`` per example, averaged over the batch.

  Exact by default (double backprop). ``finite_difference=True`` uses
  ``((CE(x + h d) - CE(x)) / h)^2`` with ``d = stopgrad(g / ||g||_2)`` instead (one extra forward
  pass and no second-order derivative), as in the paper's code.
  """

  def loss_fn(params, model_state, batch, key):
    k1, k2 = jax.random.split(key)
    x, y, w = batch["x"], batch["y"], batch.get("weight")
    if lam == 0:
      return natural(model)(params, model_state, batch, k1)
    ce, g, logits, state = _ce_and_input_grad(model, params, model_state, x, y, k1)
    if finite_difference:
      g = jax.lax.stop_gradient(g)
      d = attacks.ascent_direction(g, "l2")
      logits_h, state = model.apply(params, state, x + h * d, train=True, key=k2)
      reg = jnp.square((_ce(logits_h, y) - ce) / h)
    else:
      reg = _sq_norm(g)
    clean = weighted_mean(ce, w)
    reg = weighted_mean(reg, w)
    return clean + lam * reg, {"model_state": state,
                               "metrics": _metrics(logits, y, ce=clean, grad_reg=reg)}

  return loss_fn


def llr(model, *, eps: float, lam: float = 4.0, mu: float = 3.0, step_size: float | None = None,
        steps: int = 10, attack_bn_train: bool = False) -> Callable:
  """Local linearity regularization (Qin et al., NeurIPS 2019), l_inf ball of radius ``eps``:

    CE(x) + lam * gamma(eps, x) + mu * |delta_LLR^T grad_x CE(x)|,
    gamma(eps, x) = max_{||delta||_inf <= eps} |CE(x + delta) - CE(x) - delta^T grad_x CE(x)|,

  ``delta_LLR`` the maximizer, found by PGD (``steps`` steps of ``eps / 4`` by default, uniform
  start) with the model in inference mode; the outer terms are differentiated through
  ``grad_x CE`` (double backprop).
  """
  step_size = eps / 4 if step_size is None else step_size

  def loss_fn(params, model_state, batch, key):
    akey, dkey, k1, k2 = jax.random.split(key, 4)
    x, y, w = batch["x"], batch["y"], batch.get("weight")
    if lam == 0 and mu == 0:
      return natural(model)(params, model_state, batch, k1)
    fn = _attack_logits_fn(model, params, model_state, dkey, attack_bn_train)
    ce0 = jax.lax.stop_gradient(_ce(fn(x), y))
    g0 = jax.lax.stop_gradient(jax.grad(lambda z: jnp.sum(_ce(fn(z), y)))(x))

    def violation(z):
      delta = z - x
      lin = jnp.sum((delta * g0).reshape(x.shape[0], -1), axis=1)
      return jnp.abs(_ce(fn(z), y) - ce0 - lin)

    x_adv = jax.lax.stop_gradient(attacks.maximize(
        violation, x, akey, eps=eps, step_size=step_size, steps=steps, norm="linf"))
    delta = x_adv - x
    ce, g, logits, state = _ce_and_input_grad(model, params, model_state, x, y, k1)
    logits_a, state = model.apply(params, state, x_adv, train=True, key=k2)
    lin = jnp.sum((delta * g).reshape(x.shape[0], -1), axis=1)
    gamma = jnp.abs(_ce(logits_a, y) - ce - lin)
    clean = weighted_mean(ce, w)
    gamma_m = weighted_mean(gamma, w)
    lin_m = weighted_mean(jnp.abs(lin), w)
    loss = clean + lam * gamma_m + mu * lin_m
    return loss, {"model_state": state,
                  "metrics": _metrics(logits, y, ce=clean, llr_gamma=gamma_m, llr_linear=lin_m)}

  return loss_fn


def make_loss(name: str, model, **kwargs) -> Callable:
  """The loss factory called ``name`` (one of ``METHODS``) applied to ``model`` and ``kwargs``."""
  factories = {"natural": natural, "adversarial": adversarial, "rst": rst, "trades": trades,
               "gradient_regularization": gradient_regularization, "llr": llr}
  if name not in factories:
    raise ValueError(f"unknown robust loss {name!r}; expected one of {list(METHODS)}")
  return factories[name](model, **kwargs)
