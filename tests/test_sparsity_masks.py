"""Masks, pruners and sparsity accounting on hand-made weights, cross-checked with numpy."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from lipprune import sparsity
from lipprune.sparsity import masks as M


def _params():
  # Insertion order is creation order: conv first, then dense, then head.
  return {
      "conv_0": {"kernel": jnp.array(np.arange(1, 9, dtype=np.float32).reshape(1, 1, 2, 4)),
                 "bias": jnp.ones(4)},
      "bn_0": {"scale": jnp.ones(4), "bias": jnp.zeros(4)},
      "dense_0": {"kernel": jnp.array([[0.5, -10.0], [9.0, -0.1]], jnp.float32),
                  "bias": jnp.zeros(2)},
      "head": {"kernel": jnp.array([[100.0, 0.05], [-0.2, 7.0]], jnp.float32), "bias": jnp.zeros(2)},
  }


def test_default_predicate_marks_kernels_only():
  m = sparsity.init_masks(_params())
  assert m["conv_0"]["bias"] is None and m["bn_0"]["scale"] is None and m["bn_0"]["bias"] is None
  assert m["conv_0"]["kernel"].shape == (1, 1, 2, 4) and m["head"]["kernel"].shape == (2, 2)
  spared = sparsity.init_masks(_params(), spare_first=True, spare_last=True)
  assert spared["conv_0"]["kernel"] is None and spared["head"]["kernel"] is None
  assert spared["dense_0"]["kernel"] is not None
  assert sparsity.init_masks(_params(), spare=("dense",))["dense_0"]["kernel"] is None


def test_global_vs_layerwise_thresholds_hand_made():
  p = _params()
  m = sparsity.init_masks(p)
  # 16 weights, prune 25% = 4: globally the 4 smallest |w| are 0.05, 0.1, 0.2, 0.5.
  g = sparsity.global_magnitude(p, m, 0.25)
  np.testing.assert_array_equal(g["dense_0"]["kernel"], [[0, 1], [1, 0]])
  np.testing.assert_array_equal(g["head"]["kernel"], [[1, 0], [0, 1]])
  assert float(g["conv_0"]["kernel"].sum()) == 8
  # Layerwise 50%: each layer loses half of its weights: conv 1..4, dense 0.1/0.5, head 0.05/0.2.
  lw = sparsity.layerwise_magnitude(p, m, 0.5)
  np.testing.assert_array_equal(np.asarray(lw["conv_0"]["kernel"]).reshape(-1), [0] * 4 + [1] * 4)
  np.testing.assert_array_equal(lw["dense_0"]["kernel"], [[0, 1], [1, 0]])
  np.testing.assert_array_equal(lw["head"]["kernel"], [[1, 0], [0, 1]])
  # Per-layer rates: Lottery Ticket style, head spared at 0 and conv at 25%.
  r = sparsity.layerwise_magnitude(p, m, {"head": 0.0, "conv": 0.25, "default": 0.5})
  assert float(r["head"]["kernel"].sum()) == 4 and float(r["conv_0"]["kernel"].sum()) == 6
  assert float(r["dense_0"]["kernel"].sum()) == 2


def test_global_rms_normalized_score():
  p = _params()
  m = sparsity.init_masks(p)
  flat = M.flatten(p)
  scores = []
  for path, mm in M.prunable_leaves(m).items():
    w = np.asarray(flat[path]).reshape(-1)
    scores.append(np.abs(w) / np.sqrt(np.mean(w ** 2)))
  s = np.concatenate(scores)
  expect = np.ones_like(s)
  expect[np.argsort(s, kind="stable")[:5]] = 0
  got = sparsity.global_magnitude(p, m, 5 / 16, normalize="rms")
  got = np.concatenate([np.asarray(v).reshape(-1) for v in M.prunable_leaves(got).values()])
  np.testing.assert_array_equal(got, expect)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2 ** 16), rounds=st.integers(1, 8),
       method=st.sampled_from(["global_magnitude", "layerwise_magnitude", "random"]))
def test_iterative_density_and_never_revive(seed, rounds, method):
  rng = np.random.default_rng(seed)
  p = {"a": {"kernel": jnp.array(rng.normal(size=(20, 30)), jnp.float32)},
       "b": {"kernel": jnp.array(rng.normal(size=(3, 3, 4, 8)), jnp.float32),
             "bias": jnp.zeros(8)}}
  m = sparsity.init_masks(p)
  n = 600 + 288
  alive = n
  prev = m
  for r in range(rounds):
    nxt = sparsity.prune(method, p, prev, 0.2, key=jax.random.key(seed + r))
    for path, mm in M.prunable_leaves(nxt).items():  # never revives
      assert np.all(np.asarray(mm) <= np.asarray(M.flatten(prev)[path]))
    expect = alive - (round(0.2 * alive) if method != "layerwise_magnitude" else
                      sum(round(0.2 * int(v.sum())) for v in M.prunable_leaves(prev).values()))
    alive = sparsity.sparsity_stats(nxt)["alive"]
    assert alive == expect
    prev = nxt
  stats = sparsity.sparsity_stats(prev)
  assert abs(stats["density"] - 0.8 ** rounds) < 0.01 + 1e-9
  assert stats["compression"] == pytest.approx(n / alive)
  assert stats["sparsity"] == pytest.approx(1 - alive / n)


def test_pruning_ranks_only_survivors():
  p = {"a": {"kernel": jnp.array([[1.0, 2.0, 3.0, 4.0]])}}
  m = {"a": {"kernel": jnp.array([[0.0, 1.0, 1.0, 1.0]])}}
  # Weight 1 is already pruned; 50% of the 3 survivors is 2 more: weights 2 and 3.
  out = sparsity.global_magnitude(p, m, 0.5)
  np.testing.assert_array_equal(out["a"]["kernel"], [[0, 0, 0, 1]])


def test_filter_l1_structured():
  rng = np.random.default_rng(0)
  k = rng.normal(size=(3, 3, 2, 6)).astype(np.float32)
  p = {"conv_0": {"kernel": jnp.array(k)}, "conv_1": {"kernel": jnp.array(rng.normal(size=(3, 3, 6, 4)), jnp.float32)}}
  m = sparsity.init_masks(p)
  out = sparsity.filter_l1(p, m, {"conv_0": 0.5, "default": 0.0})
  l1 = np.abs(k).sum(axis=(0, 1, 2))
  pruned = np.sort(np.argsort(l1)[:3])
  mk = np.asarray(out["conv_0"]["kernel"])
  for j in range(6):
    assert np.all(mk[..., j] == (0 if j in pruned else 1))
  assert float(out["conv_1"]["kernel"].min()) == 1
  np.testing.assert_array_equal(sparsity.alive_filters(out)["conv_0/kernel"],
                                np.setdiff1d(np.arange(6), pruned))
  # A second round removes a fraction of the surviving filters only.
  out2 = sparsity.filter_l1(p, out, {"conv_0": 0.34})
  assert len(sparsity.alive_filters(out2)["conv_0/kernel"]) == 2


def test_bad_values_raise():
  p = _params()
  m = sparsity.init_masks(p)
  with pytest.raises(ValueError, match="pruning method"):
    sparsity.prune("nope", p, m, 0.2)
  with pytest.raises(ValueError, match="fraction"):
    sparsity.layerwise_magnitude(p, m, 1.5)
  with pytest.raises(ValueError, match="normalize"):
    sparsity.global_magnitude(p, m, 0.2, normalize="l7")


def test_round_fractions():
  f = sparsity.round_fractions("iterative", fraction=0.2, target_sparsity=0.95)
  assert len(f) == 14 and 1 - sparsity.target_density(0.2, 14) >= 0.95 > 1 - sparsity.target_density(0.2, 13)
  assert sparsity.round_fractions("one_shot", target_sparsity=0.9) == [0.9]
  with pytest.raises(ValueError, match="mode"):
    sparsity.round_fractions("twice")
