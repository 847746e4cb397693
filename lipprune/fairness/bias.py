"""Bias injection as pure keyed functions (Wick, Panda & Tristan, NeurIPS 2019, section 3).

Every example carries a protected attribute ``rho`` (1 = protected), a clean label ``z`` and an
observed label ``y``. Two kinds of bias corrupt what a learner sees:

* **Label bias** (observed labels only): with probability ``beta`` the observed label is replaced by
  the unfavourable outcome for protected examples and the favourable one for the others,
  ``y := 1 - rho`` (favourable outcome 1), else ``y := z``. Generalised by `flip_labels`, which
  flips each (group, class) cell at its own rate.
* **Selection bias** (training set only, ``sigma >= 1``; ``sigma = 1`` is no bias). Two definitions:

  - **The paper's** (default; section 5.2: selection bias "lowering the probability that a data
    example with a positive label is assigned to the protected class"; appendix A.2: the portion
    of the favourable class assigned to the protected attribute falls from ``r`` to ``r / sigma``):
    ``P(rho = 1 | z = f)`` is divided by ``sigma``, i.e. each protected favourable example stays
    protected (or, on real data, stays in the sample) with probability ``1 / sigma``. The share of
    favourable examples among protected ones falls from ``p`` to ``p / (p + sigma (1 - p))``:
    for ``p = 0.5``, 1/3, 1/5 and 1/9 at ``sigma`` = 2, 4, 8. `selection_paper_assign` (the
    generator: ``rho := 0``, set size unchanged) and `selection_paper_keep_mask` (real data, whose
    protected attribute is a fact about a person: the example is dropped).
  - **Share** (lipprune's earlier reading of appendix A.2, kept as the named options
    ``'subsample'``/``'reassign'``): the share of favourable examples among protected ones falls from
    ``p`` to ``p / sigma`` (0.25, 0.125, 0.0625 at ``sigma`` = 2, 4, 8 for ``p = 0.5``), so the
    same ``sigma`` is a stronger bias. `selection_keep_mask` (*subsampling*: protected favourable
    examples kept with probability ``q = (1 - p) / (sigma - p)``, since ``p q / (p q + 1 - p) =
    p / sigma``) and `selection_reassign` (*reassigning rho* with the same ``q``).

  `selected_share` gives the expected share after either definition.

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


def _protected_favourable(z, rho, favorable):
  if favorable not in (0, 1):
    raise ValueError(f"favorable={favorable!r}; expected 0 or 1")
  chex.assert_equal_shape([z, rho])
  return (jnp.asarray(rho) == 1) & (jnp.asarray(z) == favorable)


def selection_paper_keep_mask(key: jax.Array, z: jax.Array, rho: jax.Array, sigma, *,
                              favorable: int = 1) -> jax.Array:
  """The paper's selection bias by subsampling: a boolean keep mask.

  Protected examples with the favourable clean label (``rho = 1, z = favorable``) are kept with
  probability ``1 / sigma``, every other example is kept.
  """
  target = _protected_favourable(z, rho, favorable)
  return jnp.where(target, jax.random.uniform(key, target.shape) * sigma < 1.0, True)


def selection_paper_assign(key: jax.Array, z: jax.Array, rho: jax.Array, sigma, *,
                           favorable: int = 1) -> jax.Array:
  """The paper's selection bias by assignment: returns the new int32 ``rho``.

  Each protected favourable example keeps ``rho = 1`` with probability ``1 / sigma`` and gets
  ``rho := 0`` otherwise: ``P(rho = 1 | z = favorable)`` is divided by ``sigma`` (for the generator,
  ``alpha / sigma``), the set's size is unchanged.
  """
  target = _protected_favourable(z, rho, favorable)
  move = target & (jax.random.uniform(key, target.shape) * sigma >= 1.0)
  return jnp.where(move, 0, jnp.asarray(rho, jnp.int32)).astype(jnp.int32)


def selected_share(p, sigma, definition: str = "paper"):
  """Expected share of favourable examples among protected ones after selection bias ``sigma``,
  from ``p`` before: ``p / (p + sigma (1 - p))`` (``'paper'``) or ``p / sigma`` (``'share'``)."""
  if definition == "paper":
    return p / (p + sigma * (1.0 - p))
  if definition == "share":
    return p / sigma
  raise ValueError(f"definition={definition!r}; expected 'paper' or 'share'")


def selection_keep_mask(key: jax.Array, z: jax.Array, rho: jax.Array, sigma, r=None, *,
                        favorable: int = 1) -> jax.Array:
  """Selection bias by subsampling to share ``r / sigma``: a boolean keep mask.

  Protected favourable examples (``rho = 1, z = favorable``) are kept with probability
  ``q = (1 - r) / (sigma - r)``, every other example is kept; ``r`` defaults to the empirical
  ``P(z = favorable | rho = 1)`` of the inputs. The expected favourable share among kept protected
  examples is ``r / sigma``.
  """
  target = _protected_favourable(z, rho, favorable)
  fav = (jnp.asarray(z) == favorable).astype(jnp.int32)
  r = protected_positive_share(fav, rho) if r is None else jnp.asarray(r, jnp.float32)
  q = selection_keep_probability(r, sigma)
  return jnp.where(target, jax.random.uniform(key, target.shape) < q, True)


def selection_reassign(key: jax.Array, z: jax.Array, rho: jax.Array, sigma, r=None, *,
                       favorable: int = 1) -> jax.Array:
  """Selection bias by reassigning the protected attribute to share ``r / sigma``: the new ``rho``.

  Each protected favourable example keeps ``rho = 1`` with probability ``q = (1 - r) / (sigma - r)``
  and gets ``rho := 0`` otherwise, so the protected favourable share falls from ``r`` to
  ``r / sigma`` in expectation while the set's size is unchanged.
  """
  target = _protected_favourable(z, rho, favorable)
  fav = (jnp.asarray(z) == favorable).astype(jnp.int32)
  r = protected_positive_share(fav, rho) if r is None else jnp.asarray(r, jnp.float32)
  q = selection_keep_probability(r, sigma)
  move = target & (jax.random.uniform(key, target.shape) >= q)
  return jnp.where(move, 0, jnp.asarray(rho, jnp.int32)).astype(jnp.int32)


def first_kept(keep: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
  """Indices of the first ``n`` kept rows (stable order) and whether at least ``n`` were kept.

  A fixed-shape way to subsample inside jit: draw a larger pool, mask it, take the first ``n``.
  """
  order = jnp.argsort(jnp.logical_not(keep), stable=True)
  return order[:n], jnp.sum(keep) >= n
