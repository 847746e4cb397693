"""Forward multiply-adds (FLOPs, as Li et al. 2017 and He et al. 2016 count them) of a dense, masked
or physically shrunk network, from the model's shapes.

A conv or dense layer with kernel ``K`` producing ``P`` output positions per example (``P = H' W'``
for a conv, 1 for a dense layer) costs ``P * |K|`` multiply-adds dense and ``P * alive(K)`` masked,
where ``alive`` counts the effective mask (`lipprune.sparsity.accounting.effective_kernel_masks`:
the input slices of removed channels are dead too), so the masked count of a structured-pruned
network equals the dense count of its shrunk version. Only conv and dense kernels cost: biases,
batch norm, activations, pooling and option-A shortcuts are not counted (the convention of the
published counts: VGG-16 on CIFAR-10 3.13e8, ResNet-56 1.25e8, ResNet-110 2.53e8, Li et al.,
Table 1). Zero padding is counted like any input (``P`` is the output size of the layer).
"""
from __future__ import annotations

import jax
import numpy as np

from lipprune.sparsity import accounting
from lipprune.sparsity.masks import Path, flatten, path_str


def output_positions(model, params, model_state, sample_x) -> dict[Path, int]:
  """Per kernel path of ``params`` (conv and dense layers): output positions per example, read from
  the layer outputs of one abstract forward pass (`jax.eval_shape`: nothing is computed).
  ``sample_x``: an input batch (array or shape struct); only its per-example shape is used."""

  def forward(p, s, x):
    _, inter = model.module.apply({"params": p, **s}, x, train=False, capture_intermediates=True,
                                  mutable=["intermediates"])
    return inter["intermediates"]

  one = jax.ShapeDtypeStruct((1,) + tuple(np.shape(sample_x)[1:]), np.float32)
  shapes = jax.eval_shape(forward, params, model_state, one)
  flat = flatten(shapes)
  out = {}
  for p, v in flatten(params).items():
    if p[-1] != "kernel" or np.ndim(v) not in (2, 4):
      continue
    key = p[:-1] + ("__call__",)
    if key not in flat:
      raise ValueError(f"no output recorded for layer {path_str(p[:-1])}")
    out[p] = int(np.prod(flat[key][0].shape[1:-1]))
  return out


def multiply_adds(positions: dict[Path, int], params, masks=None, plan=None) -> dict:
  """``{'layers': {path: {'dense', 'alive'}}, 'dense', 'alive', 'ratio'}``: per-example
  multiply-adds of every layer in ``positions``, dense and under ``masks`` (``None``: dense), with ``ratio =
  dense / alive`` (the theoretical speed-up)."""
  kernels = accounting.effective_kernel_masks(params, {} if masks is None else masks, plan,
                                              lambda p, v: p in positions)
  layers = {}
  for p, n in positions.items():
    m = kernels[p]
    layers[path_str(p)] = {"dense": n * int(m.size), "alive": n * int(np.sum(m > 0))}
  dense = sum(v["dense"] for v in layers.values())
  alive = sum(v["alive"] for v in layers.values())
  return {"layers": layers, "dense": dense, "alive": alive, "ratio": dense / max(alive, 1)}


__all__ = ["multiply_adds", "output_positions"]
