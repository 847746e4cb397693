"""Robust training losses with the lipprune loss contract

  loss_fn(params, model_state, batch, key) -> (loss, {'model_state': ..., 'metrics': {...}}).

Reduction. ``reduction='mean'`` (default) averages every term over the batch (``batch['weight']``,
when present, gives a weighted mean); ``reduction='sum'`` sums it instead (weighted sum), which is
what Yang et al.'s code does (``CrossEntropyLoss(reduction='sum')`` and the summed TRADES / LLR
variants ``strades`` / ``sllr`` of its Table-2 runs). A summed loss is ``B`` times the mean one
(``B`` = batch size, or the sum of the weights), so its gradient is ``B`` times larger and:

* plain SGD (with or without momentum, no weight decay) follows the same trajectory with
  ``lr_mean = B * lr_sum``: the official ``lr = 1e-2`` at batch 64 is 0.64 here;
* Adam is invariant to the scale (up to its epsilon): the same learning rate;
* weight decay added to the gradient (PyTorch SGD) must be divided by ``B`` as well.
The metrics are always batch means. Zhang et al.'s TRADES repository uses
``mean CE + beta * KLDivLoss(sum) / B`` (two means), so its learning rates carry over to
``reduction='mean'`` unchanged; Yang et al.'s ``strades`` is ``sum CE + beta * sum KL`` and needs
the ``B`` factor.

Batch norm during the inner maximization follows the official code per method
(``attack_bn_train``): adversarial training and RST attack the model in train mode (their PGD runs
after ``model.train()``: batch statistics, dropout on), TRADES and LLR in inference mode
(``model.eval()`` in trades.py / llr.py). Two differences remain, both documented in
docs/robustness.md: PyTorch's train-mode attack passes also update the running statistics (ten
extra updates per step), ours do not; and our attack draws one dropout mask per step for all its
iterations instead of one per forward pass. The outer forward passes run in train mode and thread
``model_state`` through them in order (clean pass first, then the adversarial pass), as PyTorch
updates the running statistics once per train-mode forward. Methods that see only adversarial
points (Madry) update them on those alone.

Every attacked loss takes ``box``, the input domain its attack projects onto (default [0, 1]).

Methods (``x'`` adversarial, ``CE`` per-example cross-entropy, ``p(x) = softmax f(x)``), each
written per example and reduced as above:

* ``natural``:  ``CE(f(x), y)``.
* ``adversarial`` (Madry et al. 2018): ``CE(f(x'), y)``, ``x'`` = PGD on CE (default 10 steps of
  ``eps / 5`` from a uniform start; ``mix`` > 0 gives ``(1 - mix) CE(x') + mix CE(x)``).
* ``rst`` (Raghunathan et al. 2020, supervised form; Yang et al.'s "RST", ``advbeta``):
  ``CE(f(x), y) + lam * CE(f(x'), y)``, ``x'`` = PGD on CE.
* ``trades`` (Zhang et al. 2019): ``CE(f(x), y) + beta * KL(p(x) || p(x'))``, ``x'`` = PGD on the KL
  from ``x + 0.001 N(0, I)`` (not clipped to the box unless ``start_clip``), 10 steps of
  ``2 eps / 10``.
* ``gradient_regularization`` (Ross & Doshi-Velez 2018; Finlay & Oberman's TULIP, Yang et al.'s
  "GR"): ``CE(f(x), y) + c * lam * D(x)^2``. Default, the paper code's convention (tulip.py):
  ``c = 1/2`` and ``D = (CE(x + h d) - CE(x)) / h`` with ``d = stopgrad(g / ||g||_2)``,
  ``g = grad_x CE``, ``h = 1``: a finite-difference directional derivative along the gradient
  (= ``||g||_2`` up to ``O(h)``). ``half=False, finite_difference=False`` is the textbook form
  ``CE + lam * ||g||_2^2`` by double backprop.
* ``llr`` (Qin et al. 2019): with ``g(delta; x) = |CE(x + delta) - CE(x) - delta^T grad_x CE(x)|``
  and ``gamma(eps, x) = max_{||delta||_inf <= eps} g(delta; x)`` (PGD), the loss is
  ``CE(x) + lam * gamma(eps, x) + mu * |delta_LLR^T grad_x CE(x)|`` (paper: ``lam=4, mu=3``).
* ``llr_yang``: the LLR of Yang et al.'s llr.py (``sllr``), batch-level, see `llr_yang`.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from lipprune.robust import attacks
from lipprune.train.losses import accuracy, weighted_mean

METHODS = ("natural", "adversarial", "rst", "trades", "gradient_regularization", "llr",
           "llr_yang")
REDUCTIONS = ("mean", "sum")
LLR_YANG_INPUT_GRADS = ("zero", "detached")
Box = tuple[float, float]
UNIT_BOX = (0.0, 1.0)


def _ce(logits, y):
  return optax.softmax_cross_entropy_with_integer_labels(logits, y)


def _check_reduction(reduction: str) -> None:
  if reduction not in REDUCTIONS:
    raise ValueError(f"reduction={reduction!r}; expected one of {list(REDUCTIONS)}")


def _reduction_scale(batch, reduction: str) -> jax.Array | float:
  """1 for a mean; the batch size (or the sum of the weights) for a sum: sum = scale * mean."""
  if reduction == "mean":
    return 1.0
  w = batch.get("weight")
  return batch["y"].shape[0] if w is None else jnp.sum(w.astype(jnp.float32))


def _attack_logits_fn(model, params, model_state, key, attack_bn_train: bool) -> Callable:
  params = jax.lax.stop_gradient(params)
  if attack_bn_train:
    return lambda z: model.apply(params, model_state, z, train=True, key=key)[0]
  return lambda z: model.apply(params, model_state, z, train=False)[0]


def _metrics(logits, y, **terms):
  return {"accuracy": accuracy(logits, y), **terms}


def natural(model, *, reduction: str = "mean") -> Callable:
  """Natural training: ``CE(f(x_i), y_i)``, reduced over the batch."""
  _check_reduction(reduction)

  def loss_fn(params, model_state, batch, key):
    logits, state = model.apply(params, model_state, batch["x"], train=True, key=key)
    loss = weighted_mean(_ce(logits, batch["y"]), batch.get("weight"))
    return _reduction_scale(batch, reduction) * loss, {
        "model_state": state, "metrics": _metrics(logits, batch["y"], ce=loss)}

  return loss_fn


def _pgd_ce(model, params, model_state, x, y, key, *, eps, step_size, steps, norm,
            attack_bn_train, box, start="uniform"):
  akey, dkey = jax.random.split(key)
  fn = _attack_logits_fn(model, params, model_state, dkey, attack_bn_train)
  x_adv = attacks.pgd(fn, x, y, akey, eps=eps, step_size=step_size, steps=steps, norm=norm,
                      objective="ce", start=start, box=box)
  return jax.lax.stop_gradient(x_adv)


def adversarial(model, *, eps: float, step_size: float | None = None, steps: int = 10,
                norm: str = "linf", mix: float = 0.0, attack_bn_train: bool = True,
                box: Box = UNIT_BOX, reduction: str = "mean") -> Callable:
  """Madry et al. (2018): ``(1 - mix) CE(f(x'), y) + mix CE(f(x), y)``, ``x'`` by PGD-``steps``
  on CE with step ``eps / 5`` by default (``mix=0``: the pure adversarial objective; ``eps=0``
  reduces it to natural training). The attack sees the model in train mode by default, as the
  official code (``advce``) does."""
  _check_reduction(reduction)
  step_size = eps / 5 if step_size is None else step_size

  def loss_fn(params, model_state, batch, key):
    akey, k1, k2 = jax.random.split(key, 3)
    x, y, w = batch["x"], batch["y"], batch.get("weight")
    x_adv = _pgd_ce(model, params, model_state, x, y, akey, eps=eps, step_size=step_size,
                    steps=steps, norm=norm, attack_bn_train=attack_bn_train, box=box)
    state = model_state
    clean = jnp.zeros(())
    if mix:
      logits_c, state = model.apply(params, state, x, train=True, key=k1)
      clean = weighted_mean(_ce(logits_c, y), w)
    logits_a, state = model.apply(params, state, x_adv, train=True, key=k2)
    adv = weighted_mean(_ce(logits_a, y), w)
    loss = (1 - mix) * adv + mix * clean
    return _reduction_scale(batch, reduction) * loss, {
        "model_state": state,
        "metrics": {"accuracy": accuracy(logits_a, y), "adv_accuracy": accuracy(logits_a, y),
                    "adv_ce": adv}}

  return loss_fn


def rst(model, *, eps: float, lam: float = 1.0, step_size: float | None = None, steps: int = 10,
        norm: str = "linf", attack_bn_train: bool = True, box: Box = UNIT_BOX,
        reduction: str = "mean") -> Callable:
  """Supervised robust self-training: ``CE(f(x), y) + lam * CE(f(x'), y)``, ``x'`` by PGD on CE
  (train-mode attack by default, as the official ``advbeta`` runs)."""
  _check_reduction(reduction)
  step_size = eps / 5 if step_size is None else step_size

  def loss_fn(params, model_state, batch, key):
    akey, k1, k2 = jax.random.split(key, 3)
    x, y, w = batch["x"], batch["y"], batch.get("weight")
    scale = _reduction_scale(batch, reduction)
    logits, state = model.apply(params, model_state, x, train=True, key=k1)
    clean = weighted_mean(_ce(logits, y), w)
    if lam == 0:
      return scale * clean, {"model_state": state, "metrics": _metrics(logits, y, ce=clean)}
    x_adv = _pgd_ce(model, params, model_state, x, y, akey, eps=eps, step_size=step_size,
                    steps=steps, norm=norm, attack_bn_train=attack_bn_train, box=box)
    logits_a, state = model.apply(params, state, x_adv, train=True, key=k2)
    adv = weighted_mean(_ce(logits_a, y), w)
    return scale * (clean + lam * adv), {"model_state": state, "metrics": _metrics(
        logits, y, ce=clean, adv_ce=adv, adv_accuracy=accuracy(logits_a, y))}

  return loss_fn


def trades(model, *, eps: float, beta: float = 6.0, step_size: float | None = None,
           steps: int = 10, norm: str = "linf", start_std: float = 1e-3, start_clip: bool = False,
           attack_bn_train: bool = False, box: Box = UNIT_BOX,
           reduction: str = "mean") -> Callable:
  """TRADES (Zhang et al. 2019): ``CE(f(x), y) + beta * KL(p(x) || p(x'))`` where ``x'`` maximizes
  the KL by PGD (``steps`` steps of ``2 eps / steps`` by default) from ``x + start_std N(0, I)``,
  unclipped as in the official code unless ``start_clip``. ``reduction='sum'`` is the official
  ``strades``: ``sum CE + beta * sum KL``."""
  _check_reduction(reduction)
  step_size = 2 * eps / steps if step_size is None else step_size

  def loss_fn(params, model_state, batch, key):
    akey, dkey, k1, k2 = jax.random.split(key, 4)
    x, y, w = batch["x"], batch["y"], batch.get("weight")
    scale = _reduction_scale(batch, reduction)
    logits, state = model.apply(params, model_state, x, train=True, key=k1)
    clean = weighted_mean(_ce(logits, y), w)
    if beta == 0:
      return scale * clean, {"model_state": state, "metrics": _metrics(logits, y, ce=clean)}
    fn = _attack_logits_fn(model, params, model_state, dkey, attack_bn_train)
    x_adv = jax.lax.stop_gradient(attacks.pgd(
        fn, x, y, akey, eps=eps, step_size=step_size, steps=steps, norm=norm, objective="kl",
        start="normal", start_std=start_std, start_clip=start_clip, box=box))
    logits_a, state = model.apply(params, state, x_adv, train=True, key=k2)
    kl = weighted_mean(attacks.kl_divergence(logits, logits_a), w)
    return scale * (clean + beta * kl), {"model_state": state, "metrics": _metrics(
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


def gradient_regularization(model, *, lam: float = 1.0, finite_difference: bool = True,
                            h: float = 1.0, half: bool = True, reduction: str = "mean") -> Callable:
  """``CE(f(x), y) + c * lam * D(x)^2`` per example, reduced over the batch.

  Default (Yang et al.'s tulip.py, after Finlay & Oberman): ``c = 1/2`` (``half``) and
  ``D = (CE(x + h d) - CE(x)) / h``, ``d = stopgrad(g / ||g||_2)``, ``h = 1``: one extra forward
  pass, no second-order derivative. ``finite_difference=False`` uses the exact ``D = ||g||_2`` by
  double backprop; ``half=False, finite_difference=False`` is ``CE + lam * ||grad_x CE||_2^2``.

  The official training loop also back-propagates ``sum CE`` once inside tulip.py before the final
  ``loss.backward()``, so its parameter gradient is that of ``2 sum CE + (lam / 2) sum D^2``; under
  SGD that is this loss with ``lam / 2`` and twice the translated learning rate
  (``2 * B * lr_official``), which the paper-scale configs use.
  """
  _check_reduction(reduction)

  def loss_fn(params, model_state, batch, key):
    k1, k2 = jax.random.split(key)
    x, y, w = batch["x"], batch["y"], batch.get("weight")
    if lam == 0:
      return natural(model, reduction=reduction)(params, model_state, batch, k1)
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
    loss = clean + (0.5 if half else 1.0) * lam * reg
    return _reduction_scale(batch, reduction) * loss, {
        "model_state": state, "metrics": _metrics(logits, y, ce=clean, grad_reg=reg)}

  return loss_fn


def llr(model, *, eps: float, lam: float = 4.0, mu: float = 3.0, step_size: float | None = None,
        steps: int = 10, attack_bn_train: bool = False, box: Box = UNIT_BOX,
        reduction: str = "mean") -> Callable:
  """Local linearity regularization (Qin et al., NeurIPS 2019), l_inf ball of radius ``eps``:

    CE(x) + lam * gamma(eps, x) + mu * |delta_LLR^T grad_x CE(x)|,
    gamma(eps, x) = max_{||delta||_inf <= eps} |CE(x + delta) - CE(x) - delta^T grad_x CE(x)|,

  per example, ``delta_LLR`` the maximizer, found by PGD (``steps`` steps of ``eps / 4`` by
  default, uniform start) with the model in inference mode; the outer terms are differentiated
  through ``grad_x CE`` (double backprop).
  """
  _check_reduction(reduction)
  step_size = eps / 4 if step_size is None else step_size

  def loss_fn(params, model_state, batch, key):
    akey, dkey, k1, k2 = jax.random.split(key, 4)
    x, y, w = batch["x"], batch["y"], batch.get("weight")
    if lam == 0 and mu == 0:
      return natural(model, reduction=reduction)(params, model_state, batch, k1)
    fn = _attack_logits_fn(model, params, model_state, dkey, attack_bn_train)
    ce0 = jax.lax.stop_gradient(_ce(fn(x), y))
    g0 = jax.lax.stop_gradient(jax.grad(lambda z: jnp.sum(_ce(fn(z), y)))(x))

    def violation(z):
      delta = z - x
      lin = jnp.sum((delta * g0).reshape(x.shape[0], -1), axis=1)
      return jnp.abs(_ce(fn(z), y) - ce0 - lin)

    x_adv = jax.lax.stop_gradient(attacks.maximize(
        violation, x, akey, eps=eps, step_size=step_size, steps=steps, norm="linf", box=box))
    delta = x_adv - x
    ce, g, logits, state = _ce_and_input_grad(model, params, model_state, x, y, k1)
    logits_a, state = model.apply(params, state, x_adv, train=True, key=k2)
    lin = jnp.sum((delta * g).reshape(x.shape[0], -1), axis=1)
    gamma = jnp.abs(_ce(logits_a, y) - ce - lin)
    clean = weighted_mean(ce, w)
    gamma_m = weighted_mean(gamma, w)
    lin_m = weighted_mean(jnp.abs(lin), w)
    loss = clean + lam * gamma_m + mu * lin_m
    return _reduction_scale(batch, reduction) * loss, {
        "model_state": state,
        "metrics": _metrics(logits, y, ce=clean, llr_gamma=gamma_m, llr_linear=lin_m)}

  return loss_fn


def _per_example_norm(v: jax.Array, norm: str) -> jax.Array:
  flat = v.reshape(v.shape[0], -1)
  n = jnp.max(jnp.abs(flat), axis=1) if norm == "linf" else jnp.sqrt(jnp.sum(flat * flat, axis=1))
  return n.reshape((-1,) + (1,) * (v.ndim - 1))


def _renorm(delta: jax.Array, norm: str, eps: float) -> jax.Array:
  """``torch.renorm(delta, p, dim=0, maxnorm=eps)``: rows longer than ``eps`` rescaled to ``eps``
  (for l_inf a rescaling of the whole row, not a coordinate clip)."""
  n = _per_example_norm(delta, norm)
  return delta * jnp.where(n > eps, eps / (n + 1e-7), 1.0)


def llr_yang(model, *, eps: float, lam: float = 4.0, mu: float = 3.0,
             step_size: float | None = None, steps: int = 2, norm: str = "linf",
             start_std: float = 1e-3, input_grad: str = "zero", attack_bn_train: bool = False,
             box: Box = UNIT_BOX, reduction: str = "mean") -> Callable:
  """LLR as Yang et al.'s llr.py computes it (their Table-2 ``sllr``), which differs from Qin's:

    L_sum = sum_i CE(x_i) + lam * |sum_i CE(x_i + delta_i) - G| + mu * B * G,
    G = (1/B^2) sum_{i,j} m_i . delta_j,

  * the absolute value is taken once for the batch, of summed CE, and ``CE(x)`` is not subtracted;
  * ``G`` averages the ``B x B`` matrix of dot products between every example's input gradient
    ``m_i = grad_{x_i} sum CE`` (inference mode) and every example's ``delta_j``, and is a
    constant for the parameters (``m`` is detached, so the ``mu`` term has no gradient);
  * ``delta`` maximizes the same objective by ``steps`` (2) steps of ``eps / 2`` from
    ``0.001 N(0, I)``: ``delta += step * grad / ||grad||_p`` per example, then
    ``delta = clip(x + delta, box) - x`` and a rescaling of rows longer than ``eps`` (torch's
    ``renorm``), the model in inference mode.

  ``input_grad``: in llr.py ``m`` is read as ``ret = x.grad`` and then ``x.grad.zero_()`` zeroes
  that same tensor, so the code runs with ``m = 0`` (``G = 0``; the loss becomes
  ``sum CE(x) + lam * sum CE(x + delta)`` with a 2-step attack): ``'zero'`` (default) reproduces
  that; ``'detached'`` uses the true detached gradient the code evidently intends.
  ``reduction='mean'`` divides ``L_sum`` by ``B``; per-example weights are not supported.
  """
  _check_reduction(reduction)
  if input_grad not in LLR_YANG_INPUT_GRADS:
    raise ValueError(f"input_grad={input_grad!r}; expected one of {list(LLR_YANG_INPUT_GRADS)}")
  attacks._check_choice("norm", norm, attacks.NORMS)  # pylint: disable=protected-access
  step_size = eps / 2 if step_size is None else step_size

  def loss_fn(params, model_state, batch, key):
    if "weight" in batch:
      raise ValueError("llr_yang is a batch-level loss and takes no per-example 'weight'")
    akey, dkey, k1, k2 = jax.random.split(key, 4)
    x, y = batch["x"], batch["y"]
    b = x.shape[0]
    fn = _attack_logits_fn(model, params, model_state, dkey, attack_bn_train)
    if lam == 0 and mu == 0:
      return natural(model, reduction=reduction)(params, model_state, batch, k1)
    if input_grad == "zero":
      m = jnp.zeros_like(x)
    else:
      m = jax.lax.stop_gradient(jax.grad(lambda z: jnp.sum(_ce(fn(z), y)))(x))
    m_total = jnp.sum(m, axis=0)

    def grad_dot(delta):
      return jnp.sum(m_total * jnp.sum(delta, axis=0)) / (b * b)

    def objective(delta):
      return jnp.abs(jnp.sum(_ce(fn(x + delta), y)) - grad_dot(delta))

    def step(_, delta):
      g = jax.grad(objective)(delta)
      delta = delta + step_size * g / jnp.maximum(_per_example_norm(g, norm), 1e-12)
      delta = jnp.clip(x + delta, box[0], box[1]) - x
      return _renorm(delta, norm, eps)

    delta0 = start_std * jax.random.normal(akey, x.shape, x.dtype)
    delta = jax.lax.stop_gradient(jax.lax.fori_loop(0, steps, step, delta0))
    dot = grad_dot(delta)
    logits, state = model.apply(params, model_state, x, train=True, key=k1)
    ce = _ce(logits, y)
    logits_a, state = model.apply(params, state, x + delta, train=True, key=k2)
    gap = jnp.abs(jnp.sum(_ce(logits_a, y)) - dot)
    loss_sum = jnp.sum(ce) + lam * gap + mu * b * dot
    scale = 1.0 if reduction == "sum" else 1.0 / b
    return scale * loss_sum, {"model_state": state, "metrics": _metrics(
        logits, y, ce=jnp.mean(ce), llr_gap=gap / b, llr_grad_dot=dot,
        adv_accuracy=accuracy(logits_a, y))}

  return loss_fn


def make_loss(name: str, model, **kwargs) -> Callable:
  """The loss factory called ``name`` (one of ``METHODS``) applied to ``model`` and ``kwargs``."""
  factories = {"natural": natural, "adversarial": adversarial, "rst": rst, "trades": trades,
               "gradient_regularization": gradient_regularization, "llr": llr,
               "llr_yang": llr_yang}
  if name not in factories:
    raise ValueError(f"unknown robust loss {name!r}; expected one of {list(METHODS)}")
  return factories[name](model, **kwargs)
