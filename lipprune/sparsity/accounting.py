"""What a pruned network really contains: alive weights and parameters, per layer and in total, and
which layers have collapsed.

Counting mask entries understates structured pruning: when filter ``j`` of a producer layer is
removed (its kernel slice, bias and batch norm are masked, see `lipprune.sparsity.shrink`), the
channel outputs exactly zero, so the consumer's input slice that reads it is dead too although its
mask entries are 1. Here those slices count as removed, so that

* ``alive`` (weights) equals the kernel sizes of the physically shrunk network, and
* ``params_alive`` equals its parameter count (every parameter leaf: kernels, biases, batch-norm
  scales and offsets; running statistics are state, not parameters),

to the parameter. A channel is removed only when its output is exactly zero: the producer's filter
has no surviving weight *and* its bias and batch norm (where present) are masked there. After
unstructured pruning (no companion masks) nothing propagates and the counts are the mask entries.

Denominators follow Renda et al.'s code (lottery-ticket/rewinding-iclr20-public,
lottery/lottery/lottery.py, ``density_ratio``): every prunable layer counts, including layers kept
dense (``spare``), which count as fully alive. ``compression = size / alive`` over prunable weights
is the paper's x-axis; ``param_compression = params / params_alive`` is the size ratio of the
dense and the shrunk network.
"""
from __future__ import annotations

import numpy as np

from lipprune.sparsity.masks import (Path, Predicate, default_prunable, flatten, path_str,
                                     prunable_leaves, unflatten)


def _mask_at(flat_masks, path, shape) -> np.ndarray:
  m = flat_masks.get(path)
  return np.ones(shape, np.float32) if m is None else np.asarray(m, np.float32)


def removed_channels(params, masks, plan) -> dict[tuple[str, ...], np.ndarray]:
  """Per producer of ``plan`` (`lipprune.sparsity.shrink.channel_plan`): a bool array over its
  output channels, True where the channel outputs exactly zero (filter, bias and batch norm all
  masked there)."""
  flat_p, flat_m = flatten(params), flatten(masks)
  out = {}
  for p in plan:
    kernel = p.layer + ("kernel",)
    if flat_m.get(kernel) is None:
      out[p.layer] = np.zeros(np.shape(flat_p[kernel])[-1], bool)
      continue
    m = np.asarray(flat_m[kernel])
    dead = np.max(m.reshape(-1, m.shape[-1]), axis=0) <= 0
    companions = [p.layer + ("bias",)]
    if p.norm is not None:
      companions += [p.norm + ("scale",), p.norm + ("bias",)]
    for c in companions:
      if c in flat_p:
        cm = flat_m.get(c)
        dead &= np.zeros(dead.shape, bool) if cm is None else (np.asarray(cm) <= 0)
    out[p.layer] = dead
  return out


def effective_kernel_masks(params, masks, plan=None,
                           prunable: Predicate = default_prunable) -> dict[Path, np.ndarray]:
  """0/1 masks of every kernel that ``prunable`` accepts (all ones where the mask is ``None``),
  with the consumer input slices of removed channels (`removed_channels`) zeroed."""
  flat_p, flat_m = flatten(params), flatten(masks)
  out = {p: _mask_at(flat_m, p, np.shape(v)) for p, v in flat_p.items() if prunable(p, v)}
  for prod, dead in (removed_channels(params, masks, plan) if plan else {}).items():
    producer = next(q for q in plan if q.layer == prod)
    if producer.consumer is None or not dead.any():
      continue
    key = producer.consumer + ("kernel",)
    m = out[key].copy()
    if m.ndim == 4:
      m[:, :, dead, :] = 0
    elif producer.flatten:  # NHWC flatten: input row r reads channel r % C
      m[dead[np.arange(m.shape[0]) % dead.size]] = 0
    else:
      m[dead] = 0
    out[key] = m
  return out


def count(params, masks, plan=None, prunable: Predicate = default_prunable) -> dict:
  """Alive weights and parameters of a masked network.

  Args:
    params: the network's params (arrays or shape structs: only shapes are read).
    masks: its masks (``None`` leaves are dense; rank-1 leaves are channel companions).
    plan: the model's channel plan, to count removed channels' input slices as removed.
    prunable: which kernels count as prunable weights.

  Returns:
    ``{'layers': {path: {'size', 'alive', 'density', 'outputs'}}, 'size', 'alive', 'density',
    'sparsity', 'compression', 'params', 'params_alive', 'param_compression'}``; ``outputs`` is the
    layer's number of output units (the kernel's last axis).
  """
  kernels = effective_kernel_masks(params, masks, plan, prunable)
  layers = {}
  for p, m in kernels.items():
    alive = int(np.sum(m > 0))
    layers[path_str(p)] = {"size": int(m.size), "alive": alive, "density": alive / max(m.size, 1),
                           "outputs": int(m.shape[-1])}
  size = sum(v["size"] for v in layers.values())
  alive = sum(v["alive"] for v in layers.values())
  flat_m = flatten(masks)
  n_params = n_alive = 0
  for p, v in flatten(params).items():
    n = int(np.prod(np.shape(v)))
    n_params += n
    if p in kernels:
      n_alive += int(np.sum(kernels[p] > 0))
    elif flat_m.get(p) is not None:
      n_alive += int(np.sum(np.asarray(flat_m[p]) > 0))
    else:
      n_alive += n
  density = alive / max(size, 1)
  return {"layers": layers, "size": size, "alive": alive, "density": density,
          "sparsity": 1.0 - density, "compression": size / max(alive, 1), "params": n_params,
          "params_alive": n_alive, "param_compression": n_params / max(n_alive, 1)}


def sparsity_stats(masks) -> dict:
  """`count` from the masks alone: the masked kernels' entries (layers kept dense and the parameters
  outside kernels are unknown without the params, so ``params`` counts masked kernels only)."""
  return count(unflatten(prunable_leaves(masks)), masks)


# The default collapse thresholds: a layer keeps fewer than 1% of its weights, or fewer weights than
# it has output units (then some units certainly have no input left).
COLLAPSE_DENSITY = 0.01
COLLAPSE_PER_OUTPUT = 1.0


def collapsed_layers(stats: dict, *, min_density: float = COLLAPSE_DENSITY,
                     min_per_output: float = COLLAPSE_PER_OUTPUT) -> list[str]:
  """The layers of ``count(...)['layers']`` that collapsed: ``alive < min_density * size`` or
  ``alive < min_per_output * outputs``. Global scores can empty a layer whose weights are small by
  initialization (a layer with no weight left disconnects the network); a pruning run reports
  these layers and warns."""
  return [name for name, v in stats["layers"].items()
          if v["alive"] < min_density * v["size"] or v["alive"] < min_per_output * v["outputs"]]


__all__ = ["COLLAPSE_DENSITY", "COLLAPSE_PER_OUTPUT", "collapsed_layers", "count",
           "effective_kernel_masks", "removed_channels", "sparsity_stats"]
