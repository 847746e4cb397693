"""Pure train and eval steps, compiled once with jit."""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from lipprune.train.masking import apply_masks, masked_norm, select_masks
from lipprune.train.state import TrainState


def make_train_step(loss_fn: Callable, tx: optax.GradientTransformation, schedule: Callable,
                    preprocess: Callable | None = None, *, fuse_masks: bool = True) -> Callable:
  """Builds ``train_step(state, batch, key) -> (state, metrics)`` (not yet jitted).

  Args:
    loss_fn: ``(params, model_state, batch, key) -> (loss, aux)``; see lipprune.train.losses.
    tx: a learning-rate-free update direction (lipprune.train.optimizers.direction).
    schedule: learning rate as a function of ``state.step``.
    preprocess: optional ``(batch, key) -> batch`` run on device first (e.g. augmentation).
    fuse_masks: how a masked step masks the gradient. ``True`` (default since lipprune 0.2): with a
      select, ``where(m != 0, g, 0 * g)``, and the ``grad_norm`` metric as `masked_norm`, with the
      mask inside its reduction; ``False``: lipprune 0.1's ``g * m``, and the norm of that product.
      The masked gradients are the same bit for bit (`select_masks`), but XLA compiles the two
      differently: the select's ``m != 0`` is loop-invariant, so inside a chunk of steps
      (lipprune.train.chunks) it is computed once and every step reads a 1-byte mask; the select
      fuses into the optimizer update and the norm into its reduction, so no masked copy of a
      gradient is written, which with the product XLA:CPU does from the float32 mask. Masked over
      dense, in the loop's compiled chunk on a 2-core CPU (bench/README.md): LeNet-300-100 +1-2%
      with the select, +8% with the product; ResNet-20 within 1% against +3-5%. The different
      fusions change which products XLA contracts into fused multiply-adds, so a masked run's
      floats differ between the two in the last bits; ``False`` reproduces results made with
      lipprune 0.1 exactly (pruning configs: ``config.fuse_masks``). Dense states (``masks=None``)
      run the same program either way.

  Sparsity: with ``state.masks`` set, gradients, optimizer updates and parameters are all masked, so
  pruned weights stay exactly zero whatever the optimizer's momentum, weight decay or Adam moments.
  """
  def train_step(state: TrainState, batch, key):
    aug_key, loss_key = jax.random.split(key)
    if preprocess is not None:
      batch = preprocess(batch, aug_key)
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params, state.model_state, batch, loss_key)
    if fuse_masks and state.masks is not None:
      grad_norm = masked_norm(grads, state.masks)
      grads = select_masks(grads, state.masks)
    else:
      grads = apply_masks(grads, state.masks)
      grad_norm = optax.tree.norm(grads)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    lr = schedule(state.step)
    updates = apply_masks(jax.tree.map(lambda u: -lr * u, updates), state.masks)
    params = apply_masks(optax.apply_updates(state.params, updates), state.masks)
    metrics = {"loss": loss, "lr": lr, "grad_norm": grad_norm, **aux.get("metrics", {})}
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
