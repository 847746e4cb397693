"""Shared building blocks of the model zoo: initializers, conv/dense/batch-norm factories.

Conventions every model in ``lipprune.models`` follows:

* Kernel initialization is a named scheme (``KERNEL_INITS``, the models' ``kernel_init`` kwarg),
  a pair (conv init, dense init); biases start at zero:

  * ``'he_normal'`` (ResNets, VGG, WRN): conv He (Kaiming) normal with fan-out,
    ``N(0, 2 / (k_h * k_w * c_out))`` as in the torchvision ResNets (He et al., "Delving deep into
    rectifiers", ICCV 2015); dense He normal with fan-in, ``N(0, 2 / d_in)``.
  * ``'glorot_normal'`` (``mlp``, ``lenet5``, ``conv2/4/6``): Glorot (Xavier) truncated normal with
    variance ``2 / (fan_in + fan_out)`` for both, what Frankle & Carbin ("The Lottery Ticket
    Hypothesis", ICLR 2019, Fig. 2: "Gaussian Glorot") use for these nets; their code
    (google-research/lottery-ticket-hypothesis, foundations/model_fc.py) calls
    ``tf.contrib.layers.xavier_initializer(uniform=False)``, the same truncated normal.
  * ``'tf_official'``: conv truncated normal with variance ``1 / fan_in``
    (``tf.compat.v1.variance_scaling_initializer()``), dense ``N(0, 0.01^2)``: the TF official
    ResNet/VGG that Renda et al.'s code trains (lottery-ticket/rewinding-iclr20-public,
    gpu-src/official/resnet/resnet_model.py and vgg/vgg_model.py).

  The scale matters for global magnitude pruning, which ranks weights of all layers together:
  with He fan-in on an 8x8-input MLP the 300x100 layer has the smallest weights and is emptied
  first at high sparsity (`lipprune.sparsity.collapsed_layers` detects it).
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

KERNEL_INITS = {
    "he_normal": (conv_init, dense_init),
    "glorot_normal": (nn.initializers.glorot_normal(), nn.initializers.glorot_normal()),
    "tf_official": (nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal"),
                    nn.initializers.normal(0.01)),
}


def kernel_inits(name: str):
  """``(conv_init, dense_init)`` of the scheme ``name`` (see the module docstring)."""
  if name not in KERNEL_INITS:
    raise ValueError(f"kernel_init must be one of {sorted(KERNEL_INITS)}, got {name!r}")
  return KERNEL_INITS[name]


def conv(features: int, kernel: int, *, name: str, strides: int = 1, use_bias: bool = False,
         padding: Any = "SAME", dtype: Dtype = jnp.float32, init: str = "he_normal") -> nn.Conv:
  """A square ``kernel x kernel`` convolution with the conv init of scheme ``init``."""
  return nn.Conv(features, (kernel, kernel), strides=(strides, strides), padding=padding,
                 use_bias=use_bias, kernel_init=kernel_inits(init)[0], dtype=dtype,
                 param_dtype=jnp.float32, name=name)


def dense(features: int, *, name: str, dtype: Dtype = jnp.float32,
          init: str = "he_normal") -> nn.Dense:
  """A dense layer with the dense init of scheme ``init`` and zero bias."""
  return nn.Dense(features, kernel_init=kernel_inits(init)[1], dtype=dtype,
                  param_dtype=jnp.float32, name=name)


def batch_norm(*, train: bool, name: str, dtype: Dtype = jnp.float32,
               momentum: float = 0.9) -> nn.BatchNorm:
  """Batch norm updating ``batch_stats`` when ``train`` (default momentum 0.9, epsilon 1e-5)."""
  return nn.BatchNorm(use_running_average=not train, momentum=momentum, epsilon=1e-5, dtype=dtype,
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


__all__ = ["KERNEL_INITS", "as_input", "as_tuple", "batch_norm", "conv", "conv_init", "dense",
           "dense_init", "flatten", "kernel_inits", "logits_f32", "max_pool"]
