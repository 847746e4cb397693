"""True size accounting and the layer-collapse guard, on hand-made masks counted by hand."""
import jax.numpy as jnp
import numpy as np
import pytest

from lipprune import sparsity
from lipprune.sparsity import accounting
from lipprune.sparsity import shrink as S


def _sequential():
  """conv_0 (3x3, 2 -> 4, bias) -> conv_1 (3x3, 4 -> 3, bias) -> dense_0 (2x2 map: 12 -> 5) ->
  head."""
  return {
      "conv_0": {"kernel": jnp.ones((3, 3, 2, 4)), "bias": jnp.ones(4)},
      "conv_1": {"kernel": jnp.ones((3, 3, 4, 3)), "bias": jnp.ones(3)},
      "dense_0": {"kernel": jnp.ones((12, 5)), "bias": jnp.ones(5)},
      "head": {"kernel": jnp.ones((5, 2)), "bias": jnp.ones(2)},
  }


def test_spared_layers_count_as_dense_like_the_official_density_ratio():
  p = _sequential()
  masks = sparsity.init_masks(p, spare=(r"^head/",))
  masks = sparsity.global_magnitude(p, masks, 0.5)  # all |w| tie: the first half of each ranking
  got = sparsity.count(p, masks)
  pruned = 72 + 108 + 60
  assert got["size"] == pruned + 10 and got["alive"] == pruned - round(0.5 * pruned) + 10
  assert got["layers"]["head/kernel"] == {"size": 10, "alive": 10, "density": 1.0, "outputs": 2}
  assert got["compression"] == pytest.approx(250 / 130)
  # Every bias is a parameter and stays alive after unstructured pruning.
  assert got["params"] == 250 + 14 and got["params_alive"] == 130 + 14
  # Mask entries alone do not know the spared head.
  assert sparsity.sparsity_stats(masks)["size"] == pruned


def test_removed_filters_remove_the_consumers_input_slices():
  p = _sequential()
  plan = S.channel_plan("conv2", p)
  masks = sparsity.init_masks(p)
  # Remove filter 1 of conv_0 and filter 2 of conv_1 (kernel slices), then their companions.
  masks["conv_0"]["kernel"] = masks["conv_0"]["kernel"].at[..., 1].set(0.0)
  masks["conv_1"]["kernel"] = masks["conv_1"]["kernel"].at[..., 2].set(0.0)
  unstructured = sparsity.count(p, masks, plan)  # biases not masked: the channels still output
  assert unstructured["layers"]["conv_1/kernel"]["alive"] == 108 - 36
  masks = S.channel_masks(p, masks, plan)
  got = sparsity.count(p, masks, plan)
  layers = got["layers"]
  assert layers["conv_0/kernel"]["alive"] == 3 * 3 * 2 * 3
  assert layers["conv_1/kernel"]["alive"] == 3 * 3 * 3 * 2  # 3 live inputs x 2 live filters
  # dense_0 reads the NHWC-flattened 2x2x3 map: rows p * 3 + 2 are channel 2, four of them.
  assert layers["dense_0/kernel"]["alive"] == (12 - 4) * 5
  assert layers["head/kernel"]["alive"] == 10
  assert got["params_alive"] == (54 + 3) + (54 + 2) + (40 + 5) + (10 + 2)
  # ... which is the shrunk network: conv2(widths=(3, 2), hidden=(5,)) on a 4x4 input.
  from lipprune import models
  import jax
  small = models.create("conv2", 2, widths=(3, 2), hidden=(5,))
  sp, _ = jax.eval_shape(small.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 4, 4, 2),
                                                                             jnp.float32))
  assert got["params_alive"] == sum(int(np.prod(v.shape)) for v in jax.tree.leaves(sp))


def test_collapsed_layers_by_density_and_by_output_units():
  stats = {"layers": {
      "a/kernel": {"size": 30000, "alive": 250, "density": 250 / 30000, "outputs": 100},
      "b/kernel": {"size": 30000, "alive": 99, "density": 99 / 30000, "outputs": 100},
      "c/kernel": {"size": 1000, "alive": 15, "density": 0.015, "outputs": 10},
      "d/kernel": {"size": 640, "alive": 9, "density": 9 / 640, "outputs": 10}}}
  assert sparsity.collapsed_layers(stats) == ["a/kernel", "b/kernel", "d/kernel"]
  assert sparsity.collapsed_layers(stats, min_density=0.005) == ["b/kernel", "d/kernel"]
  assert accounting.collapsed_layers(stats, min_density=0.0, min_per_output=0.0) == []
