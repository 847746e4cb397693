"""Wide residual networks (Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016).

WRN-d-k: conv3x3 16, three stages of ``n = (d - 4) / 6`` pre-activation blocks with ``16k``,
``32k``, ``64k`` channels (stride 2 at the start of stages 2 and 3), BN - ReLU - global average
pool - dense C. A block computes, with ``a = relu(bn_0(x))``,

  ``out = conv_1(dropout(relu(bn_1(conv_0(a))))) + shortcut``,

where the shortcut is ``x`` when the shape is unchanged and ``shortcut_conv(a)`` (1x1, strided)
when it changes. Convs have no bias. Parameter counts for 10 classes: WRN-28-10 36,479,194
(paper: 36.5M), WRN-40-10 55,841,754, WRN-40-4 8,949,210 (paper: 8.9M), WRN-16-8 10,961,370
(paper: 11.0M).

Layer names: ``stem_conv``; ``block_{i}`` (``i = 0 .. 3n-1``) holding ``bn_0``, ``conv_0``,
``bn_1``, ``conv_1`` and, where the shape changes, ``shortcut_conv``; ``final_bn``; ``head``.
Dropout draws from the ``'dropout'`` rng (`Model.apply`'s ``key``) in train mode only.
"""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from lipprune.models import layers
from lipprune.models.registry import register


class WideBasicBlock(nn.Module):
  """Pre-activation wide basic block with optional dropout between the two convs."""

  features: int
  strides: int = 1
  dropout_rate: float = 0.0
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    a = nn.relu(layers.batch_norm(train=train, name="bn_0", dtype=self.dtype)(x))
    y = layers.conv(self.features, 3, strides=self.strides, name="conv_0", dtype=self.dtype)(a)
    y = nn.relu(layers.batch_norm(train=train, name="bn_1", dtype=self.dtype)(y))
    if self.dropout_rate > 0:
      y = nn.Dropout(self.dropout_rate, deterministic=not train)(y)
    y = layers.conv(self.features, 3, name="conv_1", dtype=self.dtype)(y)
    if self.strides == 1 and x.shape[-1] == self.features:
      return x + y
    shortcut = layers.conv(self.features, 1, strides=self.strides, name="shortcut_conv",
                           dtype=self.dtype)(a)
    return shortcut + y


class WideResNet(nn.Module):
  """WRN-depth-width; see the module docstring."""

  num_classes: int
  depth: int = 28
  width: int = 10
  dropout_rate: float = 0.0
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    n = (self.depth - 4) // 6
    x = layers.as_input(x, self.dtype)
    x = layers.conv(16, 3, name="stem_conv", dtype=self.dtype)(x)
    for i in range(3 * n):
      stage = i // n
      strides = 2 if (stage > 0 and i % n == 0) else 1
      x = WideBasicBlock((16, 32, 64)[stage] * self.width, strides, self.dropout_rate, self.dtype,
                         name=f"block_{i}")(x, train)
    x = nn.relu(layers.batch_norm(train=train, name="final_bn", dtype=self.dtype)(x))
    x = jnp.mean(x, axis=(1, 2))
    return layers.logits_f32(layers.dense(self.num_classes, name="head", dtype=self.dtype)(x))


@register("wrn")
def wrn(num_classes: int, depth: int = 28, width: int = 10, dropout_rate: float = 0.0,
        dtype=jnp.float32) -> nn.Module:
  """WRN-``depth``-``width``; ``depth`` must be 6n+4 (e.g. 16, 28, 40)."""
  if depth < 10 or (depth - 4) % 6:
    raise ValueError(f"wrn depth must be 6n+4 with n >= 1 (e.g. 16, 28, 40), got {depth}")
  if width < 1:
    raise ValueError(f"wrn width must be a positive int, got {width}")
  if not 0.0 <= dropout_rate < 1.0:
    raise ValueError(f"wrn dropout_rate must be in [0, 1), got {dropout_rate}")
  return WideResNet(num_classes=num_classes, depth=depth, width=width, dropout_rate=dropout_rate,
                    dtype=dtype)
