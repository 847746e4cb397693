"""Dataset separation (Yang et al., NeurIPS 2020, Section 3).

A labelled set is ``2r``-separated in a norm when every pair of points with different labels is at
distance at least ``2r``; then a classifier that is robust at radius ``r`` and perfectly accurate
exists. For each query point ``a`` with label ``y_a`` we compute exactly

  d(a) = min { ||a - b||_p : b in reference set, y_b != y_a },   p in {inf, 2},

train-train (query = reference = train) and test-train (query = test, reference = train). The search
is brute force over all pairs, in chunks: a Python loop over query chunks, each a jitted
``lax.scan`` over reference chunks, so memory is ``query_chunk * ref_chunk * dim`` floats.

Points at distance 0 from a point of another class are duplicates with conflicting labels; they are
counted and their indices returned, never dropped.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

NORMS = ("linf", "l2")


@functools.partial(jax.jit, static_argnames=("norm", "ref_chunk"))
def _nearest_other_chunk(a, ya, ref, yref, valid_ref, *, norm: str, ref_chunk: int):
  """For a query chunk: (min distance, argmin index) to reference points of another class."""
  num_chunks = ref.shape[0] // ref_chunk
  ref = ref.reshape(num_chunks, ref_chunk, -1)
  yref = yref.reshape(num_chunks, ref_chunk)
  valid_ref = valid_ref.reshape(num_chunks, ref_chunk)

  def body(carry, inputs):
    best, best_idx = carry
    i, b, yb, vb = inputs
    diff = a[:, None, :] - b[None, :, :]
    if norm == "linf":
      d = jnp.max(jnp.abs(diff), axis=-1)
    else:
      d = jnp.sqrt(jnp.sum(jnp.square(diff), axis=-1))
    allowed = (ya[:, None] != yb[None, :]) & vb[None, :]
    d = jnp.where(allowed, d, jnp.inf)
    j = jnp.argmin(d, axis=1)
    dj = jnp.take_along_axis(d, j[:, None], axis=1)[:, 0]
    better = dj < best
    return (jnp.where(better, dj, best), jnp.where(better, i * ref_chunk + j, best_idx)), None

  init = (jnp.full((a.shape[0],), jnp.inf, a.dtype), jnp.full((a.shape[0],), -1, jnp.int32))
  (best, best_idx), _ = jax.lax.scan(
      body, init, (jnp.arange(num_chunks, dtype=jnp.int32), ref, yref, valid_ref))
  return best, best_idx


def _pad_to(arr: np.ndarray, multiple: int, value=0):
  n = arr.shape[0]
  pad = (-n) % multiple
  if pad == 0:
    return arr
  return np.concatenate([arr, np.full((pad,) + arr.shape[1:], value, arr.dtype)])


def nearest_other_class(query_x, query_y, ref_x, ref_y, *, norm: str = "linf",
                        query_chunk: int = 256, ref_chunk: int = 1024):
  """Exact distance from each query point to the nearest reference point of another class.

  Args:
    query_x, query_y: (n, ...) inputs and (n,) int labels.
    ref_x, ref_y: (m, ...) inputs and (m,) int labels.
    norm: ``'linf'`` or ``'l2'``.
    query_chunk, ref_chunk: tile sizes (memory ``query_chunk * ref_chunk * dim`` floats).

  Returns:
    ``(dist, index)``: float32 (n,) distances (``inf`` if no reference point has another label) and
    int (n,) indices into the reference set (-1 when none).
  """
  if norm not in NORMS:
    raise ValueError(f"norm={norm!r}; expected one of {list(NORMS)}")
  qx = np.asarray(query_x, np.float32).reshape(len(query_x), -1)
  rx = np.asarray(ref_x, np.float32).reshape(len(ref_x), -1)
  qy = np.asarray(query_y, np.int32)
  ry = np.asarray(ref_y, np.int32)
  ref_chunk = max(1, min(ref_chunk, len(rx)))
  query_chunk = max(1, min(query_chunk, len(qx)))
  valid = _pad_to(np.ones(len(rx), bool), ref_chunk, False)
  rx_p, ry_p = _pad_to(rx, ref_chunk), _pad_to(ry, ref_chunk)
  rx_d, ry_d, valid_d = jnp.asarray(rx_p), jnp.asarray(ry_p), jnp.asarray(valid)
  dists, idxs = [], []
  for start in range(0, len(qx), query_chunk):
    a = _pad_to(qx[start:start + query_chunk], query_chunk)
    ya = _pad_to(qy[start:start + query_chunk], query_chunk)
    d, i = _nearest_other_chunk(jnp.asarray(a), jnp.asarray(ya), rx_d, ry_d, valid_d, norm=norm,
                                ref_chunk=ref_chunk)
    n = min(query_chunk, len(qx) - start)
    dists.append(np.asarray(d)[:n])
    idxs.append(np.asarray(i)[:n])
  return np.concatenate(dists), np.concatenate(idxs)


def separation_report(query_x, query_y, ref_x, ref_y, *, norm: str = "linf", bins: int = 50,
                      eps: float | None = None, **chunks) -> dict:
  """Summary of ``nearest_other_class``: min / percentiles / histogram of the distances, the
  number and indices of conflicting-label duplicates (distance 0), and, given ``eps``, the fraction
  of points closer than ``2 * eps`` to another class (where no classifier can be both accurate and
  robust at radius ``eps``).

  Returns:
    ``(report, dist)``: the summary dict (JSON-ready) and the per-point distances of
    ``nearest_other_class``.
  """
  dist, idx = nearest_other_class(query_x, query_y, ref_x, ref_y, norm=norm, **chunks)
  finite = dist[np.isfinite(dist)]
  counts, edges = np.histogram(finite, bins=bins) if len(finite) else (np.zeros(0), np.zeros(0))
  conflicts = np.flatnonzero(dist == 0)
  report = {
      "norm": norm,
      "n": int(len(dist)),
      "min": float(finite.min()) if len(finite) else float("inf"),
      "mean": float(finite.mean()) if len(finite) else float("inf"),
      "median": float(np.median(finite)) if len(finite) else float("inf"),
      "p01": float(np.percentile(finite, 1)) if len(finite) else float("inf"),
      "hist_counts": counts.astype(int).tolist(),
      "hist_edges": edges.tolist(),
      "num_conflicting_duplicates": int(len(conflicts)),
      "conflicting_duplicates": [[int(i), int(idx[i])] for i in conflicts],
  }
  if eps is not None:
    report["eps"] = float(eps)
    report["frac_below_2eps"] = float(np.mean(dist < 2 * eps))
  return report, dist
