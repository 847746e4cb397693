"""The training state: one pytree that a checkpoint saves and a train step maps to the next."""
from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class TrainState:
  """Everything a train step reads and writes.

  Attributes:
    step: int32 scalar; the step the learning-rate schedule reads. Learning-rate rewinding sets it
      back (``state.replace(step=rewind_step)``) and keeps everything else.
    params: model parameters.
    model_state: non-parameter collections (e.g. ``{'batch_stats': ...}``), ``{}`` if none.
    opt_state: the optax state of the update direction (momentum, Adam moments).
    masks: ``None`` for a dense model, else a pytree with the params' structure whose leaves are
      float 0/1 arrays (prunable leaves) or ``None`` (leaves never pruned).
  """

  step: jax.Array
  params: Any
  model_state: Any
  opt_state: Any
  masks: Any = None

  @classmethod
  def create(cls, params, model_state, tx, masks=None) -> "TrainState":
    return cls(step=jnp.zeros((), jnp.int32), params=params, model_state=model_state,
               opt_state=tx.init(params), masks=masks)
