"""Pruning schedules: how much to prune in each round of one-shot or iterative pruning."""
from __future__ import annotations

import math


def target_density(fraction: float, rounds: int) -> float:
  """Density after ``rounds`` rounds that each prune ``fraction`` of the survivors:
  ``(1 - fraction) ** rounds`` (0.8^k for the paper's 20% rounds)."""
  return (1.0 - fraction) ** rounds


def round_fractions(mode: str, *, fraction: float = 0.2, rounds: int | None = None,
                    target_sparsity: float | None = None) -> list[float]:
  """Per-round fractions of survivors to prune.

  * ``one_shot``: a single round pruning ``target_sparsity`` of the weights (or ``fraction``).
  * ``iterative``: ``fraction`` per round, for ``rounds`` rounds or, when ``rounds`` is None, the
    fewest rounds ``n`` with ``1 - (1 - fraction)^n >= target_sparsity``.
  """
  if mode == "one_shot":
    return [float(target_sparsity if target_sparsity is not None else fraction)]
  if mode != "iterative":
    raise ValueError(f"unknown pruning mode {mode!r}; expected one of ['one_shot', 'iterative']")
  if rounds is None:
    if target_sparsity is None:
      raise ValueError("iterative pruning needs rounds or target_sparsity")
    rounds = math.ceil(math.log(1.0 - target_sparsity) / math.log(1.0 - fraction) - 1e-9)
  return [float(fraction)] * int(rounds)
