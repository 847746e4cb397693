"""Plain CIFAR convnets: the Lottery Ticket Conv-2/4/6 and the batch-norm VGG-16 of Li et al.

Layer names (masks and structured pruning key on them):

* ``conv2/conv4/conv6``: ``conv_0 .. conv_{K-1}`` (3x3, bias), ``dense_0``, ``dense_1``, ``head``.
* ``vgg16``: ``conv_i`` / ``bn_i`` for i = 0..12 (3x3, no bias, each followed by its BN),
  ``dense_0``, ``bn_dense``, ``head`` (``classifier_width=0``: only ``head``, the single-FC
  ``vgg16_nofc`` that Renda et al. prune).

Initialization (``kernel_init``, a scheme of `lipprune.models.layers.KERNEL_INITS`): Conv-2/4/6
default to ``'glorot_normal'``, the Gaussian Glorot init of Frankle & Carbin (ICLR 2019, Fig. 2);
VGG-16 keeps ``'he_normal'`` (Renda et al.'s code uses ``'tf_official'``: set it in the config).

Flattening is NHWC, so input unit ``(h * W + w) * C + c`` of ``dense_0`` reads channel ``c`` of the
last conv: removing filter ``c`` of the last conv removes those ``H * W`` rows of ``dense_0``.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from lipprune.models import layers
from lipprune.models.registry import register

# Frankle & Carbin (2019), Figure 2: 3x3 convs, a 2x2 max pool after every pair, FC 256-256-10.
CONV_WIDTHS = {2: (64, 64), 4: (64, 64, 128, 128), 6: (64, 64, 128, 128, 256, 256)}

# Simonyan & Zisserman (2015) configuration D, as trained on CIFAR-10 by Li et al. (2017).
VGG16_WIDTHS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
VGG16_POOL_AFTER = (1, 3, 6, 9, 12)  # a 2x2 max pool follows these conv indices


class LotteryConvNet(nn.Module):
  """Conv-2/4/6 of Frankle & Carbin, "The Lottery Ticket Hypothesis", ICLR 2019.

  ``[conv3x3 - ReLU - conv3x3 - ReLU - maxpool2] x (K/2)`` then ``FC 256 - ReLU - FC 256 - ReLU -
  FC C``. With widths ``w_i``, ``w_0 = 3`` input channels and a ``32 / 2^(K/2)``-sided final map
  ``s``, the parameter count is ``sum_i (9 w_{i-1} + 1) w_i + (s^2 w_K + 1) 256 + 257 * 256 +
  257 * C``: 4,301,642 / 2,425,930 / 2,262,602 for K = 2/4/6 and C = 10. These match the
  paper's per-part counts (conv 38K / 260K / 1.1M, FC 4.1M / 2.1M / 1.1M); its 1.7M total for
  Conv-6 does not equal the sum of its own parts. ``dropout_rate`` (default 0) applies dropout
  after each hidden FC layer, as in the paper's dropout experiments.
  """

  num_classes: int
  widths: Sequence[int]
  hidden: Sequence[int] = (256, 256)
  dropout_rate: float = 0.0
  kernel_init: str = "glorot_normal"
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    kw = dict(dtype=self.dtype, init=self.kernel_init)
    x = layers.as_input(x, self.dtype)
    for i, width in enumerate(self.widths):
      x = nn.relu(layers.conv(width, 3, use_bias=True, name=f"conv_{i}", **kw)(x))
      if i % 2 == 1:
        x = layers.max_pool(x)
    x = layers.flatten(x)
    for i, width in enumerate(self.hidden):
      x = nn.relu(layers.dense(width, name=f"dense_{i}", **kw)(x))
      if self.dropout_rate > 0:
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return layers.logits_f32(layers.dense(self.num_classes, name="head", **kw)(x))


class VGG16(nn.Module):
  """CIFAR VGG-16 with batch norm, the network pruned by Li et al., "Pruning Filters for Efficient
  ConvNets", ICLR 2017.

  Layout (32x32 input): 13 blocks ``conv3x3 (no bias) - BN - ReLU`` with widths
  64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M (M = 2x2 max pool),
  leaving a 1x1x512 map; classifier ``Dense 512 - BN - ReLU - Dense C``. That is about 15.0M
  parameters for C = 10 (Li et al. report 1.5e7). ``widths`` (13 ints) overrides the conv widths;
  ``classifier_width=0`` drops the hidden classifier layer (``Dense C`` on the 512 features: the
  ``vgg16_nofc`` of Renda et al.'s code, gpu-src/official/vgg/vgg_model.py, 14,724,042 parameters).
  ``bn_momentum``: the running-average momentum (TF official: 0.997).
  """

  num_classes: int
  widths: Sequence[int] = VGG16_WIDTHS
  classifier_width: int = 512
  kernel_init: str = "he_normal"
  bn_momentum: float = 0.9
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    x = layers.as_input(x, self.dtype)
    bn = dict(train=train, dtype=self.dtype, momentum=self.bn_momentum)
    for i, width in enumerate(self.widths):
      x = layers.conv(width, 3, name=f"conv_{i}", dtype=self.dtype, init=self.kernel_init)(x)
      x = nn.relu(layers.batch_norm(name=f"bn_{i}", **bn)(x))
      if i in VGG16_POOL_AFTER:
        x = layers.max_pool(x)
    x = layers.flatten(x)
    if self.classifier_width:
      x = layers.dense(self.classifier_width, name="dense_0", dtype=self.dtype,
                       init=self.kernel_init)(x)
      x = nn.relu(layers.batch_norm(name="bn_dense", **bn)(x))
    return layers.logits_f32(layers.dense(self.num_classes, name="head", dtype=self.dtype,
                                          init=self.kernel_init)(x))


def _lottery(depth: int):
  def factory(num_classes: int, widths: Sequence[int] | None = None,
              hidden: Sequence[int] = (256, 256), dropout_rate: float = 0.0,
              kernel_init: str = "glorot_normal", dtype=jnp.float32) -> nn.Module:
    widths = CONV_WIDTHS[depth] if widths is None else widths
    layers.kernel_inits(kernel_init)
    return LotteryConvNet(num_classes=num_classes, widths=layers.as_tuple(widths, "widths", depth),
                          hidden=layers.as_tuple(hidden, "hidden"), dropout_rate=dropout_rate,
                          kernel_init=kernel_init, dtype=dtype)

  factory.__name__ = f"conv{depth}"
  factory.__doc__ = (f"Conv-{depth} of Frankle & Carbin (2019); ``widths`` overrides the conv "
                     "widths.")
  return factory


conv2 = register("conv2")(_lottery(2))
conv4 = register("conv4")(_lottery(4))
conv6 = register("conv6")(_lottery(6))


@register("vgg16")
def vgg16(num_classes: int, widths: Sequence[int] | None = None, classifier_width: int = 512,
          kernel_init: str = "he_normal", bn_momentum: float = 0.9, dtype=jnp.float32) -> nn.Module:
  widths = VGG16_WIDTHS if widths is None else widths
  if classifier_width < 0:
    raise ValueError(f"classifier_width must be >= 0 (0: no hidden classifier layer), got "
                     f"{classifier_width}")
  layers.kernel_inits(kernel_init)
  return VGG16(num_classes=num_classes, widths=layers.as_tuple(widths, "widths", 13),
               classifier_width=int(classifier_width), kernel_init=kernel_init,
               bn_momentum=bn_momentum, dtype=dtype)
