"""Forward multiply-adds from the model's shapes, against hand counts and published counts."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lipprune import models, sparsity


def _macs(name, shape, masks=None, **kw):
  model = models.create(name, 10, **kw)
  x = jax.ShapeDtypeStruct(shape, jnp.float32)
  params, state = jax.eval_shape(model.init, jax.random.key(0), x)
  positions = sparsity.output_positions(model, params, state, x)
  return sparsity.multiply_adds(positions, params, masks)


def conv(side, k, cin, cout):
  return side * side * k * k * cin * cout


def test_lenet_300_100_hand_count():
  assert _macs("mlp", (1, 784))["dense"] == 784 * 300 + 300 * 100 + 100 * 10 == 266_200


def test_conv4_hand_count():
  expected = (conv(32, 3, 3, 64) + conv(32, 3, 64, 64) + conv(16, 3, 64, 128)
              + conv(16, 3, 128, 128) + 8 * 8 * 128 * 256 + 256 * 256 + 256 * 10)
  assert _macs("conv4", (1, 32, 32, 3))["dense"] == expected


def test_resnet20_hand_count():
  expected = conv(32, 3, 3, 16) + 6 * conv(32, 3, 16, 16)
  expected += conv(16, 3, 16, 32) + 5 * conv(16, 3, 32, 32)  # first conv of stage 2 has stride 2
  expected += conv(8, 3, 32, 64) + 5 * conv(8, 3, 64, 64)
  expected += 64 * 10
  assert _macs("resnet20", (1, 32, 32, 3))["dense"] == expected
  # Projection shortcuts cost their 1x1 convs (Renda et al.'s TF ResNet has one per stage).
  proj = _macs("resnet20", (1, 32, 32, 3), shortcut="stage_projection")["dense"]
  assert proj - expected == conv(32, 1, 16, 16) + conv(16, 1, 16, 32) + conv(8, 1, 32, 64)


@pytest.mark.parametrize("name,published", [("vgg16", 3.13e8), ("resnet56", 1.25e8),
                                            ("resnet110", 2.53e8)])
def test_published_counts_of_li_et_al(name, published):
  """Li et al. (ICLR 2017), Tables 1-2: FLOPs of the unpruned CIFAR-10 networks."""
  assert float(f"{_macs(name, (1, 32, 32, 3))['dense']:.3g}") == published


def test_masked_count_uses_alive_weights_per_output_position():
  model = models.create("conv2", 10, widths=(4, 6), hidden=(8,))
  x = jax.ShapeDtypeStruct((1, 8, 8, 3), jnp.float32)
  params, state = model.init(jax.random.key(0), jnp.zeros(x.shape))
  rng = np.random.default_rng(0)
  masks = sparsity.init_masks(params)
  masks = jax.tree.map(lambda m: None if m is None else
                       jnp.asarray(rng.random(m.shape) < 0.3, jnp.float32), masks,
                       is_leaf=lambda m: m is None)
  got = sparsity.multiply_adds(sparsity.output_positions(model, params, state, x), params, masks)
  alive = lambda k: int(np.sum(np.asarray(masks[k]["kernel"])))
  expected = (64 * alive("conv_0") + 64 * alive("conv_1") + alive("dense_0") + alive("head"))
  assert got["alive"] == expected
  assert got["ratio"] == pytest.approx(got["dense"] / expected)
