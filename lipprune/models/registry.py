"""Model registry and the functional `Model` wrapper every other layer uses.

A `Model` pairs a flax linen module with two pure functions:

  params, model_state = model.init(key, sample_x)
  logits, new_model_state = model.apply(params, model_state, x, train=..., key=...)

`model_state` holds every non-parameter collection (e.g. ``{'batch_stats': ...}``); it is ``{}`` for
models without batch norm. With ``train=True`` batch statistics are updated and returned; with
``train=False`` the input ``model_state`` is returned unchanged. ``key`` feeds dropout and is only
needed when ``train=True`` and the model has dropout.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import numpy as np

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(name: str):
  """Decorator: registers a factory ``f(num_classes, **kwargs) -> nn.Module`` under ``name``."""

  def wrap(factory):
    if name in _REGISTRY:
      raise ValueError(f"model {name!r} registered twice")
    _REGISTRY[name] = factory
    return factory

  return wrap


def names() -> list[str]:
  """Sorted names of every registered model."""
  from lipprune.models import zoo  # noqa: F401  (registers the built-in models)
  return sorted(_REGISTRY)


@dataclasses.dataclass(frozen=True)
class Model:
  """A flax module viewed as a pair of pure functions (init, apply)."""

  module: nn.Module
  name: str = ""

  def init(self, key: jax.Array, sample_x: jax.Array) -> tuple[Any, dict]:
    """``(params, model_state)`` for inputs shaped like ``sample_x``, compiled as one program.

    The numbers are those of running the initializers op by op: XLA's algebraic simplifier, which
    would refold constants such as ``normal * sqrt(variance) / 0.8796...`` and change last bits,
    is switched off for this program only (initialization runs once, its speed is immaterial).
    Gaussian initializers (``he_normal``) are bit-identical; truncated-normal ones
    (``glorot_normal``) can differ in the last bit (<= 2e-7), where the inverse error function's
    polynomial fuses differently; either way the compiled init is deterministic.
    Called inside a traced function (``jit``/``vmap`` of a caller), it is traced into that program
    instead (compiler options belong to the outermost ``jit``).
    """
    if any(isinstance(a, jax.core.Tracer) for a in jax.tree.leaves((key, sample_x))):
      return self._init(key, sample_x)
    return _compiled_init(self)(key, sample_x)

  def _init(self, key: jax.Array, sample_x: jax.Array) -> tuple[Any, dict]:
    params_key, dropout_key = jax.random.split(key)
    variables = self.module.init({"params": params_key, "dropout": dropout_key}, sample_x, train=False)
    variables = dict(variables)
    params = variables.pop("params")
    return params, variables

  def apply(self, params, model_state, x, *, train: bool, key: jax.Array | None = None):
    variables = {"params": params, **model_state}
    rngs = {"dropout": key} if key is not None else None
    if train and model_state:
      logits, updates = self.module.apply(variables, x, train=True, rngs=rngs, mutable=list(model_state))
      return logits, {**model_state, **dict(updates)}
    return self.module.apply(variables, x, train=train, rngs=rngs), model_state


@functools.lru_cache(maxsize=64)
def _compiled_init(model: Model) -> Callable:
  # Keyed by value: equal models (e.g. one per seed of a study) share one compiled init.
  return jax.jit(model._init, compiler_options={"xla_disable_hlo_passes": "algsimp"})


def create(name: str, num_classes: int, **kwargs) -> Model:
  """Builds the registered model ``name`` with ``num_classes`` outputs.

  Raises ValueError naming the allowed models when ``name`` is unknown, and naming ``num_classes``
  unless it is an int >= 1 (a float or a non-positive count would fail deep inside XLA).
  """
  allowed = names()
  if name not in allowed:
    raise ValueError(f"unknown model {name!r}; expected one of {allowed}")
  if (isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer))
      or num_classes < 1):
    raise ValueError(f"models.create({name!r}): num_classes={num_classes!r} must be an int >= 1")
  return Model(_REGISTRY[name](num_classes=num_classes, **kwargs), name=name)
