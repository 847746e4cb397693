"""Retraining after pruning, as pure transforms of `lipprune.train.TrainState`.

Definitions of Renda, Frankle & Carbin, "Comparing Rewinding and Fine-tuning in Neural Network
Pruning", ICLR 2020 (Sec. 2), with ``T`` the original training length and ``t`` the retraining
length, both in steps. Each transform returns ``(state, schedule, num_steps)``: the state to start
retraining from (params already masked, ``masks`` set), the learning rate as a function of
``state.step``, and how many steps to train.

* ``fine_tune``: final weights ``W_T``, train ``t`` steps at the constant rate ``lr(T - 1)``, the
  last rate of the original schedule (0.001 for the CIFAR ResNet recipe).
* ``weight_rewind``: surviving weights, optimizer state, batch-norm statistics and the step counter
  restored from the snapshot at ``T - t``; the original schedule replays ``t`` steps to ``T``.
  Rewinding to step 0 or a small ``k`` is the Lottery Ticket case (Frankle et al. 2019/2020).
* ``lr_rewind``: final weights ``W_T``, only the step counter set back to ``T - t`` so that the
  original schedule replays ``t`` steps; the optimizer state is kept (default) or reset.
* ``reinit``: surviving weights re-drawn from the initial distribution (fresh params), step 0, fresh
  optimizer state, full schedule ``T``: the random reinitialization control.
"""
from __future__ import annotations

from typing import Callable

import optax

from lipprune.train.masking import apply_masks
from lipprune.train.state import TrainState

METHODS = ("fine_tune", "weight_rewind", "lr_rewind", "reinit")


def _masked(state: TrainState, masks) -> TrainState:
  return state.replace(params=apply_masks(state.params, masks), masks=masks)


def fine_tune(final: TrainState, masks, schedule: Callable, total_steps: int, retrain_steps: int):
  """``W_T`` masked, constant rate ``schedule(T - 1)`` for ``t`` steps."""
  final_lr = schedule(max(total_steps - 1, 0))
  return _masked(final, masks), (lambda step: final_lr + 0.0 * step), retrain_steps


def weight_rewind(snapshot: TrainState, masks, schedule: Callable, retrain_steps: int):
  """The snapshot at ``T - t`` (weights, optimizer state, BN statistics, step), masked."""
  return _masked(snapshot, masks), schedule, retrain_steps


def lr_rewind(final: TrainState, masks, schedule: Callable, total_steps: int, retrain_steps: int,
              *, reset_opt_state: bool = False, tx: optax.GradientTransformation | None = None):
  """``W_T`` masked with ``step := T - t``; optimizer state kept unless ``reset_opt_state``."""
  state = _masked(final, masks).replace(step=final.step * 0 + (total_steps - retrain_steps))
  if reset_opt_state:
    if tx is None:
      raise ValueError("reset_opt_state needs tx")
    state = state.replace(opt_state=tx.init(state.params))
  return state, schedule, retrain_steps


def reinit(fresh: TrainState, masks, schedule: Callable, total_steps: int):
  """A freshly initialized state (new key) with the pruned structure, trained for ``T`` steps."""
  return _masked(fresh, masks), schedule, total_steps
