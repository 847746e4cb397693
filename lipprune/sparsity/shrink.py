"""Physically shrinking structured-pruned networks (Li et al., "Pruning Filters for Efficient
ConvNets", ICLR 2017): removed filters disappear from the kernel, from the layer's bias and batch
norm, and the matching input channels disappear from the next layer.

A *channel plan* lists, for each prunable producer layer, the companions of its output channels
(bias, the batch norm that follows it) and the consumer that reads them:

* sequential models of the zoo (``mlp``, ``conv2/4/6``, ``vgg16``): ``conv_0 .. conv_K``,
  ``dense_0 .. dense_L``, ``head`` in that order, each layer but the last feeding the next; ``bn_i``
  is the batch norm of ``conv_i`` and ``bn_dense`` that of ``dense_0`` (VGG-16).
  A dense layer after a conv reads the NHWC-flattened map, where input unit ``p * C + c`` is channel
  ``c`` at position ``p``, so removing channel ``c`` removes every row ``p * C + c``.
* CIFAR ResNets: ``block_i/conv_0`` (with ``block_i/bn_0``) feeds ``block_i/conv_1``; block outputs
  are not pruned (Li et al. prune the first layer of each block), so shortcuts keep their shapes.

``channel_masks`` extends kernel masks to the companions, so the masked network's removed channels
output exactly zero and the shrunk network computes the same function.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from lipprune import models
from lipprune.sparsity import masks as masks_lib

SEQUENTIAL = ("mlp", "conv2", "conv4", "conv6", "vgg16")
RESNETS = ("resnet20", "resnet56", "resnet110")


@dataclasses.dataclass(frozen=True)
class Producer:
  """Layer ``layer`` (a path prefix) whose output channels can be removed."""
  layer: tuple[str, ...]
  norm: tuple[str, ...] | None  # the batch norm applied to its output, if any
  consumer: tuple[str, ...] | None  # the layer that reads its output
  flatten: bool = False  # the consumer is a dense layer reading a flattened conv map


def _is_kernel_layer(sub) -> bool:
  return isinstance(sub, dict) and "kernel" in sub


def _is_norm(sub) -> bool:
  return isinstance(sub, dict) and "scale" in sub and "kernel" not in sub


def _layer_order(name: str):
  """Data-flow order of the zoo's sequential layer names: conv_i, then dense_i, then head."""
  kind, _, index = name.rpartition("_")
  rank = {"conv": 0, "dense": 1}.get(kind, 2 if name == "head" else 3)
  return (rank, int(index) if index.isdigit() else 0, name)


def _norm_of(layer: str, params) -> str | None:
  """The batch norm after ``layer``: ``bn_i`` after ``conv_i``, ``bn_dense`` after ``dense_0``
  (VGG-16's classifier), if present."""
  kind, _, index = layer.rpartition("_")
  name = {"conv": f"bn_{index}", "dense": "bn_dense" if index == "0" else f"bn_dense_{index}"}.get(kind)
  return name if name in params and _is_norm(params[name]) else None


def channel_plan(model_name: str, params) -> list[Producer]:
  """The producers of ``params``, found by the zoo's layer names (any dict order)."""
  if model_name in RESNETS:
    blocks = sorted((n for n in params if n.startswith("block_")), key=lambda n: int(n[6:]))
    return [Producer((n, "conv_0"), (n, "bn_0"), (n, "conv_1")) for n in blocks]
  if model_name not in SEQUENTIAL:
    raise ValueError(f"no channel plan for model {model_name!r}; expected one of "
                     f"{list(SEQUENTIAL + RESNETS)}")
  layers = sorted((n for n in params if _is_kernel_layer(params[n])), key=_layer_order)
  out = []
  for a, b in zip(layers[:-1], layers[1:]):
    norm = _norm_of(a, params)
    flat = params[a]["kernel"].ndim == 4 and params[b]["kernel"].ndim == 2
    out.append(Producer((a,), (norm,) if norm else None, (b,), flat))
  return out


def _get(tree, path):
  for p in path:
    tree = tree[p]
  return tree


def kept_channels(params, masks, plan: list[Producer]) -> dict[tuple[str, ...], np.ndarray]:
  """Indices of each producer's output filters with any surviving weight (all for unmasked)."""
  out = {}
  for p in plan:
    m = _get(masks, p.layer)["kernel"]
    if m is None:
      out[p.layer] = np.arange(np.shape(_get(params, p.layer)["kernel"])[-1])
    else:
      m = np.asarray(m)
      out[p.layer] = np.nonzero(m.reshape(-1, m.shape[-1]).max(0) > 0)[0]
  return out


