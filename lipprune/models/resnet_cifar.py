"""CIFAR ResNets (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, Sec. 4.2).

``resnet{6n+2}``: conv3x3 16 - BN - ReLU, three stages of ``n`` basic blocks with 16, 32, 64
channels (the first block of stages 2 and 3 has stride 2), global average pool, dense C.
A basic block computes ``relu(bn_1(conv_1(relu(bn_0(conv_0(x))))) + shortcut(x))``.

Shortcut when the shape changes: ``'A'`` is the paper's CIFAR choice, a parameter-free identity that
subsamples by 2 and zero-pads the new channels; ``'B'`` is a 1x1 conv (stride 2) + BN projection.
Parameter counts for 10 classes (batch-norm scale and offset included, running statistics not):

  ========== ============ ============ =============================
  model      option A     option B     He et al. / Li et al. (2017)
  ========== ============ ============ =============================
  ResNet-20  269,722      272,474      0.27M
  ResNet-56  853,018      855,770      0.85M / 8.5e5
  ResNet-110 1,727,962    1,730,714    1.7M / 1.72e6
  ========== ============ ============ =============================

Option B adds two projections, ``16*32 + 2*32 + 32*64 + 2*64 = 2,752`` parameters, and ResNet-56-B
rounds to 0.86M; option A reproduces the published counts, so **'A' is the default**.

``'stage_projection'`` is the network Renda et al.'s code trains: the TF official ResNet v1
(lottery-ticket/rewinding-iclr20-public, gpu-src/official/resnet/resnet_model.py, ``block_layer``
passes a ``projection_shortcut`` to the first block of *every* stage, ``resnet_version=1`` by
default in resnet_run_loop.py), so stage 1's first block also projects 16 -> 16 channels with a
1x1 conv + BN although the shape does not change: ``16*16 + 2*16 = 288`` more parameters than
option B (272,762 for ResNet-20). The paper-scale pruning configs select it (with
``kernel_init='tf_official'`` and ``bn_momentum=0.997``, the same file's other choices). Li et al.
(2017) prune only the first conv of each block (``inner_widths`` below), which leaves the block
outputs, and hence option A's identity shortcuts, untouched.

Layer names: ``stem_conv``, ``stem_bn``, ``block_{i}`` for ``i = 0 .. 3n-1`` (global index), each
holding ``conv_0``, ``bn_0``, ``conv_1``, ``bn_1`` and, for option B in blocks that change shape
(``block_n`` and ``block_2n``; ``'stage_projection'``: also ``block_0``), ``shortcut_conv`` and
``shortcut_bn``; ``head``. ``kernel_init`` (default ``'he_normal'``) names a scheme of
`lipprune.models.layers.KERNEL_INITS`; ``bn_momentum`` is the running-average momentum.
``inner_widths[i]`` is the number of filters of ``block_{i}/conv_0`` (hence the size of ``bn_0``
and the input channels of ``conv_1``): the channels that Li et al. (2017) prune inside residual
blocks, so a pruned net can be rebuilt physically smaller.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from lipprune.models import layers
from lipprune.models.registry import register

STAGE_WIDTHS = (16, 32, 64)
SHORTCUTS = ("A", "B", "stage_projection")


def zero_pad_shortcut(x: jnp.ndarray, features: int, strides: int) -> jnp.ndarray:
  """Option A shortcut: ``x[:, ::s, ::s, :]`` with zero channels appended up to ``features``."""
  if strides > 1:
    x = x[:, ::strides, ::strides, :]
  extra = features - x.shape[-1]
  if extra < 0:
    raise ValueError(f"option A cannot shrink channels: {x.shape[-1]} -> {features}")
  if extra:
    x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, extra)))
  return x


class BasicBlock(nn.Module):
  """Two 3x3 conv-BN layers with an identity or projection shortcut."""

  features: int
  inner_width: int
  strides: int = 1
  shortcut: str = "A"
  first_of_stage: bool = False
  kernel_init: str = "he_normal"
  bn_momentum: float = 0.9
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    conv = dict(dtype=self.dtype, init=self.kernel_init)
    bn = dict(train=train, dtype=self.dtype, momentum=self.bn_momentum)
    y = layers.conv(self.inner_width, 3, strides=self.strides, name="conv_0", **conv)(x)
    y = nn.relu(layers.batch_norm(name="bn_0", **bn)(y))
    y = layers.conv(self.features, 3, name="conv_1", **conv)(y)
    y = layers.batch_norm(name="bn_1", **bn)(y)
    same_shape = self.strides == 1 and x.shape[-1] == self.features
    if same_shape and not (self.shortcut == "stage_projection" and self.first_of_stage):
      residual = x
    elif self.shortcut == "A":
      residual = zero_pad_shortcut(x, self.features, self.strides)
    else:
      residual = layers.conv(self.features, 1, strides=self.strides, name="shortcut_conv",
                             **conv)(x)
      residual = layers.batch_norm(name="shortcut_bn", **bn)(residual)
    return nn.relu(y + residual)


class CifarResNet(nn.Module):
  """ResNet-(6n+2) for 32x32 inputs; see the module docstring."""

  num_classes: int
  blocks_per_stage: int
  shortcut: str = "A"
  inner_widths: Sequence[int] | None = None
  kernel_init: str = "he_normal"
  bn_momentum: float = 0.9
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    x = layers.as_input(x, self.dtype)
    x = layers.conv(STAGE_WIDTHS[0], 3, name="stem_conv", dtype=self.dtype,
                    init=self.kernel_init)(x)
    x = nn.relu(layers.batch_norm(train=train, name="stem_bn", dtype=self.dtype,
                                  momentum=self.bn_momentum)(x))
    n = self.blocks_per_stage
    for i in range(3 * n):
      stage = i // n
      width = STAGE_WIDTHS[stage]
      inner = width if self.inner_widths is None else self.inner_widths[i]
      strides = 2 if (stage > 0 and i % n == 0) else 1
      x = BasicBlock(width, inner, strides, self.shortcut, i % n == 0, self.kernel_init,
                     self.bn_momentum, self.dtype, name=f"block_{i}")(x, train)
    x = jnp.mean(x, axis=(1, 2))
    return layers.logits_f32(layers.dense(self.num_classes, name="head", dtype=self.dtype,
                                          init=self.kernel_init)(x))


def _resnet(depth: int):
  if (depth - 2) % 6:
    raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
  n = (depth - 2) // 6

  def factory(num_classes: int, shortcut: str = "A", inner_widths: Sequence[int] | None = None,
              kernel_init: str = "he_normal", bn_momentum: float = 0.9,
              dtype=jnp.float32) -> nn.Module:
    if shortcut not in SHORTCUTS:
      raise ValueError(f"shortcut must be one of {list(SHORTCUTS)}, got {shortcut!r}")
    if inner_widths is not None:
      inner_widths = layers.as_tuple(inner_widths, "inner_widths", 3 * n)
    if not 0.0 <= bn_momentum < 1.0:
      raise ValueError(f"bn_momentum must be in [0, 1), got {bn_momentum}")
    layers.kernel_inits(kernel_init)
    return CifarResNet(num_classes=num_classes, blocks_per_stage=n, shortcut=shortcut,
                       inner_widths=inner_widths, kernel_init=kernel_init,
                       bn_momentum=bn_momentum, dtype=dtype)

  factory.__name__ = f"resnet{depth}"
  factory.__doc__ = (f"ResNet-{depth} for CIFAR ({n} blocks per stage); ``inner_widths`` has "
                     f"{3 * n} entries.")
  return factory


resnet20 = register("resnet20")(_resnet(20))
resnet56 = register("resnet56")(_resnet(56))
resnet110 = register("resnet110")(_resnet(110))
