"""Fair loss functions with the lipprune loss contract, and Kamiran & Calders reweighing.

  loss_fn(params, model_state, batch, key) -> (loss, {'model_state', 'metrics'})

The five models of Wick, Panda & Tristan (2019) are a choice of loss and of batch contents:

* baseline: `classification_loss` on the observed labels ``y``.
* oracle: `classification_loss(label_key='z')` on the clean labels.
* reweighing (Kamiran & Calders 2012): `classification_loss` with per-example ``'weight'`` from
  `reweighing_weights`.
* in-processing: `penalized_loss`: ``NLL + eta * penalty`` with the penalty computed on the labeled
  training set (passed as ``batch['penalty_x']``, ``batch['penalty_group']``...).
* semi-supervised: the same loss with the penalty computed on unlabeled data.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from lipprune.fairness import penalties
from lipprune.train.losses import weighted_mean

PENALTIES = ("dp", "eodds")


def reweighing_weights(y: jax.Array, group: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """Kamiran & Calders (2012) weights ``w(g, c) = P(group = g) P(y = c) / P(group = g, y = c)``.

  Probabilities are empirical frequencies over the rows with ``mask > 0`` (all rows by default);
  a cell with no example gets weight 0. Weighted this way, ``y`` and ``group`` are independent.
  """
  m = jnp.ones(y.shape, jnp.float32) if mask is None else jnp.asarray(mask, jnp.float32)
  n = jnp.maximum(jnp.sum(m), 1e-12)
  w = jnp.zeros(y.shape, jnp.float32)
  for g in (0, 1):
    for c in (0, 1):
      cell = (group == g) & (y == c)
      p_g = jnp.sum(m * (group == g)) / n
      p_c = jnp.sum(m * (y == c)) / n
      p_gc = jnp.sum(m * cell) / n
      w = jnp.where(cell, jnp.where(p_gc > 0, p_g * p_c / jnp.maximum(p_gc, 1e-12), 0.0), w)
  return w * m


def _nll(model, params, model_state, batch, key, label_key):
  logits, new_state = model.apply(params, model_state, batch["x"], train=True, key=key)
  labels = batch[label_key]
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  nll = weighted_mean(ce, batch.get("weight"))
  acc = weighted_mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32), batch.get("weight"))
  return nll, acc, new_state


def classification_loss(model, label_key: str = "y"):
  """Weighted negative log-likelihood of ``batch[label_key]`` (``'y'`` baseline, ``'z'`` oracle)."""

  def loss_fn(params, model_state, batch, key):
    nll, acc, new_state = _nll(model, params, model_state, batch, key, label_key)
    return nll, {"model_state": new_state, "metrics": {"nll": nll, "accuracy": acc}}

  return loss_fn


def penalized_loss(model, eta, penalty: str = "dp", label_key: str = "y"):
  """``NLL(batch) + eta * penalty(p on batch['penalty_x'], batch['penalty_group'])``.

  ``p = softmax(logits)[:, 1]``. ``penalty='dp'`` is the paper's demographic-parity penalty
  (label-free; works on unlabeled data); ``'eodds'`` is the equalized-odds-style penalty and also
  reads ``batch['penalty_y']``. ``batch['penalty_weight']`` (optional) weights the penalty rows.
  ``eta`` may be a traced scalar.
  """
  if penalty not in PENALTIES:
    raise ValueError(f"penalty={penalty!r}; expected one of {list(PENALTIES)}")

  def loss_fn(params, model_state, batch, key):
    nll, acc, new_state = _nll(model, params, model_state, batch, key, label_key)
    logits_p, _ = model.apply(params, model_state, batch["penalty_x"], train=False)
    p = jax.nn.softmax(logits_p, -1)[:, 1]
    w = batch.get("penalty_weight")
    if penalty == "dp":
      pen = penalties.demographic_parity_penalty(p, batch["penalty_group"], w)
    else:
      pen = penalties.equalized_odds_penalty(p, batch["penalty_y"], batch["penalty_group"], w)
    loss = nll + eta * pen
    return loss, {"model_state": new_state, "metrics": {"nll": nll, "penalty": pen, "accuracy": acc}}

  return loss_fn
