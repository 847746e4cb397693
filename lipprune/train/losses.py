"""Loss functions with the signature every lipprune train step accepts.

  loss_fn(params, model_state, batch, key) -> (loss, aux)

``batch`` is a dict with at least ``'x'`` and ``'y'`` (optional ``'weight'``: per-example weights,
normalized by their sum). ``aux`` is ``{'model_state': new_model_state, 'metrics': {name: scalar}}``.
Robust and fair losses (lipprune.robust, lipprune.fairness) follow the same contract.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def weighted_mean(values: jax.Array, weight: jax.Array | None) -> jax.Array:
  """Mean of ``values``, or ``sum(w * v) / sum(w)`` when per-example weights are given."""
  if weight is None:
    return jnp.mean(values)
  weight = weight.astype(values.dtype)
  return jnp.sum(weight * values) / jnp.maximum(jnp.sum(weight), 1e-12)


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  return jnp.mean(jnp.argmax(logits, -1) == labels)


def cross_entropy(model, label_smoothing: float = 0.0):
  """Natural training: mean softmax cross-entropy of ``model`` on the batch."""

  def loss_fn(params, model_state, batch, key):
    logits, new_state = model.apply(params, model_state, batch["x"], train=True, key=key)
    num_classes = logits.shape[-1]
    targets = optax.smooth_labels(jax.nn.one_hot(batch["y"], num_classes), label_smoothing)
    ce = optax.softmax_cross_entropy(logits, targets)
    loss = weighted_mean(ce, batch.get("weight"))
    return loss, {"model_state": new_state,
                  "metrics": {"accuracy": accuracy(logits, batch["y"]), "ce": loss}}

  return loss_fn
