"""ImageNet ResNet-50 v1.5 (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016).

Stem: conv7x7/2 64 (padding 3) - BN - ReLU - maxpool 3x3/2 (padding 1). Four stages of 3, 4, 6, 3
bottleneck blocks with widths 64, 128, 256, 512 and outputs 4x that; global average pool; dense C.
A bottleneck block computes

  ``relu(bn_2(conv_2(relu(bn_1(conv_1(relu(bn_0(conv_0(x)))))))) + shortcut(x))``

with ``conv_0`` 1x1, ``conv_1`` 3x3 carrying the stage's stride 2 (the "v1.5" placement, instead of
v1's stride in ``conv_0``), ``conv_2`` 1x1 to ``4 * width``; the shortcut is ``x`` or, when the
shape changes, ``shortcut_bn(shortcut_conv(x))`` with a strided 1x1 conv. 25,557,032 parameters
for 1000 classes (the torchvision count). ``zero_init_residual=True`` starts every ``bn_2`` scale
at zero (Goyal et al. 2017), so each block starts as the identity.

Layer names: ``stem_conv``, ``stem_bn``, ``block_{i}`` (``i = 0 .. 15``) holding ``conv_{0,1,2}``,
``bn_{0,1,2}`` and, in the first block of each stage, ``shortcut_conv``, ``shortcut_bn``; ``head``.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from lipprune.models import layers
from lipprune.models.registry import register


class Bottleneck(nn.Module):
  """1x1 - 3x3 (strided) - 1x1 bottleneck with expansion 4."""

  width: int
  strides: int = 1
  zero_init_residual: bool = False
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    out = 4 * self.width
    y = layers.conv(self.width, 1, name="conv_0", dtype=self.dtype)(x)
    y = nn.relu(layers.batch_norm(train=train, name="bn_0", dtype=self.dtype)(y))
    y = layers.conv(self.width, 3, strides=self.strides, padding=((1, 1), (1, 1)), name="conv_1",
                    dtype=self.dtype)(y)
    y = nn.relu(layers.batch_norm(train=train, name="bn_1", dtype=self.dtype)(y))
    y = layers.conv(out, 1, name="conv_2", dtype=self.dtype)(y)
    bn_2 = layers.batch_norm(train=train, name="bn_2", dtype=self.dtype)
    if self.zero_init_residual:
      bn_2 = bn_2.clone(scale_init=nn.initializers.zeros)
    y = bn_2(y)
    if self.strides == 1 and x.shape[-1] == out:
      residual = x
    else:
      residual = layers.conv(out, 1, strides=self.strides, name="shortcut_conv",
                             dtype=self.dtype)(x)
      residual = layers.batch_norm(train=train, name="shortcut_bn", dtype=self.dtype)(residual)
    return nn.relu(y + residual)


class ResNetImageNet(nn.Module):
  """Bottleneck ResNet for 224x224 inputs; ``stage_sizes=(3, 4, 6, 3)`` is ResNet-50."""

  num_classes: int
  stage_sizes: Sequence[int] = (3, 4, 6, 3)
  zero_init_residual: bool = False
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    x = layers.as_input(x, self.dtype)
    x = layers.conv(64, 7, strides=2, padding=((3, 3), (3, 3)), name="stem_conv",
                    dtype=self.dtype)(x)
    x = nn.relu(layers.batch_norm(train=train, name="stem_bn", dtype=self.dtype)(x))
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    i = 0
    for stage, size in enumerate(self.stage_sizes):
      for b in range(size):
        strides = 2 if (stage > 0 and b == 0) else 1
        x = Bottleneck(64 * 2**stage, strides, self.zero_init_residual, self.dtype,
                       name=f"block_{i}")(x, train)
        i += 1
    x = jnp.mean(x, axis=(1, 2))
    return layers.logits_f32(layers.dense(self.num_classes, name="head", dtype=self.dtype)(x))


@register("resnet50")
def resnet50(num_classes: int, zero_init_residual: bool = False, dtype=jnp.float32) -> nn.Module:
  return ResNetImageNet(num_classes=num_classes, stage_sizes=(3, 4, 6, 3),
                        zero_init_residual=zero_init_residual, dtype=dtype)
