"""The two small MNIST CNNs of Yang et al. (NeurIPS 2020), registered in `lipprune.models`.

* ``yang_cnn1`` ("CNN1"): conv3x3(32) - ReLU - conv3x3(64) - ReLU - maxpool2 - dropout(0.25) -
  dense(128) - ReLU - dropout(0.5) - dense(classes); valid padding (PyTorch's MNIST example net).
* ``yang_cnn2`` ("CNN2", the TRADES small CNN): conv3x3(32) - conv3x3(32) - maxpool2 -
  conv3x3(64) - conv3x3(64) - maxpool2 - dense(200) - dropout(0.5) - dense(200) - dense(classes),
  ReLU after every hidden layer, valid padding; the last layer starts at zero as in TRADES.

Importing this module registers both names (``lipprune.models.create('yang_cnn2', 10)``). Both
take ``dtype``, the compute dtype (e.g. ``jnp.bfloat16``); parameters and logits stay float32.
"""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from lipprune.models import layers, register


def _conv(features, name, dtype):
  return layers.conv(features, 3, name=name, padding="VALID", use_bias=True, dtype=dtype)


def _image(x, dtype):
  x = layers.as_input(x, dtype)
  return x[..., None] if x.ndim == 3 else x


def _pool(x):
  return nn.max_pool(x, (2, 2), strides=(2, 2))


class YangCNN1(nn.Module):
  num_classes: int = 10
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = _image(x, self.dtype)
    x = nn.relu(_conv(32, "conv1", self.dtype)(x))
    x = nn.relu(_conv(64, "conv2", self.dtype)(x))
    x = _pool(x)
    # Dropout2d drops whole channels: broadcast the mask over the spatial axes.
    x = nn.Dropout(0.25, broadcast_dims=(1, 2), deterministic=not train)(x)
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(layers.dense(128, name="fc1", dtype=self.dtype)(x))
    x = nn.Dropout(0.5, deterministic=not train)(x)
    return layers.logits_f32(layers.dense(self.num_classes, name="fc2", dtype=self.dtype)(x))


class YangCNN2(nn.Module):
  num_classes: int = 10
  dropout: float = 0.5
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = _image(x, self.dtype)
    x = nn.relu(_conv(32, "conv1", self.dtype)(x))
    x = _pool(nn.relu(_conv(32, "conv2", self.dtype)(x)))
    x = nn.relu(_conv(64, "conv3", self.dtype)(x))
    x = _pool(nn.relu(_conv(64, "conv4", self.dtype)(x)))
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(layers.dense(200, name="fc1", dtype=self.dtype)(x))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    x = nn.relu(layers.dense(200, name="fc2", dtype=self.dtype)(x))
    head = nn.Dense(self.num_classes, kernel_init=nn.initializers.zeros, dtype=self.dtype,
                    param_dtype=jnp.float32, name="fc3")
    return layers.logits_f32(head(x))


@register("yang_cnn1")
def yang_cnn1(num_classes: int = 10, dtype=jnp.float32) -> nn.Module:
  return YangCNN1(num_classes=num_classes, dtype=dtype)


@register("yang_cnn2")
def yang_cnn2(num_classes: int = 10, dropout: float = 0.5, dtype=jnp.float32) -> nn.Module:
  return YangCNN2(num_classes=num_classes, dropout=dropout, dtype=dtype)
