"""The two small MNIST CNNs of Yang et al. (NeurIPS 2020), registered in `lipprune.models`.

* ``yang_cnn1`` ("CNN1"): conv3x3(32) - ReLU - conv3x3(64) - ReLU - maxpool2 - dropout(0.25) -
  dense(128) - ReLU - dropout(0.5) - dense(classes); valid padding (PyTorch's MNIST example net).
* ``yang_cnn2`` ("CNN2", the TRADES small CNN): conv3x3(32) - conv3x3(32) - maxpool2 -
  conv3x3(64) - conv3x3(64) - maxpool2 - dense(200) - dropout(0.5) - dense(200) - dense(classes),
  ReLU after every hidden layer, valid padding; the last layer starts at zero as in TRADES.

Importing this module registers both names (``lipprune.models.create('yang_cnn2', 10)``).
"""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from lipprune.models import register
from lipprune.models.layers import conv_init, dense_init


def _conv(features, name):
  return nn.Conv(features, (3, 3), padding="VALID", kernel_init=conv_init, name=name)


def _pool(x):
  return nn.max_pool(x, (2, 2), strides=(2, 2))


class YangCNN1(nn.Module):
  num_classes: int = 10

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = jnp.asarray(x, jnp.float32)
    if x.ndim == 3:
      x = x[..., None]
    x = nn.relu(_conv(32, "conv1")(x))
    x = nn.relu(_conv(64, "conv2")(x))
    x = _pool(x)
    # Dropout2d drops whole channels: broadcast the mask over the spatial axes.
    x = nn.Dropout(0.25, broadcast_dims=(1, 2), deterministic=not train)(x)
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(128, kernel_init=dense_init, name="fc1")(x))
    x = nn.Dropout(0.5, deterministic=not train)(x)
    return nn.Dense(self.num_classes, kernel_init=dense_init, name="fc2")(x)


class YangCNN2(nn.Module):
  num_classes: int = 10
  dropout: float = 0.5

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = jnp.asarray(x, jnp.float32)
    if x.ndim == 3:
      x = x[..., None]
    x = nn.relu(_conv(32, "conv1")(x))
    x = _pool(nn.relu(_conv(32, "conv2")(x)))
    x = nn.relu(_conv(64, "conv3")(x))
    x = _pool(nn.relu(_conv(64, "conv4")(x)))
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(200, kernel_init=dense_init, name="fc1")(x))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    x = nn.relu(nn.Dense(200, kernel_init=dense_init, name="fc2")(x))
    return nn.Dense(self.num_classes, kernel_init=nn.initializers.zeros, name="fc3")(x)


@register("yang_cnn1")
def yang_cnn1(num_classes: int = 10) -> nn.Module:
  return YangCNN1(num_classes=num_classes)


@register("yang_cnn2")
def yang_cnn2(num_classes: int = 10, dropout: float = 0.5) -> nn.Module:
  return YangCNN2(num_classes=num_classes, dropout=dropout)
