"""Small fully connected and LeNet models for MNIST-like inputs.

Layer names (masks and structured pruning key on them):

* ``logistic``: ``head``.
* ``mlp``: ``dense_0 .. dense_{L-1}``, ``head``.
* ``lenet5``: ``conv_0``, ``conv_1``, ``dense_0``, ``dense_1``, ``head``.

``mlp`` and ``lenet5`` take ``kernel_init`` (a scheme of `lipprune.models.layers.KERNEL_INITS`),
default ``'glorot_normal'``: the Gaussian Glorot init of Frankle & Carbin (ICLR 2019, Fig. 2) and
of their LeNet-300-100 code (google-research/lottery-ticket-hypothesis, foundations/model_fc.py:
``xavier_initializer(uniform=False)``). Until issue 9 the zoo used He normal (``'he_normal'``),
whose per-layer scales made global magnitude pruning empty the 300x100 layer of an 8x8-input
LeNet-300-100 at 2% density.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from lipprune.models import layers
from lipprune.models.registry import register


class Logistic(nn.Module):
  """Multinomial logistic regression: ``logits = W flatten(x) + b``."""

  num_classes: int
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    del train
    x = layers.flatten(layers.as_input(x, self.dtype))
    return layers.logits_f32(layers.dense(self.num_classes, name="head", dtype=self.dtype)(x))


class MLP(nn.Module):
  """Fully connected ReLU network; ``hidden=(300, 100)`` is LeNet-300-100 (LeCun et al. 1998).

  Parameter count on ``d`` inputs: ``sum_i (h_{i-1} + 1) h_i`` with ``h_0 = d``, ``h_{L+1} = C``;
  266,610 for ``d = 784``, ``C = 10``.
  """

  num_classes: int
  hidden: Sequence[int] = (300, 100)
  kernel_init: str = "glorot_normal"
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    del train
    x = layers.flatten(layers.as_input(x, self.dtype))
    for i, width in enumerate(self.hidden):
      x = nn.relu(layers.dense(width, name=f"dense_{i}", dtype=self.dtype,
                               init=self.kernel_init)(x))
    return layers.logits_f32(layers.dense(self.num_classes, name="head", dtype=self.dtype,
                                          init=self.kernel_init)(x))


class LeNet5(nn.Module):
  """LeNet-5 (LeCun et al. 1998) with ReLU and max pooling.

  conv 6@5x5 (SAME) - ReLU - maxpool 2 - conv 16@5x5 - ReLU - maxpool 2 - FC 120 - FC 84 - FC C.
  The second conv uses VALID padding (the classic layout: 28x28 -> 14x14 -> 10x10 -> 5x5x16 = 400
  features, 61,706 parameters for 10 classes) when its input is at least 5x5, and SAME otherwise so
  that 8x8 digits also work (8 -> 4 -> 4 -> 2x2x16 = 64 features). ``conv1_padding`` forces one.
  Accepts NHWC images or NHW grayscale images.
  """

  num_classes: int
  conv1_padding: str | None = None
  kernel_init: str = "glorot_normal"
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    del train
    kw = dict(dtype=self.dtype, init=self.kernel_init)
    x = layers.as_input(x, self.dtype)
    if x.ndim == 3:
      x = x[..., None]
    x = nn.relu(layers.conv(6, 5, use_bias=True, name="conv_0", **kw)(x))
    x = layers.max_pool(x)
    padding = self.conv1_padding
    if padding is None:
      padding = "VALID" if min(x.shape[1:3]) >= 5 else "SAME"
    x = nn.relu(layers.conv(16, 5, use_bias=True, padding=padding, name="conv_1", **kw)(x))
    x = layers.max_pool(x)
    x = layers.flatten(x)
    x = nn.relu(layers.dense(120, name="dense_0", **kw)(x))
    x = nn.relu(layers.dense(84, name="dense_1", **kw)(x))
    return layers.logits_f32(layers.dense(self.num_classes, name="head", **kw)(x))


@register("logistic")
def logistic(num_classes: int, dtype=jnp.float32) -> nn.Module:
  return Logistic(num_classes=num_classes, dtype=dtype)


@register("mlp")
def mlp(num_classes: int, hidden: Sequence[int] = (300, 100), kernel_init: str = "glorot_normal",
        dtype=jnp.float32) -> nn.Module:
  layers.kernel_inits(kernel_init)
  return MLP(num_classes=num_classes, hidden=layers.as_tuple(hidden, "hidden"),
             kernel_init=kernel_init, dtype=dtype)


@register("lenet5")
def lenet5(num_classes: int, conv1_padding: str | None = None, kernel_init: str = "glorot_normal",
           dtype=jnp.float32) -> nn.Module:
  if conv1_padding not in (None, "SAME", "VALID"):
    raise ValueError(f"conv1_padding must be one of [None, 'SAME', 'VALID'], got {conv1_padding!r}")
  layers.kernel_inits(kernel_init)
  return LeNet5(num_classes=num_classes, conv1_padding=conv1_padding, kernel_init=kernel_init,
                dtype=dtype)
