"""Applying sparsity masks to pytrees shaped like the params.

A mask tree has the params' structure; a leaf is a 0/1 array (pruned where 0) or ``None`` (never
pruned). ``masks=None`` as a whole means dense.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def _is_none(x):
  return x is None


def apply_masks(tree, masks):
  """``tree * masks`` leafwise; leaves whose mask is ``None`` (or ``masks is None``) pass through."""
  if masks is None:
    return tree
  return jax.tree.map(lambda m, t: t if m is None else t * m.astype(t.dtype), masks, tree,
                      is_leaf=_is_none)


def select_masks(tree, masks):
  """`apply_masks` as a select: ``where(m != 0, t, 0 * t)``, the same values (signed zeros, NaN
  propagation) as ``t * m`` for 0/1 masks, but an op that XLA fuses into each consumer rather than
  materializing (see ``make_train_step(fuse_masks=True)``)."""
  if masks is None:
    return tree
  return jax.tree.map(lambda m, t: t if m is None else jnp.where(m != 0, t, t * 0), masks, tree,
                      is_leaf=_is_none)
