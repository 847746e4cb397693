"""The synthetic generator of Wick, Panda & Tristan (NeurIPS 2019), appendix A, as we read it.

One data set (train, test and unlabeled splits share the same hidden ``w``):

* ``w ~ N(0, I_{k-1})``, drawn once per data set.
* ``rho ~ Bernoulli(alpha)`` (1 = protected), ``alpha = 0.5`` by default.
* Binary features ``x_j ~ Bernoulli((1 / (j + 1)) ** tau)`` for ``j = 0 .. k - 2`` (``k = 20``; the
  paper does not report ``tau``, default 1). Feature 0 is always 1 and acts as a bias term.
* Clean label ``z = 1[w . x > 0]``: independent of ``rho`` by construction.
* Classifier input: ``[x_0 .. x_{k-2}, rho]`` (k columns); the protected attribute is an input.
* Label bias (all splits' observed ``y``): with probability ``beta``, ``y := 1 - rho``, else ``y := z``
  (`lipprune.fairness.bias.label_bias`).
* Selection bias (training split only, ``sigma >= 1``), `lipprune.fairness.bias`: ``'paper'``
  (default; section 5.2 / appendix A.2) divides ``P(rho = 1 | z = 1)`` by ``sigma`` (a positive
  example stays protected with probability ``1 / sigma``, else ``rho := 0``); ``'subsample'``
  (keeping protected positives from a larger pool) and ``'reassign'`` instead bring the protected
  positive share from ``r`` to ``r / sigma``. Selection is applied before label bias, so ``y`` uses
  the final ``rho``.
* Sizes: 200 train, 1,000 test, 10,000 unlabeled.

Everything is a pure function of the key, so ``jax.vmap`` over keys draws many data sets at once and
``beta``/``sigma`` may be traced (one compilation for a whole sweep).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from lipprune.fairness import bias

SELECTION_MECHANISMS = ("paper", "subsample", "reassign")


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
  """Every parameter of the generator (defaults: the paper's appendix A)."""

  num_features: int = 20  # k: classifier inputs, k - 1 binary features plus rho.
  tau: float = 1.0  # x_j ~ Bernoulli((1/(j+1))**tau).
  alpha: float = 0.5  # P(rho = 1).
  beta: float = 0.0  # label bias.
  sigma: float = 1.0  # selection bias on the training split.
  selection: str = "paper"  # or "subsample", "reassign" (bias module docstring).
  n_train: int = 200
  n_test: int = 1000
  n_unlabeled: int = 10000
  pool_factor: int = 4  # training pool size / n_train for selection by subsampling.

  def __post_init__(self):
    if self.selection not in SELECTION_MECHANISMS:
      raise ValueError(f"selection={self.selection!r}; expected one of {list(SELECTION_MECHANISMS)}")
    if self.num_features < 2:
      raise ValueError(f"num_features={self.num_features}; need at least 2")
    if not 0.0 < self.alpha < 1.0:
      raise ValueError(f"alpha={self.alpha}; need 0 < alpha < 1")


def _draw(key, w, n, cfg):
  """n examples of (features without rho, rho, z)."""
  k_rho, k_x = jax.random.split(key)
  j = jnp.arange(cfg.num_features - 1, dtype=jnp.float32)
  p = (1.0 / (j + 1.0)) ** cfg.tau
  feats = (jax.random.uniform(k_x, (n, cfg.num_features - 1)) < p).astype(jnp.float32)
  rho = (jax.random.uniform(k_rho, (n,)) < cfg.alpha).astype(jnp.int32)
  z = (feats @ w > 0).astype(jnp.int32)
  return feats, rho, z


def _split(feats, rho, z, y):
  x = jnp.concatenate([feats, rho[:, None].astype(jnp.float32)], axis=1)
  return {"x": x, "rho": rho, "z": z, "y": y}


def generate(key: jax.Array, cfg: GeneratorConfig = GeneratorConfig(), *, beta=None, sigma=None) -> dict:
  """Draws one data set.

  Args:
    key: PRNG key; the output is a deterministic function of it.
    cfg: static generator configuration.
    beta, sigma: optional (possibly traced) overrides of ``cfg.beta`` and ``cfg.sigma``.

  Returns:
    ``{'train', 'test', 'unlabeled'}``, each ``{'x': float32 (n, k), 'rho', 'z', 'y': int32 (n,)}``,
    plus ``'w'`` (the hidden weights) and ``'pool_ok'`` (False if the training pool was too small to
    keep ``n_train`` examples after subsampling; raise ``pool_factor`` then).
  """
  beta = cfg.beta if beta is None else beta
  sigma = cfg.sigma if sigma is None else sigma
  k_w, k_tr, k_te, k_un, k_sel, k_btr, k_bte, k_bun = jax.random.split(key, 8)
  w = jax.random.normal(k_w, (cfg.num_features - 1,))

  if cfg.selection == "subsample":
    feats, rho, z = _draw(k_tr, w, cfg.n_train * cfg.pool_factor, cfg)
    # r is the population share P(z=1 | rho=1); the pool estimates it well.
    keep = bias.selection_keep_mask(k_sel, z, rho, sigma)
    idx, pool_ok = bias.first_kept(keep, cfg.n_train)
    feats, rho, z = feats[idx], rho[idx], z[idx]
  else:
    feats, rho, z = _draw(k_tr, w, cfg.n_train, cfg)
    reassign = bias.selection_paper_assign if cfg.selection == "paper" else bias.selection_reassign
    rho = reassign(k_sel, z, rho, sigma)
    pool_ok = jnp.asarray(True)
  train = _split(feats, rho, z, bias.label_bias(k_btr, z, rho, beta))

  out = {"w": w, "pool_ok": pool_ok, "train": train}
  for name, k_draw, k_bias, n in (("test", k_te, k_bte, cfg.n_test),
                                  ("unlabeled", k_un, k_bun, cfg.n_unlabeled)):
    feats, rho, z = _draw(k_draw, w, n, cfg)
    out[name] = _split(feats, rho, z, bias.label_bias(k_bias, z, rho, beta))
  return out
