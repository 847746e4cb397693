"""Data parallelism over a `jax.sharding.Mesh`: the batch sharded on its leading axis, the state
replicated. The same code runs on one CPU, 8 simulated CPU devices, a GPU box or a TPU pod."""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh named ``'data'`` over ``devices`` (default: every global device)."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def check_batch_size(batch_size: int, mesh: Mesh, what: str = "batch_size") -> None:
  n = mesh.devices.size
  if batch_size % n:
    raise ValueError(f"{what}={batch_size} must be divisible by the number of devices ({n})")


def shard_batch(batch, mesh: Mesh, process_local: bool = False):
  """Places a host batch on the mesh, split on axis 0.

  ``process_local=False``: ``batch`` is the global batch, identical on every process; each process
  contributes the rows that its addressable devices own. ``process_local=True``: ``batch`` holds only
  this process's rows (a streaming source reads just its shard); the global batch is their
  concatenation in process order.
  """
  sharding = batch_sharding(mesh)
  if process_local:
    return jax.tree.map(lambda a: jax.make_array_from_process_local_data(sharding, a), batch)
  if jax.process_count() == 1:
    return jax.device_put(batch, sharding)
  return jax.tree.map(
      lambda a: jax.make_array_from_callback(a.shape, sharding, lambda idx: a[idx]), batch)


def replicate(tree, mesh: Mesh):
  """Places a pytree, replicated, on every device of the mesh."""
  sharding = replicated(mesh)
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)
  return jax.tree.map(
      lambda a: jax.make_array_from_callback(np.shape(a), sharding, lambda idx: np.asarray(a)[idx]),
      tree)
