"""Optimizers as learning-rate-free update directions, and learning-rate schedules of the step.

The train step computes ``params -= schedule(state.step) * direction``. Keeping the learning rate
out of the optax chain makes the schedule a function of ``state.step`` alone, so learning-rate
rewinding is ``state.replace(step=k)`` and needs no surgery on the optimizer state.
"""
from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
import optax

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine")


def direction(name: str, *, momentum: float = 0.9, nesterov: bool = False, weight_decay: float = 0.0,
              b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> optax.GradientTransformation:
  """The update direction of optimizer ``name`` before scaling by the learning rate.

  * ``sgd``: PyTorch semantics, ``d = g + wd * w``; ``buf = momentum * buf + d``; the step is
    ``lr * buf`` (``lr * (d + momentum * buf)`` with Nesterov). Weight decay reaches every parameter,
    batch-norm scales included, as in the CIFAR ResNet recipe of Renda et al.
  * ``adam``: Adam moments of ``g + wd * w`` (L2 regularization, PyTorch's Adam).
  * ``adamw``: decoupled weight decay: ``adam(g) + wd * w``.
  """
  if name == "sgd":
    parts = [optax.add_decayed_weights(weight_decay)] if weight_decay else []
    if momentum:
      parts.append(optax.trace(decay=momentum, nesterov=nesterov))
    return optax.chain(*parts) if parts else optax.identity()
  if name == "adam":
    parts = [optax.add_decayed_weights(weight_decay)] if weight_decay else []
    return optax.chain(*parts, optax.scale_by_adam(b1=b1, b2=b2, eps=eps))
  if name == "adamw":
    return optax.chain(optax.scale_by_adam(b1=b1, b2=b2, eps=eps), optax.add_decayed_weights(weight_decay))
  raise ValueError(f"unknown optimizer {name!r}; expected one of {list(OPTIMIZERS)}")


def schedule(name: str, *, base_lr: float, total_steps: int, warmup_steps: int = 0,
             boundaries: tuple[int, ...] = (), decay_factor: float = 0.1,
             final_lr: float = 0.0) -> Callable:
  """Learning rate as a pure function of the step.

  * ``constant``: ``base_lr``.
  * ``step``: ``base_lr * decay_factor ** (number of boundaries <= step)``, the CIFAR ResNet recipe
    (0.1, x0.1 at epochs 91 and 136 of 182) and the ImageNet ResNet-50 one (x0.1 at 30/60/80).
  * ``cosine``: from ``base_lr`` down to ``final_lr`` over ``total_steps``.
  Every schedule may start with a linear warmup from 0 over ``warmup_steps`` (ResNet-50: 5 epochs).
  """
  if name not in SCHEDULES:
    raise ValueError(f"unknown schedule {name!r}; expected one of {list(SCHEDULES)}")
  boundaries_arr = jnp.asarray(sorted(boundaries), jnp.int32) if boundaries else None

  def lr(step):
    step = jnp.asarray(step)
    if name == "constant":
      value = jnp.asarray(base_lr, jnp.float32)
    elif name == "step":
      n = 0 if boundaries_arr is None else jnp.sum(step >= boundaries_arr)
      value = base_lr * jnp.power(decay_factor, n).astype(jnp.float32)
    else:
      frac = jnp.clip(step / max(total_steps, 1), 0.0, 1.0)
      value = final_lr + 0.5 * (base_lr - final_lr) * (1 + jnp.cos(jnp.pi * frac))
    if warmup_steps:
      value = value * jnp.minimum(1.0, (step + 1) / warmup_steps)
    return value.astype(jnp.float32)

  return lr
