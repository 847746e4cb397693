"""Pruning masks: which weights are prunable, how they are scored and selected, and accounting.

A mask tree has the params' structure: a float32 0/1 array for every prunable leaf (0 = pruned) and
``None`` for leaves that are never pruned (biases, batch-norm scales and offsets by default).

Scoring and selection follow Renda, Frankle & Carbin, "Comparing Rewinding and Fine-tuning in Neural
Network Pruning", ICLR 2020 (and their code):

* **global magnitude**: one ranking of ``|w|`` across every prunable layer; the ``k`` surviving
  weights with the smallest score are pruned, ``k = round(fraction * n_alive)``. Optionally the
  score is normalized per layer (``normalize``): ``'rms'``, ``|w| / rms_l`` with
  ``rms_l = sqrt(mean_{alive in l} w^2)``; or ``'lamp'``, the LAMP score of Lee, Park, Mo, Ahn &
  Shin, "Layer-adaptive Sparsity for the Magnitude-based Pruning", ICLR 2021 (Eq. 2): with the
  layer's survivors sorted by ascending ``|w|``, ``score(u) = w_u^2 / sum_{v >= u} w_v^2``, so each
  layer's largest weight scores 1 and no layer is ever emptied. A minimum per-layer density
  (``min_density``) keeps each layer's ``ceil(min_density * size_l)`` largest weights out of the
  ranking. Global scores compare weights of layers whose scales differ by initialization, so a
  small-scale layer can be emptied (layer collapse; `collapsed_layers` in
  `lipprune.sparsity.accounting` detects it).
* **layerwise magnitude**: the same within each layer, ``k_l = round(fraction_l * n_alive_l)``.
* **structured filter L1** (Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017): output
  filter ``j`` of a kernel scores ``s_j = sum_{h,w,c} |K[h, w, c, j]|``; per layer the
  ``round(fraction_l * alive_filters_l)`` surviving filters with the smallest ``s_j`` are removed.
* **random**: the same count drawn uniformly among the survivors, the control of magnitude pruning.
* **random filter**: per layer, ``round(fraction_l * alive_filters_l)`` surviving filters drawn
  uniformly, the structured control of filter L1 pruning (same per-layer fractions, shrinkable).

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


_KIND_RANK = {"stem": 0, "conv": 1, "block": 2, "stage": 2, "layer": 2, "dense": 3, "fc": 3,
              "head": 4}


def data_flow_key(path: Path) -> tuple:
  """A sort key putting the zoo's layers in data-flow order, from their names alone (never from
  dict order, which a jit or a checkpoint round trip sorts): ``stem_*`` < ``conv_i`` < ``block_i``
  < ``dense_i`` / ``fc_i`` < ``head``, indices compared as numbers (``block_9 < block_10``), then
  the sub-path within a block (``conv_0 < conv_1 < shortcut_conv``).

  Raises ValueError for a top-level name of another kind: name such layers with ``spare`` regexes.
  """
  kind = re.match(r"[a-z]*", str(path[0])).group(0)
  index = re.search(r"\d+", str(path[0]))
  if kind not in _KIND_RANK:
    raise ValueError(f"cannot place layer {path_str(path)!r} in data-flow order: spare_first/"
                     f"spare_last know the zoo's names {sorted(_KIND_RANK)}; name the layers to "
                     "keep dense with spare=(regex, ...) instead")
  rest = tuple((re.sub(r"\d+", "", str(p)), int(re.sub(r"\D", "", str(p)) or 0)) for p in path[1:])
  return (_KIND_RANK[kind], int(index.group(0)) if index else 0, rest)


def init_masks(params, *, prunable: Predicate = default_prunable, spare_first: bool = False,
               spare_last: bool = False, spare: tuple[str, ...] = ()):
  """All-ones masks on the prunable leaves of ``params``, ``None`` elsewhere.

  Layers are matched by name, never by position in the dict (params that went through a jit come
  back with sorted keys, where ``block_0`` precedes ``stem_conv`` and ``head``).

  Args:
    params: the model's params (a nested dict).
    prunable: ``(path, leaf) -> bool``.
    spare_first: keep the first prunable layer in data-flow order (`data_flow_key`) dense.
    spare_last: keep the last prunable layer in data-flow order (the output layer) dense.
    spare: regular expressions; prunable leaves whose path string (``'block_3/conv_0/kernel'``)
      matches one (``re.search``) stay dense.
  """
  flat = flatten(params)
  keys = [p for p, v in flat.items() if prunable(p, v)]
  spared = {p for p in keys if any(re.search(r, path_str(p)) for r in spare)}
  if keys and (spare_first or spare_last):
    ordered = sorted(keys, key=data_flow_key)
    if spare_first:
      spared.add(ordered[0])
    if spare_last:
      spared.add(ordered[-1])
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


NORMALIZATIONS = ("rms", "lamp")


def layer_scores(w, alive, normalize: str | None) -> np.ndarray:
  """Scores of one layer's weights for global ranking (dead entries' scores are ignored).

  ``None``: ``|w|``; ``'rms'``: ``|w| / rms`` of the survivors; ``'lamp'``: Lee et al. (ICLR 2021),
  ``w_u^2 / sum_{v >= u} w_v^2`` over the survivors sorted by ascending ``|w|`` (ties by index).
  """
  w = np.abs(np.asarray(w, np.float64)).reshape(-1)
  alive = np.asarray(alive).reshape(-1) > 0
  if normalize is None:
    return w
  if normalize == "rms":
    n = max(float(np.sum(alive)), 1.0)
    return w / max(float(np.sqrt(np.sum((w * alive) ** 2) / n)), 1e-30)
  if normalize == "lamp":
    sq = np.where(alive, w ** 2, 0.0)
    order = np.argsort(np.where(alive, w, -1.0), kind="stable")
    tail = np.cumsum(sq[order][::-1])[::-1]  # sum over v at or after u in ascending order
    out = np.zeros_like(w)
    out[order] = sq[order] / np.maximum(tail, 1e-300)
    return out
  raise ValueError(f"normalize must be one of {[None, *NORMALIZATIONS]}, got {normalize!r}")


def protected_count(size: int, n_alive: int, min_density: float) -> int:
  """How many of a layer's survivors ``min_density`` keeps: ``min(n_alive, ceil(min_density *
  size))``."""
  return min(n_alive, int(np.ceil(min_density * size - 1e-9)))


def global_magnitude(params, masks, fraction: float, *, normalize: str | None = None,
                     min_density: float = 0.0):
  """Prunes ``round(fraction * n_alive)`` of the surviving weights in one ranking over all layers.

  Args:
    normalize: ``None`` ranks ``|w|`` (the paper's choice); ``'rms'`` or ``'lamp'`` rank
      layer-normalized scores (`layer_scores`).
    min_density: each layer keeps at least its ``ceil(min_density * size_l)`` largest survivors
      (all of them if fewer survive); they leave the ranking, and when fewer than ``k`` weights
      remain rankable only those are pruned. 0 (default) is the paper's unconstrained ranking.
  """
  if normalize is not None and normalize not in NORMALIZATIONS:
    raise ValueError(f"normalize must be one of {[None, *NORMALIZATIONS]}, got {normalize!r}")
  check_fraction(fraction)
  flat_p = flatten(params)
  leaves = prunable_leaves(masks)
  scores, alives, sizes = [], [], []
  protected = 0
  for p, m in leaves.items():
    m = np.asarray(m)
    s = layer_scores(flat_p[p], m, normalize)
    n_keep = protected_count(m.size, int(np.sum(m > 0)), min_density) if min_density else 0
    if n_keep:
      # Within a layer every score is increasing in |w|, so the largest scores are kept.
      top = np.argsort(np.where(m.reshape(-1) > 0, s, -np.inf), kind="stable")[-n_keep:]
      s = s.copy()
      s[top] = np.inf
      protected += n_keep
    scores.append(s)
    alives.append(m.reshape(-1))
    sizes.append(m.size)
  if not scores:
    return masks
  alive = np.concatenate(alives)
  n_alive = int(np.sum(alive > 0))
  k = min(_count(fraction, n_alive), n_alive - protected)
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


def random_prune(key: jax.Array, masks, fraction: Rates, *, layerwise: bool = False,
                 min_density: float = 0.0):
  """Random pruning, the control: ``round(fraction * n_alive)`` survivors chosen uniformly, in one
  pool across layers (default; ``min_density`` as in `global_magnitude`) or per layer
  (``layerwise``, ``fraction`` may be per layer)."""
  leaves = prunable_leaves(masks)
  rng = _rng(key)
  scores = {p: rng.random(m.shape) for p, m in leaves.items()}
  if not layerwise:
    if not isinstance(fraction, (int, float)):
      raise ValueError("per-layer fractions need layerwise=True")
    check_fraction(fraction)
    return global_magnitude(_fill(unflatten(scores), masks), masks, fraction,
                            min_density=min_density)
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


def _alive_filter_mask(m: np.ndarray) -> np.ndarray:
  return (np.max(m.reshape(-1, m.shape[-1]), axis=0) > 0).astype(np.float32)


def _prune_filters(masks, fraction: Rates, filter_score) -> object:
  """Per layer, removes ``round(fraction_l * alive_filters_l)`` surviving output filters with the
  smallest ``filter_score(path, mask)`` (one score per filter)."""
  leaves = prunable_leaves(masks)
  rates = resolve_rates(fraction, leaves)
  out = flatten(masks)
  for p, m in leaves.items():
    m = np.asarray(m)
    alive_f = _alive_filter_mask(m)
    k = _count(rates[p], int(np.sum(alive_f)))
    if k == 0:
      continue
    keep = _prune_smallest(filter_score(p, m), alive_f, k)
    out[p] = jnp.asarray(m * keep)
  return unflatten(out)


def filter_l1(params, masks, fraction: Rates):
  """Structured pruning (Li et al. 2017): per layer, removes ``round(fraction_l * alive_l)`` of the
  surviving output filters (last kernel axis) with the smallest L1 norm; a removed filter is zero
  in the whole mask slice ``[..., j]``. A filter is alive when any of its weights is."""
  flat_p = flatten(params)
  return _prune_filters(masks, fraction,
                        lambda p, m: filter_scores(np.asarray(flat_p[p]) * m))


def random_filters(key: jax.Array, masks, fraction: Rates):
  """The structured control of `filter_l1`: per layer, ``round(fraction_l * alive_l)`` surviving
  output filters drawn uniformly (the same per-layer counts as filter L1 pruning), removed whole so
  that the network can be shrunk (`lipprune.sparsity.shrink`)."""
  rng = _rng(key)
  scores = {p: rng.random(np.shape(m)[-1]) for p, m in prunable_leaves(masks).items()}
  return _prune_filters(masks, fraction, lambda p, m: scores[p])


def alive_filters(masks) -> dict[str, np.ndarray]:
  """Indices of the output filters with any surviving weight, per prunable layer path."""
  return {path_str(p): np.nonzero(np.asarray(m).reshape(-1, m.shape[-1]).max(0) > 0)[0]
          for p, m in prunable_leaves(masks).items()}


PRUNERS = ("global_magnitude", "layerwise_magnitude", "filter_l1", "random", "random_filter")
# Pruners that remove whole output filters (their results can be shrunk physically).
STRUCTURED_PRUNERS = ("filter_l1", "random_filter")


def prune(method: str, params, masks, fraction: Rates, *, key: jax.Array | None = None,
          normalize: str | None = None, min_density: float = 0.0):
  """Dispatches to one pruner by name (``PRUNERS``); ``key`` is needed by ``'random'`` and
  ``'random_filter'``; ``normalize`` and ``min_density`` apply to the global rankings
  (``'global_magnitude'``, ``'random'`` with one fraction)."""
  if method == "global_magnitude":
    return global_magnitude(params, masks, fraction, normalize=normalize, min_density=min_density)
  if method == "layerwise_magnitude":
    return layerwise_magnitude(params, masks, fraction)
  if method == "filter_l1":
    return filter_l1(params, masks, fraction)
  if method in ("random", "random_filter"):
    if key is None:
      raise ValueError(f"{method} pruning needs a key")
    if method == "random_filter":
      return random_filters(key, masks, fraction)
    return random_prune(key, masks, fraction, layerwise=not isinstance(fraction, (int, float)),
                        min_density=min_density)
  raise ValueError(f"unknown pruning method {method!r}; expected one of {list(PRUNERS)}")
