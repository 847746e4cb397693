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


# ---- layers by name, layer-normalized scores, floors, the structured control -------------------

def test_spare_first_and_last_by_name_on_jitted_resnet_params():
  from lipprune import models
  model = models.create("resnet20", 10)
  params, _ = jax.eval_shape(model.init, jax.random.key(0),
                             jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32))
  # A traced init returns sorted keys: block_0 first, stem_conv after head. Dict order would
  # spare block_0/conv_0 and the stem's batch norm neighbour instead of the stem and the head.
  assert list(params)[0] == "block_0" and list(params)[-1] == "stem_conv"
  m = sparsity.init_masks(params, spare_first=True, spare_last=True)
  spared = {M.path_str(p) for p, v in M.flatten(m).items()
            if v is None and M.default_prunable(p, M.flatten(params)[p])}
  assert spared == {"stem_conv/kernel", "head/kernel"}
  by_regex = sparsity.init_masks(params, spare=(r"^stem_conv/", r"^head/"))
  assert jax.tree.structure(by_regex) == jax.tree.structure(m)


def test_data_flow_key_orders_zoo_names_and_rejects_others():
  names = ["head", "block_10/conv_0", "block_9/shortcut_conv", "block_9/conv_1", "stem_conv",
           "dense_1", "conv_2", "fc3", "block_9/conv_0"]
  order = sorted(names, key=lambda n: sparsity.data_flow_key(tuple(n.split("/"))))
  assert order == ["stem_conv", "conv_2", "block_9/conv_0", "block_9/conv_1",
                   "block_9/shortcut_conv", "block_10/conv_0", "dense_1", "fc3", "head"]
  with pytest.raises(ValueError, match="spare="):
    sparsity.init_masks({"encoder": {"kernel": jnp.ones((2, 2))}}, spare_last=True)


def _lamp_by_hand(w, alive):
  """Lee et al. (2021) Eq. 2 written as a double loop: w_u^2 / sum of w_v^2 over survivors v with
  |w_v| >= |w_u| (values distinct)."""
  w, alive = np.abs(np.ravel(w)).astype(np.float64), np.ravel(alive) > 0
  return np.array([w[u] ** 2 / sum(w[v] ** 2 for v in range(w.size) if alive[v] and w[v] >= w[u])
                   if alive[u] else np.nan for u in range(w.size)])


def test_lamp_scores_and_global_selection_match_the_definition():
  rng = np.random.default_rng(3)
  p = {"dense_0": {"kernel": jnp.asarray(rng.normal(0, 1.0, (6, 5)), jnp.float32)},
       "head": {"kernel": jnp.asarray(rng.normal(0, 0.01, (5, 3)), jnp.float32)}}
  m = sparsity.init_masks(p)
  m["dense_0"]["kernel"] = m["dense_0"]["kernel"].at[0, :2].set(0.0)  # two already pruned
  scores = np.concatenate([_lamp_by_hand(p[k]["kernel"], m[k]["kernel"]) for k in ("dense_0",
                                                                                   "head")])
  got = np.concatenate([M.layer_scores(p[k]["kernel"], m[k]["kernel"], "lamp") for k in
                        ("dense_0", "head")])
  alive = ~np.isnan(scores)
  np.testing.assert_allclose(got[alive], scores[alive], rtol=1e-12)
  k = round(0.6 * alive.sum())
  expect = np.zeros(scores.size)
  expect[np.argsort(np.where(alive, scores, -np.inf))[alive.size - alive.sum() + k:]] = 1
  out = sparsity.global_magnitude(p, m, 0.6, normalize="lamp")
  flat = np.concatenate([np.ravel(out[k]["kernel"]) for k in ("dense_0", "head")])
  np.testing.assert_array_equal(flat, expect)
  # The head's weights are 100x smaller: plain magnitude empties it, LAMP keeps its largest one.
  plain = sparsity.global_magnitude(p, m, 0.95)
  assert float(plain["head"]["kernel"].sum()) == 0
  lamp = sparsity.global_magnitude(p, m, 0.95, normalize="lamp")
  assert float(lamp["head"]["kernel"].sum()) >= 1 and float(lamp["dense_0"]["kernel"].sum()) >= 1


def test_min_density_keeps_each_layers_largest_weights():
  rng = np.random.default_rng(4)
  big = rng.normal(0, 1.0, (20, 30))
  small = rng.normal(0, 0.001, (30, 10))
  p = {"dense_0": {"kernel": jnp.asarray(big, jnp.float32)},
       "head": {"kernel": jnp.asarray(small, jnp.float32)}}
  m = sparsity.init_masks(p)
  out = sparsity.global_magnitude(p, m, 0.9, min_density=0.05)
  head = np.asarray(out["head"]["kernel"])
  # ceil(0.05 * 300) = 15 of the head's largest weights survive; the total pruned is still 810.
  assert head.sum() == 15
  assert np.all(np.abs(small)[head > 0].min() >= np.abs(small)[head == 0].max())
  assert sum(float(v.sum()) for v in M.prunable_leaves(out).values()) == 900 - round(0.9 * 900)
  assert float(sparsity.global_magnitude(p, m, 0.9)["head"]["kernel"].sum()) == 0
  # More protected weights than survivors to prune: only the unprotected ones go.
  tight = sparsity.global_magnitude(p, m, 0.99, min_density=0.5)
  assert float(tight["head"]["kernel"].sum()) == 150
  assert float(tight["dense_0"]["kernel"].sum()) == 300


def test_random_filters_is_the_structured_control_of_filter_l1():
  rng = np.random.default_rng(5)
  p = {"conv_0": {"kernel": jnp.asarray(rng.normal(size=(3, 3, 2, 10)), jnp.float32)},
       "conv_1": {"kernel": jnp.asarray(rng.normal(size=(3, 3, 10, 8)), jnp.float32)}}
  m = sparsity.init_masks(p)
  rates = {"conv_0": 0.4, "conv_1": 0.25, "default": 0.0}
  l1 = sparsity.filter_l1(p, m, rates)
  a = sparsity.prune("random_filter", p, m, rates, key=jax.random.key(0))
  b = sparsity.prune("random_filter", p, m, rates, key=jax.random.key(1))
  for out in (a, b):
    for name in ("conv_0", "conv_1"):
      mk = np.asarray(out[name]["kernel"])
      per_filter = mk.reshape(-1, mk.shape[-1])
      assert np.all((per_filter.min(0) == per_filter.max(0)))  # whole filters only
      assert per_filter.max(0).sum() == np.asarray(l1[name]["kernel"]).reshape(
          -1, mk.shape[-1]).max(0).sum()
  assert not np.array_equal(a["conv_0"]["kernel"], b["conv_0"]["kernel"])
  again = sparsity.prune("random_filter", p, m, rates, key=jax.random.key(0))
  np.testing.assert_array_equal(again["conv_0"]["kernel"], a["conv_0"]["kernel"])
