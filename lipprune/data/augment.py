"""On-device data augmentation: pure, batched, jit-able functions of an explicit key.

The standard CIFAR augmentation (He et al., 2016, "Deep residual learning", Sec. 4.2): zero-pad each
image by ``pad`` pixels per side, take a random H x W crop of the (H + 2 pad) x (W + 2 pad) image,
and flip it horizontally with probability 1/2. Per example ``b`` with offsets ``(i_b, j_b)`` drawn
uniformly from {0, ..., 2 pad}^2 and flip bit ``f_b``:

    out[b, r, c] = P[b, i_b + r, j_b + c']   with c' = W - 1 - c if f_b else c,

where ``P`` is the zero-padded batch.
"""
from __future__ import annotations

from typing import Callable

import chex
import jax
import jax.numpy as jnp

AUGMENTATIONS = ("none", "crop_flip")


def crop_flip_params(key: jax.Array, batch_size: int, pad: int = 4) -> tuple[jax.Array, jax.Array]:
  """Draws per-example crop offsets (B, 2) int32 in [0, 2 pad] and flip bits (B,) bool."""
  crop_key, flip_key = jax.random.split(key)
  offsets = jax.random.randint(crop_key, (batch_size, 2), 0, 2 * pad + 1, dtype=jnp.int32)
  flips = jax.random.bernoulli(flip_key, 0.5, (batch_size,))
  return offsets, flips


def crop_flip(x: jax.Array, offsets: jax.Array, flips: jax.Array, pad: int = 4) -> jax.Array:
  """Deterministic crop-and-flip of an NHWC batch given its offsets and flip bits (formula above)."""
  chex.assert_rank(x, 4)
  b, h, w, c = x.shape
  chex.assert_shape(offsets, (b, 2))
  chex.assert_shape(flips, (b,))
  padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))

  def one(image, offset, flip):
    crop = jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, c))
    return jnp.where(flip, crop[:, ::-1, :], crop)

  return jax.vmap(one)(padded, offsets, flips)


def random_crop_flip(x: jax.Array, key: jax.Array, pad: int = 4) -> jax.Array:
  """Random pad-crop and horizontal flip of an NHWC batch, independently per example."""
  chex.assert_rank(x, 4)
  offsets, flips = crop_flip_params(key, x.shape[0], pad)
  return crop_flip(x, offsets, flips, pad)


def make_augment(name: str, **kwargs) -> Callable:
  """The train step's ``preprocess(batch, key) -> batch`` hook for augmentation ``name``.

  Args:
    name: ``'none'`` (identity) or ``'crop_flip'`` (``random_crop_flip`` on ``batch['x']``).
    **kwargs: options of the augmentation (``pad`` for crop_flip).
  """
  if name not in AUGMENTATIONS:
    raise ValueError(f"Unknown augmentation {name!r}; allowed: {', '.join(AUGMENTATIONS)}")
  if name == "none":
    if kwargs:
      raise TypeError(f"Augmentation 'none' takes no options, got {sorted(kwargs)}")
    return lambda batch, key: batch
  pad = int(kwargs.pop("pad", 4))
  if kwargs:
    raise TypeError(f"Augmentation 'crop_flip' takes only 'pad', got {sorted(kwargs)}")

  def augment(batch, key):
    x = batch["x"]
    if x.ndim != 4:
      raise ValueError(f"crop_flip needs NHWC images, got batch['x'] of shape {x.shape}")
    return {**batch, "x": random_crop_flip(x, key, pad)}

  return augment
