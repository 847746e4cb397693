"""Pruning masks: which weights are prunable, how they are scored and selected, and accounting.

A mask tree has the params' structure: a float32 0/1 array for every prunable leaf (0 = pruned) and
``None`` for leaves that are never pruned (biases, batch-norm scales and offsets by default).

Scoring and selection follow Renda, Frankle & Carbin, "Comparing Rewinding and Fine-tuning in Neural
Network Pruning", ICLR 2020 (and their code):

* **global magnitude**: one ranking of ``|w|`` across every prunable layer; the ``k`` surviving
  weights with the smallest score are pruned, ``k = round(fraction * n_alive)``. Optionally the
  score is normalized per layer, ``|w| / rms_l`` with ``rms_l = sqrt(mean_{alive in l} w^2)``.
* **layerwise magnitude**: the same within each layer, ``k_l = round(fraction_l * n_alive_l)``.
* **structured filter L1** (Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017): output
  filter ``j`` of a kernel scores ``s_j = sum_{h,w,c} |K[h, w, c, j]|``; per layer the
  ``round(fraction_l * alive_filters_l)`` surviving filters with the smallest ``s_j`` are removed.
* **random**: the same count drawn uniformly among the survivors, the control.

Pruning always acts on survivors: a pruned weight stays pruned, so ``n`` rounds at fraction ``p``
leave a density ``(1 - p)^n`` up to rounding.
"""
from __future__ import annotations

import re
from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

Path = tuple[str, ...]
Predicate = Callable[[Path, jax.Array], bool]
Rates = float | Mapping[str, float]


def path_str(path: Path) -> str:
  """``('block_0', 'conv_0', 'kernel') -> 'block_0/conv_0/kernel'``."""
  return "/".join(str(p) for p in path)


def flatten(tree) -> dict[Path, object]:
  """Leaves of a nested-dict tree by path, in insertion (= module creation) order; keeps ``None``."""
  return traverse_util.flatten_dict(tree)


def unflatten(flat: Mapping[Path, object]):
  return traverse_util.unflatten_dict(dict(flat))


def default_prunable(path: Path, leaf) -> bool:
  """The paper's default: every conv kernel (ndim 4, first conv and 1x1 shortcuts included) and
  every dense kernel (ndim 2, the output layer included); never biases or normalization params."""
  return path[-1] == "kernel" and np.ndim(leaf) in (2, 4)


def init_masks(params, *, prunable: Predicate = default_prunable, spare_first: bool = False,
               spare_last: bool = False, spare: tuple[str, ...] = ()):
  """All-ones masks on the prunable leaves of ``params``, ``None`` elsewhere.

  Args:
    params: the model's params (a nested dict, as flax returns it: layer order is creation order).
    prunable: ``(path, leaf) -> bool``.
    spare_first: keep the first prunable layer (in creation order) dense.
    spare_last: keep the last prunable layer (usually the output layer) dense.
    spare: regular expressions; prunable leaves whose path string matches one stay dense.
  """
  flat = flatten(params)
  keys = [p for p, v in flat.items() if prunable(p, v)]
  spared = set()
  if keys and spare_first:
    spared.add(keys[0])
  if keys and spare_last:
    spared.add(keys[-1])
  spared |= {p for p in keys if any(re.search(r, path_str(p)) for r in spare)}
  out = {}
  for p, v in flat.items():
    out[p] = jnp.ones(np.shape(v), jnp.float32) if (p in keys and p not in spared) else None
  return unflatten(out)


def prunable_leaves(masks) -> dict[Path, jax.Array]:
  """The non-``None`` mask leaves of rank >= 2 (kernels) by path. Rank-1 mask leaves are per-channel
  companions of structured pruning (bias, batch norm; `lipprune.sparsity.shrink.channel_masks`):
  they follow their kernel's filters and are never scored or counted."""
  return {p: m for p, m in flatten(masks).items() if m is not None and np.ndim(m) >= 2}


def resolve_rates(rates: Rates, paths) -> dict[Path, float]:
  """Per-layer fractions: a float for all, or ``{regex: fraction}`` where ``'default'`` (or the
  first matching regex, in the mapping's order) gives each path's fraction; unmatched paths get
  ``rates.get('default', 0.0)``."""
  if isinstance(rates, (int, float)):
    out = {p: float(rates) for p in paths}
  else:
    out = {}
    default = float(rates.get("default", 0.0))
    for p in paths:
      s = path_str(p)
      match = [float(v) for k, v in rates.items() if k != "default" and re.search(k, s)]
      out[p] = match[0] if match else default
  for p, f in out.items():
    check_fraction(f, f"fraction for {path_str(p)}")
  return out


