"""Applying sparsity masks to pytrees shaped like the params.

A mask tree has the params' structure; a leaf is a 0/1 array (pruned where 0) or ``None`` (never
pruned). ``masks=None`` as a whole means dense.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


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
  materializing (``make_train_step``'s default since lipprune 0.2; see its ``fuse_masks``)."""
  if masks is None:
    return tree
  return jax.tree.map(lambda m, t: t if m is None else jnp.where(m != 0, t, t * 0), masks, tree,
                      is_leaf=_is_none)


def masked_norm(tree, masks):
  """The L2 norm of ``apply_masks(tree, masks)``, as ``sqrt(sum_leaves sum(where(m != 0, t * t,
  0)))``: the mask sits inside each leaf's reduction, which XLA fuses, so the masked tree is never
  written out (see ``make_train_step``'s ``fuse_masks``). Leaves whose mask is ``None`` count whole;
  ``masks=None`` is ``optax.tree.norm(tree)``. For finite leaves the value equals
  ``optax.tree.norm(apply_masks(tree, masks))`` up to the order of the summation; a pruned entry
  that is inf or NaN counts 0 here (the product would make the norm NaN)."""
  if masks is None:
    return optax.tree.norm(tree)
  squares = jax.tree.map(
      lambda m, t: jnp.sum(t * t) if m is None else jnp.sum(jnp.where(m != 0, t * t, 0.0)),
      masks, tree, is_leaf=_is_none)
  return jnp.sqrt(sum(jax.tree.leaves(squares)))
