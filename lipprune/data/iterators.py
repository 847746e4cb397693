"""Deterministic, resumable batching.

The order of examples is a pure function of (key, epoch): batch ``i`` of the run is always the same
examples, so a run resumed at step ``s`` sees exactly the batches an uninterrupted run would.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
  """Full batches per epoch (the remainder of each epoch is dropped, reshuffled next epoch)."""
  if batch_size <= 0:
    raise ValueError(f"batch_size must be positive, got {batch_size}")
  if batch_size > num_examples:
    raise ValueError(f"batch_size={batch_size} exceeds the {num_examples} training examples")
  return num_examples // batch_size


def epoch_permutation(key: jax.Array, epoch: int, num_examples: int) -> np.ndarray:
  """The shuffled order of epoch ``epoch``: a permutation drawn from ``fold_in(key, epoch)``."""
  return np.asarray(jax.random.permutation(jax.random.fold_in(key, epoch), num_examples))


@functools.partial(jax.jit, static_argnums=(2, 3))
def _epoch_permutations(key: jax.Array, first_epoch, num_epochs: int,
                        num_examples: int) -> jax.Array:
  """``epoch_permutation(key, first_epoch + j, num_examples)`` for ``j < num_epochs``, in one
  program: the same integers (a permutation is integer arithmetic and sorts), one dispatch."""
  epochs = first_epoch + jnp.arange(num_epochs)
  return jax.vmap(lambda e: jax.random.permutation(jax.random.fold_in(key, e), num_examples))(
      epochs)


class BatchSampler:
  """Index batches for step ``s`` of a run: ``sampler.indices(s)`` -> int array (batch_size,).

  Computes the permutations of a block of consecutive epochs at a time (one device call for up to
  16 epochs, fewer for large datasets) and keeps the current block, so sequential access costs one
  call per block.
  """

  def __init__(self, key: jax.Array, num_examples: int, batch_size: int):
    self.key = key
    self.num_examples = num_examples
    self.batch_size = batch_size
    self.steps_per_epoch = steps_per_epoch(num_examples, batch_size)
    self.epochs_per_block = max(1, min(16, (1 << 22) // max(num_examples, 1)))
    self._block = -1
    self._perms = None

  def indices(self, step: int) -> np.ndarray:
    epoch, i = divmod(int(step), self.steps_per_epoch)
    block, j = divmod(epoch, self.epochs_per_block)
    if block != self._block:
      self._perms = np.asarray(_epoch_permutations(
          self.key, np.int32(block * self.epochs_per_block), self.epochs_per_block,
          self.num_examples))
      self._block = block
    return self._perms[j, i * self.batch_size:(i + 1) * self.batch_size]

  def batch(self, arrays: dict[str, np.ndarray], step: int) -> dict[str, np.ndarray]:
    idx = self.indices(step)
    return {k: v[idx] for k, v in arrays.items()}


def eval_batches(arrays: dict[str, np.ndarray], batch_size: int):
  """Yields (batch, num_valid) covering every example once, the last batch zero-padded to
  ``batch_size`` so that a jitted eval step compiles once; ``num_valid`` says how many rows count."""
  n = len(next(iter(arrays.values())))
  for start in range(0, n, batch_size):
    stop = min(start + batch_size, n)
    batch = {}
    for k, v in arrays.items():
      chunk = v[start:stop]
      if stop - start < batch_size:
        pad = np.zeros((batch_size - (stop - start),) + chunk.shape[1:], chunk.dtype)
        chunk = np.concatenate([chunk, pad])
      batch[k] = chunk
    yield batch, stop - start