def check_fraction(fraction, what: str = "fraction") -> None:
  """Raises ValueError naming ``what`` unless ``fraction`` is a number in ``[0, 1)``: the share of
  surviving weights a round prunes (1 would prune all of them, a negative one would count from the
  other end of the ranking)."""
  if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.integer, np.floating)):
    raise ValueError(f"pruning {what}={fraction!r} must be a number in [0, 1)")
  if not 0.0 <= fraction < 1.0:
    raise ValueError(f"pruning {what}={fraction!r} must lie in [0, 1)")


def _prune_smallest(scores, alive, k: int) -> np.ndarray:
  """New 0/1 mask: ``alive`` minus its ``k`` entries of smallest score (ties: lowest index).

  Runs on the host in numpy: masks change once per round, and numpy needs no compilation per shape.
  """
  alive = np.asarray(alive)
  flat_scores = np.where(alive.reshape(-1) > 0, np.asarray(scores, np.float64).reshape(-1), -np.inf)
  n_dead = int(alive.size - np.sum(alive > 0))
  if not 0 <= k <= alive.size - n_dead:
    raise ValueError(f"cannot prune k={k} of the {alive.size - n_dead} surviving entries")
  order = np.argsort(flat_scores, kind="stable")
  new = np.ones(alive.size, np.float32)
  new[order[:n_dead + k]] = 0.0
  return new.reshape(alive.shape)


def _rng(key: jax.Array) -> np.random.Generator:
  """A numpy generator seeded by a jax key (so random pruning stays a function of the key)."""
  data = np.asarray(jax.random.key_data(key)).reshape(-1)
  return np.random.default_rng([int(v) for v in data])


def _count(fraction: float, n_alive: int) -> int:
  return int(np.round(fraction * n_alive))


def global_magnitude(params, masks, fraction: float, *, normalize: str | None = None):
  """Prunes ``round(fraction * n_alive)`` of the surviving weights in one ranking over all layers.

  Args:
    normalize: ``None`` ranks ``|w|`` (the paper's choice); ``'rms'`` ranks ``|w| / rms_l`` where
      ``rms_l`` is the root mean square of the layer's surviving weights.
  """
  if normalize not in (None, "rms"):
    raise ValueError(f"normalize must be one of [None, 'rms'], got {normalize!r}")
  check_fraction(fraction)
  flat_p = flatten(params)
  leaves = prunable_leaves(masks)
  scores, alives, sizes = [], [], []
  for p, m in leaves.items():
    w, m = np.asarray(flat_p[p], np.float64), np.asarray(m)
    s = np.abs(w)
    if normalize == "rms":
      n = max(float(np.sum(m)), 1.0)
      s = s / max(float(np.sqrt(np.sum((w * m) ** 2) / n)), 1e-30)
    scores.append(s.reshape(-1))
    alives.append(m.reshape(-1))
    sizes.append(m.size)
  if not scores:
    return masks
  alive = np.concatenate(alives)
  k = _count(fraction, int(np.sum(alive > 0)))
  new = _prune_smallest(np.concatenate(scores), alive, k)
  out = flatten(masks)
  offsets = np.cumsum([0] + sizes)
  for i, p in enumerate(leaves):
    out[p] = jnp.asarray(new[offsets[i]:offsets[i + 1]].reshape(leaves[p].shape))
  return unflatten(out)


def layerwise_magnitude(params, masks, fraction: Rates):
  """Prunes ``round(fraction_l * n_alive_l)`` of the smallest surviving ``|w|`` in each layer.

  ``fraction`` may be per layer (see `resolve_rates`), e.g. the Lottery Ticket rates
  ``{'head': 0.1, 'default': 0.2}``.
  """
  flat_p = flatten(params)
  leaves = prunable_leaves(masks)
  rates = resolve_rates(fraction, leaves)
  out = flatten(masks)
  for p, m in leaves.items():
    k = _count(rates[p], int(np.sum(np.asarray(m) > 0)))
    out[p] = jnp.asarray(_prune_smallest(np.abs(np.asarray(flat_p[p])), m, k))
  return unflatten(out)


