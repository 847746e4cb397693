"""Pruning schedules: how much to prune in each round of one-shot or iterative pruning."""
from __future__ import annotations

import math

from lipprune.sparsity.masks import check_fraction


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

  Fractions and the target sparsity lie in ``[0, 1)``; ``one_shot`` takes no ``rounds`` (or 1);
  ``iterative`` takes ``rounds`` or ``target_sparsity``, not both (each fixes the number of
  rounds). Errors name the argument.
  """
  if mode not in ("one_shot", "iterative"):
    raise ValueError(f"unknown pruning mode {mode!r}; expected one of ['one_shot', 'iterative']")
  check_fraction(fraction, "fraction")
  if target_sparsity is not None:
    check_fraction(target_sparsity, "target_sparsity")
  if mode == "one_shot":
    if rounds not in (None, 1):
      raise ValueError(f"rounds={rounds!r} with mode='one_shot', which prunes once")
    return [float(target_sparsity if target_sparsity is not None else fraction)]
  if rounds is not None and target_sparsity is not None:
    raise ValueError(f"rounds={rounds!r} and target_sparsity={target_sparsity!r} both fix the "
                     "number of iterative rounds; give one of them")
  if rounds is None:
    if target_sparsity is None:
      raise ValueError("iterative pruning needs rounds or target_sparsity")
    if target_sparsity == 0:
      return []
    if fraction == 0:
      raise ValueError(f"fraction=0 never reaches target_sparsity={target_sparsity}")
    rounds = math.ceil(math.log(1.0 - target_sparsity) / math.log(1.0 - fraction) - 1e-9)
  if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
    raise ValueError(f"rounds={rounds!r} must be an int >= 1")
  return [float(fraction)] * rounds
