"""Physically shrunk structured-pruned networks compute what the masked networks compute."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lipprune import models, sparsity, train
from lipprune.sparsity import shrink as S

CASES = [
    ("mlp", {"hidden": (20, 12)}, (4, 8, 8, 1), {"dense_0": 0.5, "dense_1": 0.25}),
    ("conv2", {"widths": (6, 8), "hidden": (10, 7)}, (3, 8, 8, 3),
     {"conv_0": 0.5, "conv_1": 0.5, "dense_0": 0.3, "dense_1": 0.3}),
    ("vgg16", {"widths": (4,) * 13, "classifier_width": 6}, (2, 32, 32, 3),
     {r"conv_(0|7|8|9|10|11|12)/": 0.5, "dense_0": 0.5}),
    ("resnet20", {}, (2, 32, 32, 3), {r"block_\d+/conv_0": 0.5}),
]


def _perturb_stats(model_state, key):
  """Non-trivial batch-norm running statistics, so that dropping their channels matters."""
  leaves, tree = jax.tree.flatten(model_state)
  keys = jax.random.split(key, max(len(leaves), 1))
  return jax.tree.unflatten(tree, [jnp.abs(l + jax.random.normal(k, l.shape)) + 0.1
                                   for l, k in zip(leaves, keys)])


@pytest.mark.parametrize("name,kwargs,shape,rates", CASES, ids=[c[0] for c in CASES])
def test_shrunk_forward_equals_masked_forward(name, kwargs, shape, rates):
  model = models.create(name, 10, **kwargs)
  x = jax.random.uniform(jax.random.key(1), shape)
  params, state = model.init(jax.random.key(0), x)
  rng = np.random.default_rng(2)
  params = jax.tree.map(lambda p: p + np.float32(0.05) * rng.normal(size=p.shape).astype(np.float32), params)
  state = _perturb_stats(state, jax.random.key(3))
  masks = sparsity.filter_l1(params, sparsity.init_masks(params), {**rates, "default": 0.0})
  plan = S.channel_plan(name, params)
  masks = S.channel_masks(params, masks, plan)
  masked = train.apply_masks(params, masks)
  ref, _ = model.apply(masked, state, x, train=False)
  small, sp, ss, kw = S.shrink(name, 10, masked, state, masks, x, kwargs)
  out, _ = small.apply(sp, ss, x, train=False)
  np.testing.assert_allclose(np.asarray(out), np.asarray(ref), rtol=1e-4, atol=1e-5)
  n_big = sum(np.size(p) for p in jax.tree.leaves(params))
  n_small = sum(np.size(p) for p in jax.tree.leaves(sp))
  assert n_small < n_big
  # The kept widths are those of the masks.
  keep = S.kept_channels(params, masks, plan)
  assert sorted(len(v) for v in keep.values()) != sorted(
      np.shape(S._get(params, p.layer)["kernel"])[-1] for p in plan)
  if name == "resnet20":
    assert kw["inner_widths"] == tuple(8 if i < 3 else 16 if i < 6 else 32 for i in range(9))
  # Accounting ignores the per-channel companions (rank-1 masks) as layers.
  stats = sparsity.sparsity_stats(masks)
  assert all(k.endswith("kernel") for k in stats["layers"])


TRUE_SIZE = [
    ("conv2", {"widths": (6, 8), "hidden": (10, 7)}, (1, 8, 8, 3),
     {"conv_0": 0.5, "conv_1": 0.5, "dense_0": 0.3, "dense_1": 0.3}),
    ("conv4", {"widths": (6, 6, 8, 8), "hidden": (10, 7)}, (1, 16, 16, 3),
     {"conv_(0|2)": 0.5, "conv_3": 0.25, "dense_1": 0.4}),
    ("vgg16", {"widths": (4,) * 13, "classifier_width": 6}, (1, 32, 32, 3),
     {r"conv_(0|7|8|9|10|11|12)/": 0.5, "dense_0": 0.5}),
    ("vgg16", {"widths": (4,) * 13, "classifier_width": 0}, (1, 32, 32, 3), {r"conv_\d+/": 0.5}),
    ("resnet20", {"shortcut": "stage_projection"}, (1, 32, 32, 3), {r"block_\d+/conv_0": 0.5}),
    ("resnet56", {}, (1, 32, 32, 3), {r"block_\d/conv_0": 0.6, r"block_1\d/conv_0": 0.3}),
]


@pytest.mark.parametrize("name,kwargs,shape,rates", TRUE_SIZE,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(TRUE_SIZE)])
def test_true_compression_equals_the_shrunk_networks_size(name, kwargs, shape, rates):
  """Alive weights, parameters and FLOPs of the masked network are those of the shrunk network,
  to the parameter: removed filters' consumer input slices count as removed."""
  model = models.create(name, 10, **kwargs)
  x = jnp.zeros(shape)
  # Random weights of the model's shapes (no initializer to compile: only shapes matter here).
  rng = np.random.default_rng(0)
  params, state = jax.tree.map(lambda s: rng.normal(size=s.shape).astype(np.float32),
                               jax.eval_shape(model.init, jax.random.key(0), x))
  masks = sparsity.filter_l1(params, sparsity.init_masks(params), {**rates, "default": 0.0})
  plan = S.channel_plan(name, params)
  masks = S.channel_masks(params, masks, plan)
  small, sp, ss, _ = S.shrink(name, 10, train.apply_masks(params, masks), state, masks, x, kwargs)
  got = sparsity.count(params, masks, plan)
  n = lambda tree: sum(int(np.size(v)) for v in jax.tree.leaves(tree))
  assert got["params"] == n(params) and got["params_alive"] == n(sp) < n(params)
  assert got["param_compression"] == n(params) / n(sp)
  kernels = lambda tree: sum(int(np.size(v)) for k, v in sparsity.masks.flatten(tree).items()
                             if sparsity.default_prunable(k, v))
  assert got["alive"] == kernels(sp) and got["compression"] == kernels(params) / kernels(sp)
  macs = sparsity.multiply_adds(sparsity.output_positions(model, params, state, x), params, masks,
                                plan)
  dense_small = sparsity.multiply_adds(sparsity.output_positions(small, sp, ss, x), sp)
  assert macs["alive"] == dense_small["dense"] < macs["dense"]