def random_prune(key: jax.Array, masks, fraction: Rates, *, layerwise: bool = False):
  """Random pruning, the control: ``round(fraction * n_alive)`` survivors chosen uniformly, in one
  pool across layers (default) or per layer (``layerwise``, ``fraction`` may be per layer)."""
  leaves = prunable_leaves(masks)
  rng = _rng(key)
  scores = {p: rng.random(m.shape) for p, m in leaves.items()}
  if not layerwise:
    if not isinstance(fraction, (int, float)):
      raise ValueError("per-layer fractions need layerwise=True")
    check_fraction(fraction)
    return global_magnitude(_fill(unflatten(scores), masks), masks, fraction)
  rates = resolve_rates(fraction, leaves)
  out = flatten(masks)
  for p, m in leaves.items():
    k = _count(rates[p], int(np.sum(np.asarray(m) > 0)))
    out[p] = jnp.asarray(_prune_smallest(scores[p], m, k))
  return unflatten(out)


def _fill(partial, masks):
  """``partial`` (leaves only at prunable paths) completed with zeros at the other paths."""
  flat = flatten(partial)
  return unflatten({p: flat.get(p, 0.0) for p in flatten(masks)})


def filter_scores(kernel) -> np.ndarray:
  """L1 norm of each output filter: the sum of ``|kernel|`` over every axis but the last."""
  kernel = np.asarray(kernel)
  return np.sum(np.abs(kernel), axis=tuple(range(kernel.ndim - 1)))


def filter_l1(params, masks, fraction: Rates):
  """Structured pruning (Li et al. 2017): per layer, removes ``round(fraction_l * alive_l)`` of the
  surviving output filters (last kernel axis) with the smallest L1 norm; a removed filter is zero
  in the whole mask slice ``[..., j]``. A filter is alive when any of its weights is."""
  flat_p = flatten(params)
  leaves = prunable_leaves(masks)
  rates = resolve_rates(fraction, leaves)
  out = flatten(masks)
  for p, m in leaves.items():
    m = np.asarray(m)
    alive_f = (np.max(m.reshape(-1, m.shape[-1]), axis=0) > 0).astype(np.float32)
    k = _count(rates[p], int(np.sum(alive_f)))
    if k == 0:
      continue
    keep = _prune_smallest(filter_scores(np.asarray(flat_p[p]) * m), alive_f, k)
    out[p] = jnp.asarray(m * keep)
  return unflatten(out)


def alive_filters(masks) -> dict[str, np.ndarray]:
  """Indices of the output filters with any surviving weight, per prunable layer path."""
  return {path_str(p): np.nonzero(np.asarray(m).reshape(-1, m.shape[-1]).max(0) > 0)[0]
          for p, m in prunable_leaves(masks).items()}


def sparsity_stats(masks) -> dict:
  """Per-layer and global accounting of a mask tree.

  Returns ``{'layers': {path: {'size', 'alive', 'density'}}, 'size', 'alive', 'density',
  'sparsity', 'compression'}`` where ``compression = size / alive``, the ratio of prunable weights
  before and after pruning (the paper's x-axis).
  """
  layers = {}
  size = alive = 0
  for p, m in prunable_leaves(masks).items():
    a, s = int(np.sum(np.asarray(m) > 0)), int(np.size(m))
    layers[path_str(p)] = {"size": s, "alive": a, "density": a / max(s, 1)}
    size += s
    alive += a
  density = alive / max(size, 1)
  return {"layers": layers, "size": size, "alive": alive, "density": density,
          "sparsity": 1.0 - density, "compression": size / max(alive, 1)}


PRUNERS = ("global_magnitude", "layerwise_magnitude", "filter_l1", "random")


def prune(method: str, params, masks, fraction: Rates, *, key: jax.Array | None = None,
          normalize: str | None = None):
  """Dispatches to one pruner by name (``PRUNERS``); ``key`` is needed by ``'random'``."""
  if method == "global_magnitude":
    return global_magnitude(params, masks, fraction, normalize=normalize)
  if method == "layerwise_magnitude":
    return layerwise_magnitude(params, masks, fraction)
  if method == "filter_l1":
    return filter_l1(params, masks, fraction)
  if method == "random":
    if key is None:
      raise ValueError("random pruning needs a key")
    return random_prune(key, masks, fraction, layerwise=not isinstance(fraction, (int, float)))
  raise ValueError(f"unknown pruning method {method!r}; expected one of {list(PRUNERS)}")
