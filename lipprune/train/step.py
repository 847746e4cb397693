"""Pure train and eval steps, compiled once with jit."""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from lipprune.train.masking import apply_masks, select_masks
from lipprune.train.state import TrainState


def make_train_step(loss_fn: Callable, tx: optax.GradientTransformation, schedule: Callable,
                    preprocess: Callable | None = None, *, fuse_masks: bool = False) -> Callable:
  """Builds ``train_step(state, batch, key) -> (state, metrics)`` (not yet jitted).

  Args:
    loss_fn: ``(params, model_state, batch, key) -> (loss, aux)``; see lipprune.train.losses.
    tx: a learning-rate-free update direction (lipprune.train.optimizers.direction).
    schedule: learning rate as a function of ``state.step``.
    preprocess: optional ``(batch, key) -> batch`` run on device first (e.g. augmentation).
    fuse_masks: mask the gradient with a select (``where(m != 0, g, 0 * g)``, the same values as
      ``g * m``) that XLA fuses into the optimizer update and the gradient norm, instead of a
      product it writes out as a masked copy of every gradient: the masked step then costs about
      what the dense one does (bench/bench_step_costs.py). Off by default because on XLA:CPU the
      different fusion changes which products are contracted into fused multiply-adds, so the
      floats differ from the default in the last bits (pruned weights stay exactly zero).

  Sparsity: with ``state.masks`` set, gradients, optimizer updates and parameters are all masked, so
  pruned weights stay exactly zero whatever the optimizer's momentum, weight decay or Adam moments.
  """
  mask_grads = select_masks if fuse_masks else apply_masks

  def train_step(state: TrainState, batch, key):
    aug_key, loss_key = jax.random.split(key)
    if preprocess is not None:
      batch = preprocess(batch, aug_key)
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params, state.model_state, batch, loss_key)
    grads = mask_grads(grads, state.masks)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    lr = schedule(state.step)
    updates = apply_masks(jax.tree.map(lambda u: -lr * u, updates), state.masks)
    params = apply_masks(optax.apply_updates(state.params, updates), state.masks)
    metrics = {"loss": loss, "lr": lr, "grad_norm": optax.tree.norm(grads), **aux.get("metrics", {})}
    new_state = state.replace(step=state.step + 1, params=params, model_state=aux["model_state"],
                              opt_state=opt_state)
    return new_state, metrics

  return train_step


def make_eval_step(model) -> Callable:
  """``eval_step(params, model_state, batch, num_valid) -> sums``: summed loss and correct counts
  over the first ``num_valid`` rows of a (padded) batch, so that totals add up across batches."""

  def eval_step(params, model_state, batch, num_valid):
    logits, _ = model.apply(params, model_state, batch["x"], train=False)
    valid = jnp.arange(logits.shape[0]) < num_valid
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"])
    correct = jnp.argmax(logits, -1) == batch["y"]
    return {"loss": jnp.sum(jnp.where(valid, ce, 0.0)),
            "correct": jnp.sum(jnp.where(valid, correct, 0)),
            "count": jnp.sum(valid)}

  return eval_step