def test_shrink_conv_to_dense_rows_hand_made():
  # Flattened NHWC: input row p * C + c of dense_0 reads channel c at position p.
  k = np.arange(2 * 3 * 2).reshape(6, 2).astype(np.float32)  # 2 positions x 3 channels
  rows = np.nonzero(np.isin(np.arange(6) % 3, [0, 2]))[0]
  np.testing.assert_array_equal(rows, [0, 2, 3, 5])
  np.testing.assert_array_equal(k[rows], k[[0, 2, 3, 5]])


def test_unknown_model_raises():
  with pytest.raises(ValueError, match="channel plan"):
    S.channel_plan("lenet5", {})


def test_channel_plan_order_is_data_flow_not_dict_order():
  blocks = {f"block_{i}": {} for i in sorted(range(12), key=str)}  # block_0, block_1, block_10, ...
  plan = S.channel_plan("resnet56", blocks)
  assert [p.layer[0] for p in plan] == [f"block_{i}" for i in range(12)]
  k4, k2 = {"kernel": np.zeros((1, 1, 1, 1))}, {"kernel": np.zeros((1, 1))}
  vgg = {**{f"conv_{i}": k4 for i in sorted(range(13), key=str)}, "dense_0": k2, "head": k2,
         "bn_dense": {"scale": 0, "bias": 0}, **{f"bn_{i}": {"scale": 0} for i in range(13)}}
  plan = S.channel_plan("vgg16", dict(sorted(vgg.items())))
  assert [p.layer[0] for p in plan] == [f"conv_{i}" for i in range(13)] + ["dense_0"]
  assert [p.consumer[0] for p in plan] == [f"conv_{i}" for i in range(1, 13)] + ["dense_0", "head"]
  assert plan[12].flatten and not plan[11].flatten and plan[13].norm == ("bn_dense",)
  assert plan[3].norm == ("bn_3",)
