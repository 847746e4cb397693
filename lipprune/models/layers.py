"""Shared building blocks of the model zoo: initializers, conv/dense/batch-norm factories.

Conventions every model in ``lipprune.models`` follows:

* Conv kernels: He (Kaiming) normal with fan-out, ``N(0, 2 / (k_h * k_w * c_out))`` as in the
  torchvision ResNets (He et al., "Delving deep into rectifiers", ICCV 2015).
* Dense kernels: He normal with fan-in, ``N(0, 2 / d_in)``; biases start at zero.
* Batch norm: ``momentum=0.9`` (running = 0.9 * running + 0.1 * batch, the torch default 0.1
  expressed the flax way), ``epsilon=1e-5``, running averages in eval mode.
* ``dtype`` is the compute dtype (e.g. ``jnp.bfloat16``); parameters always stay float32 and
  logits are returned as float32.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

Dtype = Any

conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
dense_init = nn.initializers.variance_scaling(2.0, "fan_in", "normal")


def conv(features: int, kernel: int, *, name: str, strides: int = 1, use_bias: bool = False,
         padding: Any = "SAME", dtype: Dtype = jnp.float32) -> nn.Conv:
  """A square ``kernel x kernel`` convolution with He fan-out init."""
  return nn.Conv(features, (kernel, kernel), strides=(strides, strides), padding=padding,
                 use_bias=use_bias, kernel_init=conv_init, dtype=dtype, param_dtype=jnp.float32,
                 name=name)


def dense(features: int, *, name: str, dtype: Dtype = jnp.float32) -> nn.Dense:
  """A dense layer with He fan-in init and zero bias."""
  return nn.Dense(features, kernel_init=dense_init, dtype=dtype, param_dtype=jnp.float32, name=name)


def batch_norm(*, train: bool, name: str, dtype: Dtype = jnp.float32) -> nn.BatchNorm:
  """Batch norm updating ``batch_stats`` when ``train`` (momentum 0.9, epsilon 1e-5)."""
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype,
                      param_dtype=jnp.float32, name=name)


def flatten(x: jnp.ndarray) -> jnp.ndarray:
  """Flattens all but the leading (batch) axis; NHWC flattens channel-fastest."""
  return x.reshape((x.shape[0], -1))


def max_pool(x: jnp.ndarray) -> jnp.ndarray:
  """2x2 max pooling with stride 2."""
  return nn.max_pool(x, (2, 2), strides=(2, 2))


def logits_f32(x: jnp.ndarray) -> jnp.ndarray:
  return x.astype(jnp.float32)


def as_input(x: jnp.ndarray, dtype: Dtype) -> jnp.ndarray:
  return jnp.asarray(x, jnp.float32).astype(dtype)


def as_tuple(values, name: str, length: int | None = None) -> tuple[int, ...]:
  """Validates a width override: a sequence of positive ints, of ``length`` when given."""
  out = tuple(int(v) for v in values)
  if length is not None and len(out) != length:
    raise ValueError(f"{name} must have {length} entries, got {len(out)}: {out}")
  if any(v <= 0 for v in out):
    raise ValueError(f"{name} entries must be positive, got {out}")
  return out


__all__ = ["as_input", "as_tuple", "batch_norm", "conv", "conv_init", "dense", "dense_init",
           "flatten", "logits_f32", "max_pool"]
