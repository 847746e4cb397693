"""Differentiable fairness relaxations, used as penalties in the loss and as soft metrics.

``p`` is the model's probability of the favourable outcome, ``p = softmax(logits)[:, 1]``;
``group`` is the protected attribute (1 = protected). Optional ``weight`` (e.g. a selection mask)
weights each example's contribution to the group means.

* Demographic parity (Wick, Panda & Tristan 2019, eq. for the in-processing and semi-supervised
  models): ``(mean_{rho=1} p - mean_{rho=0} p) ** 2``. It needs no labels, so it can be computed
  on unlabeled data.
* Equalized-odds style (a relaxation of Hardt et al. 2016): the same squared gap within each label
  class, summed: ``sum_c (mean_{rho=1, y=c} p - mean_{rho=0, y=c} p) ** 2``. It needs labels.

Both are 0 exactly when the group means match, in particular on a predictor whose output does not
depend on the group.
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def _mean(p, sel):
  return jnp.sum(p * sel) / jnp.maximum(jnp.sum(sel), 1e-12)


def demographic_parity_penalty(p: jax.Array, group: jax.Array, weight: jax.Array | None = None):
  """``(mean p over protected - mean p over unprotected) ** 2``."""
  chex.assert_equal_shape([p, group])
  w = jnp.ones_like(p) if weight is None else jnp.asarray(weight, p.dtype)
  g = jnp.asarray(group)
  return (_mean(p, w * (g == 1)) - _mean(p, w * (g == 0))) ** 2


def equalized_odds_penalty(p: jax.Array, y: jax.Array, group: jax.Array,
                           weight: jax.Array | None = None):
  """``sum_{c in {0,1}} (mean p over protected with y=c - mean p over unprotected with y=c) ** 2``."""
  chex.assert_equal_shape([p, y, group])
  w = jnp.ones_like(p) if weight is None else jnp.asarray(weight, p.dtype)
  g, y = jnp.asarray(group), jnp.asarray(y)
  total = 0.0
  for c in (0, 1):
    wc = w * (y == c)
    total = total + (_mean(p, wc * (g == 1)) - _mean(p, wc * (g == 0))) ** 2
  return total
