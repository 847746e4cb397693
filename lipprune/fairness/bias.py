"""Bias injection as pure keyed functions (Wick, Panda & Tristan, NeurIPS 2019, section 3).

Every example carries a protected attribute ``rho`` (1 = protected), a clean label ``z`` and an
observed label ``y``. Two kinds of bias corrupt what a learner sees:

* **Label bias** (observed labels only): with probability ``beta`` the observed label is replaced by
  the unfavourable outcome for protected examples and the favourable one for the others,
  ``y := 1 - rho`` (favourable outcome 1), else ``y := z``. Generalised by `flip_labels`, which
  flips each (group, class) cell at its own rate.
* **Selection bias** (training set only): among protected examples the share with ``z = 1`` falls
  from ``r`` to ``r / sigma`` (``sigma >= 1``). The paper describes two mechanisms; both are here:

  - `selection_keep_mask` (default, *subsampling*): keep every example except protected positives,
    which are kept with probability ``q = (1 - r) / (sigma - r)``. Among kept protected examples the
    positive share is then ``r q / (r q + 1 - r) = r / sigma``.
  - `selection_reassign` (*reassigning rho*): each protected positive keeps ``rho = 1`` with the same
    probability ``q`` and is otherwise relabelled ``rho := 0``; the protected positive share is again
    ``r / sigma`` while the data set size is unchanged (the unprotected group gains the moved positives).

All functions are jit-able, take an explicit ``jax.random`` key and return new arrays.
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def label_bias(key: jax.Array, z: jax.Array, rho: jax.Array, beta, *, favorable: int = 1) -> jax.Array:
  """The paper's label bias: with probability ``beta``, ``y := 1 - rho`` (else ``y := z``).

  With ``favorable=1`` a protected person's positive becomes negative and an unprotected person's
  negative becomes positive; examples whose clean label already equals the biased one are unchanged.
  With ``favorable=0`` (e.g. recidivism, where 1 is the unfavourable outcome) the biased label is
  ``y := rho``: protected 0 -> 1, unprotected 1 -> 0.

  Args:
    key: PRNG key.
    z: int clean labels in {0, 1}, shape (n,).
    rho: int protected attribute in {0, 1}, shape (n,).
    beta: probability of replacing the label (scalar, may be traced).
    favorable: which label is the favourable outcome.

  Returns:
    int32 observed labels y, shape (n,).
  """
  chex.assert_equal_shape([z, rho])
  z = jnp.asarray(z, jnp.int32)
  rho = jnp.asarray(rho, jnp.int32)
  biased = jnp.where(rho == 1, 1 - favorable, favorable).astype(jnp.int32)
  hit = jax.random.uniform(key, z.shape) < beta
  return jnp.where(hit, biased, z)


def flip_labels(key: jax.Array, z: jax.Array, group: jax.Array, rates: jax.Array) -> jax.Array:
  """Group- and class-conditional label noise: ``P(y = 1 - z | group = g, z = c) = rates[g, c]``.

  The paper's label bias with favourable outcome 1 is ``rates = [[beta, 0], [0, beta]]`` (unprotected
  negatives and protected positives flip at rate ``beta``).

  Args:
    key: PRNG key.
    z: int clean labels in {0, 1}, shape (n,).
    group: int groups in [0, G), shape (n,).
    rates: float array (G, 2) of flip probabilities.
  """
  chex.assert_equal_shape([z, group])
  rates = jnp.asarray(rates, jnp.float32)
  chex.assert_rank(rates, 2)
  z = jnp.asarray(z, jnp.int32)
  p = rates[jnp.asarray(group, jnp.int32), z]
  flip = jax.random.uniform(key, z.shape) < p
  return jnp.where(flip, 1 - z, z)


def protected_positive_share(z: jax.Array, rho: jax.Array, weight: jax.Array | None = None) -> jax.Array:
  """``r = P(z = 1 | rho = 1)`` (weighted when ``weight`` is given; 0 if no protected example)."""
  w = jnp.ones(z.shape, jnp.float32) if weight is None else jnp.asarray(weight, jnp.float32)
  prot = (jnp.asarray(rho) == 1) * w
  return jnp.sum(prot * (jnp.asarray(z) == 1)) / jnp.maximum(jnp.sum(prot), 1e-12)


def selection_keep_probability(r, sigma):
  """``q = (1 - r) / (sigma - r)``: the keep rate of protected positives that turns share r into r/sigma.

  ``sigma = 1`` gives ``q = 1`` (no bias); ``sigma -> inf`` gives ``q -> 0``. Requires ``r < 1``
  (a protected group with only positives cannot have its share reduced by subsampling).
  """
  return jnp.clip((1.0 - r) / jnp.maximum(sigma - r, 1e-12), 0.0, 1.0)


def selection_keep_mask(key: jax.Array, z: jax.Array, rho: jax.Array, sigma, r=None) -> jax.Array:
  """Selection bias by subsampling: a boolean keep mask.

  Protected positives (rho = 1, z = 1) are kept with probability ``q = (1 - r) / (sigma - r)``, every
  other example is kept; ``r`` defaults to the empirical ``P(z = 1 | rho = 1)`` of the inputs. The
  expected protected positive share among kept examples is ``r / sigma``.
  """
  chex.assert_equal_shape([z, rho])
  r = protected_positive_share(z, rho) if r is None else jnp.asarray(r, jnp.float32)
  q = selection_keep_probability(r, sigma)
  target = (jnp.asarray(rho) == 1) & (jnp.asarray(z) == 1)
  return jnp.where(target, jax.random.uniform(key, z.shape) < q, True)


def selection_reassign(key: jax.Array, z: jax.Array, rho: jax.Array, sigma, r=None) -> jax.Array:
  """Selection bias by reassigning the protected attribute: returns the new int32 ``rho``.

  Each protected positive keeps ``rho = 1`` with probability ``q = (1 - r) / (sigma - r)`` and gets
  ``rho := 0`` otherwise, so the protected positive share falls from ``r`` to ``r / sigma`` in
  expectation while the set's size is unchanged.
  """
  chex.assert_equal_shape([z, rho])
  rho = jnp.asarray(rho, jnp.int32)
  r = protected_positive_share(z, rho) if r is None else jnp.asarray(r, jnp.float32)
  q = selection_keep_probability(r, sigma)
  target = (rho == 1) & (jnp.asarray(z) == 1)
  move = target & (jax.random.uniform(key, z.shape) >= q)
  return jnp.where(move, 0, rho).astype(jnp.int32)


def first_kept(keep: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
  """Indices of the first ``n`` kept rows (stable order) and whether at least ``n`` were kept.

  A fixed-shape way to subsample inside jit: draw a larger pool, mask it, take the first ``n``.
  """
  order = jnp.argsort(jnp.logical_not(keep), stable=True)
  return order[:n], jnp.sum(keep) >= n
