"""A masked optax wrapper: any optimizer, pruned weights stay exactly zero.

``masked(tx, masks)`` computes, for gradients ``g`` and params ``w`` with ``w = m * w``,

  u, s' = tx.update(m * g, s, m * w);   return m * u, s'

so a pruned coordinate never receives a non-zero update: momentum/Nesterov buffers and Adam moments
of pruned coordinates may still hold old values (e.g. after weight rewinding restores a dense
optimizer state) but can never move the weight, and weight decay ``wd * w`` vanishes on zeros.
Unlike ``optax.masked`` (which chooses the leaves a transform applies to), this zeroes entries.
"""
from __future__ import annotations

import optax

from lipprune.train.masking import apply_masks


def masked(tx: optax.GradientTransformation, masks) -> optax.GradientTransformation:
  """Wraps ``tx`` so that its updates are zero wherever ``masks`` is 0 (``masks=None``: dense).

  The params must already be masked (``lipprune.train.apply_masks``); then
  ``optax.apply_updates(params, updates)`` (or the lipprune train step's ``-lr * updates``) keeps
  them masked for any number of steps.
  """

  def init_fn(params):
    return tx.init(params)

  def update_fn(updates, state, params=None):
    updates = apply_masks(updates, masks)
    if params is not None:
      params = apply_masks(params, masks)
    new_updates, state = tx.update(updates, state, params)
    return apply_masks(new_updates, masks), state

  return optax.GradientTransformation(init_fn, update_fn)