def channel_masks(params, masks, plan: list[Producer]):
  """``masks`` plus 0/1 masks on each producer's bias and batch-norm scale/offset that zero the
  channels whose filters are removed (leaves of rank 1; pruners never score them)."""
  flat = masks_lib.flatten(masks)
  flat_p = masks_lib.flatten(params)
  for p in plan:
    m = _get(masks, p.layer)["kernel"]
    if m is None:
      continue
    m = np.asarray(m)
    alive = jnp.asarray((m.reshape(-1, m.shape[-1]).max(0) > 0).astype(np.float32))
    for leaf in ("bias",):
      if p.layer + (leaf,) in flat_p:
        flat[p.layer + (leaf,)] = alive
    if p.norm is not None:
      for leaf in ("scale", "bias"):
        if p.norm + (leaf,) in flat_p:
          flat[p.norm + (leaf,)] = alive
  return masks_lib.unflatten(flat)


def _width_kwargs(model_name: str, plan, keep, kwargs) -> dict:
  widths = {p.layer: len(keep[p.layer]) for p in plan}
  kw = dict(kwargs)
  if model_name in RESNETS:
    kw["inner_widths"] = tuple(widths[p.layer] for p in plan)
  elif model_name == "mlp":
    kw["hidden"] = tuple(widths[p.layer] for p in plan)
  elif model_name == "vgg16":
    convs = [p for p in plan if p.layer[0].startswith("conv_")]
    kw["widths"] = tuple(widths[p.layer] for p in convs)
    if ("dense_0",) in widths:  # classifier_width=0: no hidden classifier layer
      kw["classifier_width"] = widths[("dense_0",)]
  else:  # conv2/4/6
    kw["widths"] = tuple(widths[p.layer] for p in plan if p.layer[0].startswith("conv_"))
    kw["hidden"] = tuple(widths[p.layer] for p in plan if p.layer[0].startswith("dense_"))
  return kw


def _slice(tree, path, fn):
  """Returns a copy of nested dict ``tree`` with the leaf at ``path`` replaced by ``fn(leaf)``."""
  if len(path) == 1:
    return {**tree, path[0]: fn(tree[path[0]])}
  return {**tree, path[0]: _slice(tree[path[0]], path[1:], fn)}


def shrink(model_name: str, num_classes: int, params, model_state, masks, sample_x,
           model_kwargs: dict | None = None):
  """Rebuilds a structured-pruned network without its removed filters.

  Args:
    model_name: a zoo model with width overrides (``SEQUENTIAL + RESNETS``).
    params, model_state: the pruned network (pruned weights zero).
    masks: its masks; a producer's filter is kept when any of its mask entries is 1.
    sample_x: an input batch (for initializing the template of the small model).
    model_kwargs: the kwargs the model was created with.

  Returns:
    ``(model, params, model_state, kwargs)`` of the smaller network; ``models.create(model_name,
    num_classes, **kwargs)`` rebuilds it.
  """
  model_kwargs = dict(model_kwargs or {})
  big = models.create(model_name, num_classes, **model_kwargs)
  fresh, _ = jax.eval_shape(lambda k: big.init(k, sample_x), jax.random.key(0))
  plan = channel_plan(model_name, fresh)
  keep = kept_channels(params, masks, plan)
  c_old = {p.layer: np.shape(_get(params, p.layer)["kernel"])[-1] for p in plan}
  kwargs = _width_kwargs(model_name, plan, keep, model_kwargs)
  params = jax.tree.map(np.asarray, params)
  model_state = jax.tree.map(np.asarray, model_state)
  for p in plan:
    idx = keep[p.layer]
    params = _slice(params, p.layer + ("kernel",), lambda k: k[..., idx])
    if "bias" in _get(params, p.layer):
      params = _slice(params, p.layer + ("bias",), lambda b: b[idx])
    if p.norm is not None:
      for leaf in ("scale", "bias"):
        params = _slice(params, p.norm + (leaf,), lambda v: v[idx])
      for coll in model_state:
        if p.norm[0] in model_state[coll]:
          for leaf in list(_get(model_state[coll], p.norm)):
            model_state = {**model_state,
                           coll: _slice(model_state[coll], p.norm + (leaf,), lambda v: v[idx])}
    if p.consumer is not None:
      if p.flatten:
        def take_rows(k, idx=idx, c=c_old[p.layer]):
          rows = np.nonzero(np.isin(np.arange(k.shape[0]) % c, idx))[0]
          return k[rows]
        params = _slice(params, p.consumer + ("kernel",), take_rows)
      elif np.ndim(_get(params, p.consumer)["kernel"]) == 4:
        params = _slice(params, p.consumer + ("kernel",), lambda k: k[:, :, idx, :])
      else:
        params = _slice(params, p.consumer + ("kernel",), lambda k: k[idx])
  small = models.create(model_name, num_classes, **kwargs)
  want, want_state = jax.eval_shape(lambda k: small.init(k, sample_x), jax.random.key(0))
  got = jax.tree.map(np.shape, params)
  want = jax.tree.map(lambda s: s.shape, want)
  if want != got:
    bad = [k for k, v in masks_lib.flatten(got).items() if masks_lib.flatten(want).get(k) != v]
    raise ValueError(f"shrunk params do not match {model_name}({kwargs}) at {bad[:5]}")
  params = jax.tree.map(jnp.asarray, params)
  model_state = jax.tree.map(jnp.asarray, model_state)
  return small, params, model_state, kwargs
