"""Tests for the model zoo: shapes, parameter counts against hand formulas, BN and dropout behaviour,
width overrides and physical shrinking. Large models only go through `jax.eval_shape`."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lipprune import models

ALL = ["conv2", "conv4", "conv6", "lenet5", "logistic", "mlp", "resnet110", "resnet20", "resnet50",
       "resnet56", "vgg16", "wrn"]


def n_params(tree) -> int:
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def abstract_init(name, shape, num_classes=10, **kw):
  model = models.create(name, num_classes, **kw)
  params, state = jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct(shape,
                                                                                       jnp.float32))
  return model, params, state


def conv_params(k, cin, cout, bias):
  return k * k * cin * cout + (cout if bias else 0)


def dense_params(din, dout):
  return din * dout + dout


# ---------------------------------------------------------------------------------------------
# registry


def test_names_lists_every_model():
  assert set(ALL) <= set(models.names())


def test_unknown_model_names_allowed_ones():
  with pytest.raises(ValueError, match="resnet21") as info:
    models.create("resnet21", 10)
  for name in ("resnet20", "resnet56", "wrn"):
    assert name in str(info.value)


@pytest.mark.parametrize("name,kwargs,match", [
    ("resnet20", {"shortcut": "C"}, "shortcut"),
    ("resnet20", {"inner_widths": (16,) * 8}, "inner_widths"),
    ("conv4", {"widths": (8, 8, 8)}, "widths"),
    ("vgg16", {"widths": (64,) * 12}, "widths"),
    ("wrn", {"depth": 27}, "depth"),
    ("lenet5", {"conv1_padding": "FULL"}, "conv1_padding"),
])
def test_bad_kwargs_fail_naming_the_field(name, kwargs, match):
  with pytest.raises(ValueError, match=match):
    models.create(name, 10, **kwargs)


# ---------------------------------------------------------------------------------------------
# output shapes: real forward passes for small nets, eval_shape for the big ones

REAL = [
    ("logistic", {}, (3, 28, 28, 1)),
    ("logistic", {}, (3, 8, 8, 1)),
    ("mlp", {}, (3, 28, 28, 1)),
    ("mlp", {"hidden": (16,)}, (3, 8, 8, 1)),
    ("lenet5", {}, (3, 28, 28, 1)),
    ("lenet5", {}, (3, 8, 8, 1)),
    ("lenet5", {}, (3, 8, 8)),
    ("conv2", {"widths": (8, 32)}, (2, 32, 32, 3)),
    ("conv4", {"widths": (4, 4, 6, 6)}, (2, 32, 32, 3)),
    ("conv6", {"widths": (4, 4, 8, 8, 8, 8)}, (2, 32, 32, 3)),
    ("resnet20", {}, (2, 32, 32, 3)),
    ("vgg16", {"widths": (4,) * 13, "classifier_width": 8}, (2, 32, 32, 3)),
    ("wrn", {"depth": 10, "width": 1, "dropout_rate": 0.3}, (2, 32, 32, 3)),
]


@pytest.mark.parametrize("name,kwargs,shape", REAL)
def test_forward_shape_train_and_eval(name, kwargs, shape):
  model = models.create(name, 7, **kwargs)
  x = jax.random.uniform(jax.random.key(1), shape)
  params, state = model.init(jax.random.key(0), x)
  for train in (False, True):
    logits, _ = model.apply(params, state, x, train=train, key=jax.random.key(2))
    assert logits.shape == (shape[0], 7) and logits.dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(logits)))


@pytest.mark.parametrize("name,kwargs,shape,num_classes", [
    ("conv4", {}, (2, 32, 32, 3), 10),
    ("conv6", {}, (2, 32, 32, 3), 10),
    ("vgg16", {}, (2, 32, 32, 3), 100),
    ("resnet56", {}, (2, 32, 32, 3), 10),
    ("resnet110", {"shortcut": "B"}, (2, 32, 32, 3), 100),
    ("wrn", {"depth": 40, "width": 10, "dropout_rate": 0.3}, (2, 32, 32, 3), 10),
    ("resnet50", {}, (2, 224, 224, 3), 1000),
])
def test_abstract_output_shape(name, kwargs, shape, num_classes):
  model, params, state = abstract_init(name, shape, num_classes, **kwargs)
  x = jax.ShapeDtypeStruct(shape, jnp.float32)
  for train in (False, True):
    logits, new_state = jax.eval_shape(
        lambda p, s, x, t=train: model.apply(p, s, x, train=t, key=jax.random.key(0)),
        params, state, x)
    assert logits.shape == (shape[0], num_classes)
    assert jax.tree.structure(new_state) == jax.tree.structure(state)


# ---------------------------------------------------------------------------------------------
# parameter counts against hand formulas


def test_lenet_300_100_count():
  _, params, _ = abstract_init("mlp", (1, 784))
  expected = (784 * 300 + 300) + (300 * 100 + 100) + (100 * 10 + 10)
  assert expected == 266_610
  assert n_params(params) == expected
  assert params["dense_0"]["kernel"].shape == (784, 300)


@pytest.mark.parametrize("hidden", [(), (5,), (7, 3, 2)])
def test_mlp_count_general(hidden):
  _, params, _ = abstract_init("mlp", (1, 8, 8, 1), 4, hidden=hidden)
  widths = (64,) + hidden + (4,)
  assert n_params(params) == sum(dense_params(a, b) for a, b in zip(widths[:-1], widths[1:]))


def test_logistic_count():
  _, params, _ = abstract_init("logistic", (1, 28, 28, 1))
  assert n_params(params) == 784 * 10 + 10


@pytest.mark.parametrize("side,features", [(28, 5 * 5 * 16), (8, 2 * 2 * 16)])
def test_lenet5_count(side, features):
  _, params, _ = abstract_init("lenet5", (1, side, side, 1))
  expected = (conv_params(5, 1, 6, True) + conv_params(5, 6, 16, True) + dense_params(features, 120)
              + dense_params(120, 84) + dense_params(84, 10))
  assert n_params(params) == expected
  if side == 28:
    assert expected == 61_706  # LeNet-5's classic count on MNIST


def lottery_count(widths, num_classes=10, side=32, cin=3):
  total, prev = 0, cin
  for w in widths:
    total += conv_params(3, prev, w, True)
    prev = w
  final = side // 2 ** (len(widths) // 2)
  return (total + dense_params(final * final * prev, 256) + dense_params(256, 256)
          + dense_params(256, num_classes))


@pytest.mark.parametrize("name,widths,paper_millions", [
    ("conv2", (64, 64), 4.3),
    ("conv4", (64, 64, 128, 128), 2.4),
    ("conv6", (64, 64, 128, 128, 256, 256), None),
])
def test_lottery_convnet_counts(name, widths, paper_millions):
  _, params, _ = abstract_init(name, (1, 32, 32, 3))
  assert n_params(params) == lottery_count(widths)
  if paper_millions is not None:  # Frankle & Carbin (2019), Figure 2
    assert round(n_params(params) / 1e6, 1) == paper_millions


def test_vgg16_count():
  _, params, state = abstract_init("vgg16", (1, 32, 32, 3))
  widths = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
  expected, prev = 0, 3
  for w in widths:
    expected += conv_params(3, prev, w, False) + 2 * w  # conv + BN scale/offset
    prev = w
  expected += dense_params(512, 512) + 2 * 512 + dense_params(512, 10)
  assert n_params(params) == expected
  assert abs(expected - 1.5e7) / 1.5e7 < 0.01  # Li et al. (2017), Table 1
  assert n_params(state) == 2 * (sum(widths) + 512)


def cifar_resnet_count(n, shortcut, num_classes=10):
  total = conv_params(3, 3, 16, False) + 2 * 16
  cin = 16
  for stage, w in enumerate((16, 32, 64)):
    for b in range(n):
      total += conv_params(3, cin, w, False) + 2 * w + conv_params(3, w, w, False) + 2 * w
      if cin != w and shortcut == "B":
        total += conv_params(1, cin, w, False) + 2 * w
      cin = w
  return total + dense_params(64, num_classes)


@pytest.mark.parametrize("name,n,paper", [("resnet20", 3, 0.27e6), ("resnet56", 9, 0.85e6),
                                          ("resnet110", 18, 1.7e6)])
@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_cifar_resnet_counts(name, n, paper, shortcut):
  _, params, _ = abstract_init(name, (1, 32, 32, 3), shortcut=shortcut)
  assert n_params(params) == cifar_resnet_count(n, shortcut)
  assert abs(n_params(params) - paper) / paper < 0.02


def test_cifar_resnet_default_shortcut_reproduces_paper_counts():
  _, params20, _ = abstract_init("resnet20", (1, 32, 32, 3))
  _, params56, _ = abstract_init("resnet56", (1, 32, 32, 3))
  assert round(n_params(params20) / 1e6, 2) == 0.27
  assert round(n_params(params56) / 1e6, 2) == 0.85
  assert "shortcut_conv" not in params56["block_9"]


def test_resnet50_count():
  _, params, state = abstract_init("resnet50", (1, 224, 224, 3), 1000)
  assert n_params(params) == 25_557_032  # torchvision's resnet50 count
  assert params["block_3"]["conv_1"]["kernel"].shape == (3, 3, 128, 128)
  assert params["block_15"]["conv_2"]["kernel"].shape == (1, 1, 512, 2048)
  assert params["head"]["kernel"].shape == (2048, 1000)


def wrn_count(depth, k, num_classes=10):
  n = (depth - 4) // 6
  total, cin = conv_params(3, 3, 16, False), 16
  for w in (16 * k, 32 * k, 64 * k):
    for _ in range(n):
      total += 2 * cin + conv_params(3, cin, w, False) + 2 * w + conv_params(3, w, w, False)
      if cin != w:
        total += conv_params(1, cin, w, False)
      cin = w
  return total + 2 * cin + dense_params(cin, num_classes)


@pytest.mark.parametrize("depth,width,paper_millions", [(28, 10, 36.5), (40, 10, None),
                                                        (40, 4, 8.9), (16, 8, 11.0)])
def test_wrn_counts(depth, width, paper_millions):
  _, params, _ = abstract_init("wrn", (1, 32, 32, 3), depth=depth, width=width)
  assert n_params(params) == wrn_count(depth, width)
  if paper_millions is not None:  # Zagoruyko & Komodakis (2016), Table 1/4
    assert round(n_params(params) / 1e6, 1) == paper_millions
  assert params[f"block_{3 * ((depth - 4) // 6) - 1}"]["conv_1"]["kernel"].shape == (
      3, 3, 64 * width, 64 * width)


# ---------------------------------------------------------------------------------------------
# batch norm and dropout


def test_bn_updates_in_train_mode_only_and_matches_momentum_formula():
  model = models.create("resnet20", 7)
  x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
  params, state = model.init(jax.random.key(0), x)
  _, eval_state = model.apply(params, state, x, train=False)
  chex_equal = jax.tree.map(lambda a, b: np.array_equal(a, b), eval_state, state)
  assert all(jax.tree.leaves(chex_equal))

  _, train_state = model.apply(params, state, x, train=True)
  assert jax.tree.structure(train_state) == jax.tree.structure(state)
  changed = jax.tree.map(lambda a, b: not np.allclose(a, b), train_state, state)
  assert all(jax.tree.leaves(changed))
  # Independent check of the stem BN: running = 0.9 * running + 0.1 * batch statistic.
  kernel = np.asarray(params["stem_conv"]["kernel"], np.float64)
  xpad = np.pad(np.asarray(x, np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
  y = sum(np.einsum("nhwc,co->nhwo", xpad[:, i:i + 32, j:j + 32, :], kernel[i, j])
          for i in range(3) for j in range(3))
  stats = train_state["batch_stats"]["stem_bn"]
  np.testing.assert_allclose(stats["mean"], 0.1 * y.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(stats["var"], 0.9 + 0.1 * y.var(axis=(0, 1, 2)), rtol=1e-4)


def test_eval_mode_uses_running_statistics():
  model = models.create("vgg16", 7, widths=(4,) * 13, classifier_width=8)
  x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
  params, state = model.init(jax.random.key(0), x)
  # In eval mode each example's logits do not depend on the rest of the batch.
  full, _ = model.apply(params, state, x, train=False)
  single, _ = model.apply(params, state, x[:1], train=False)
  np.testing.assert_allclose(full[:1], single, rtol=1e-5, atol=1e-6)
  full_train, _ = model.apply(params, state, x, train=True)
  single_train, _ = model.apply(params, state, x[:1], train=True)
  assert not np.allclose(full_train[:1], single_train[:1])


def test_wrn_dropout_depends_on_key_in_train_mode_only():
  model = models.create("wrn", 7, depth=10, width=1, dropout_rate=0.3)
  x = jax.random.uniform(jax.random.key(1), (2, 32, 32, 3))
  params, state = model.init(jax.random.key(0), x)
  a, _ = model.apply(params, state, x, train=True, key=jax.random.key(10))
  a2, _ = model.apply(params, state, x, train=True, key=jax.random.key(10))
  b, _ = model.apply(params, state, x, train=True, key=jax.random.key(11))
  np.testing.assert_array_equal(a, a2)
  assert not np.allclose(a, b)
  e1, _ = model.apply(params, state, x, train=False, key=jax.random.key(10))
  e2, _ = model.apply(params, state, x, train=False)
  np.testing.assert_array_equal(e1, e2)


# ---------------------------------------------------------------------------------------------
# widths overrides and physical shrinking


def test_conv_widths_override_kernel_shapes():
  _, params, _ = abstract_init("conv4", (1, 32, 32, 3), widths=(8, 16, 24, 32))
  assert params["conv_0"]["kernel"].shape == (3, 3, 3, 8)
  assert params["conv_1"]["kernel"].shape == (3, 3, 8, 16)
  assert params["conv_3"]["kernel"].shape == (3, 3, 24, 32)
  assert params["dense_0"]["kernel"].shape == (8 * 8 * 32, 256)


def test_vgg_widths_override_kernel_shapes():
  widths = tuple(range(5, 18))
  _, params, state = abstract_init("vgg16", (1, 32, 32, 3), widths=widths)
  prev = 3
  for i, w in enumerate(widths):
    assert params[f"conv_{i}"]["kernel"].shape == (3, 3, prev, w)
    assert params[f"bn_{i}"]["scale"].shape == (w,)
    assert state["batch_stats"][f"bn_{i}"]["mean"].shape == (w,)
    prev = w
  assert params["dense_0"]["kernel"].shape == (17, 512)


def test_resnet_inner_widths_kernel_shapes():
  inner = (3, 5, 7, 9, 11, 13, 15, 17, 19)
  _, params, _ = abstract_init("resnet20", (1, 32, 32, 3), inner_widths=inner)
  cin = 16
  for i, w in enumerate(inner):
    out = (16, 32, 64)[i // 3]
    block = params[f"block_{i}"]
    assert block["conv_0"]["kernel"].shape == (3, 3, cin, w)
    assert block["bn_0"]["scale"].shape == (w,)
    assert block["conv_1"]["kernel"].shape == (3, 3, w, out)
    cin = out


def _randomize_bn(state, seed):
  """Non-trivial running statistics so that the shrink test exercises them."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda l: np.asarray(l) + rng.uniform(0.0, 0.5, l.shape).astype(np.float32),
                      state)


def test_resnet_shrunk_by_inner_widths_matches_zeroed_full_net():
  """Li et al. (2017) filter pruning: removing filters of ``block_i/conv_0`` (with their BN entries
  and the matching input channels of ``conv_1``) equals zeroing them in the full net."""
  full = models.create("resnet20", 7)
  x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
  params, state = full.init(jax.random.key(0), x)
  state = _randomize_bn(state, 5)
  rng = np.random.default_rng(0)
  keep, inner = {}, []
  for i in range(9):
    w = (16, 32, 64)[i // 3]
    keep[i] = np.sort(rng.choice(w, size=w // 2 + i % 3, replace=False))
    inner.append(len(keep[i]))

  zeroed = jax.tree.map(np.array, params)
  small = jax.tree.map(np.array, params)
  small_state = jax.tree.map(np.array, state)
  for i, kept in keep.items():
    b = f"block_{i}"
    dropped = np.setdiff1d(np.arange(zeroed[b]["bn_0"]["scale"].shape[0]), kept)
    zeroed[b]["bn_0"]["scale"][dropped] = 0.0
    zeroed[b]["bn_0"]["bias"][dropped] = 0.0
    small[b]["conv_0"]["kernel"] = small[b]["conv_0"]["kernel"][..., kept]
    small[b]["bn_0"] = {k: v[kept] for k, v in small[b]["bn_0"].items()}
    small[b]["conv_1"]["kernel"] = small[b]["conv_1"]["kernel"][:, :, kept, :]
    small_state["batch_stats"][b]["bn_0"] = {
        k: v[kept] for k, v in small_state["batch_stats"][b]["bn_0"].items()}

  shrunk = models.create("resnet20", 7, inner_widths=inner)
  expected, _ = full.apply(zeroed, state, x, train=False)
  got, _ = shrunk.apply(small, small_state, x, train=False)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
  ref_shapes = jax.tree.map(lambda a: a.shape,
                            jax.eval_shape(shrunk.init, jax.random.key(0), x)[0])
  assert jax.tree.map(lambda a: a.shape, small) == ref_shapes


def test_conv4_shrunk_by_widths_matches_zeroed_full_net():
  """Dropping a filter of the last conv drops its ``H * W`` rows of ``dense_0`` (NHWC flatten)."""
  full = models.create("conv4", 7, widths=(4, 4, 6, 6))
  x = jax.random.uniform(jax.random.key(1), (2, 32, 32, 3))
  params, state = full.init(jax.random.key(0), x)
  keep1, keep3 = np.array([0, 2, 3]), np.array([1, 4])
  zeroed = jax.tree.map(np.array, params)
  for layer, kept in (("conv_1", keep1), ("conv_3", keep3)):
    dropped = np.setdiff1d(np.arange(zeroed[layer]["bias"].shape[0]), kept)
    zeroed[layer]["kernel"][..., dropped] = 0.0
    zeroed[layer]["bias"][dropped] = 0.0
  small = jax.tree.map(np.array, params)
  small["conv_1"] = {"kernel": small["conv_1"]["kernel"][..., keep1],
                     "bias": small["conv_1"]["bias"][keep1]}
  small["conv_2"]["kernel"] = small["conv_2"]["kernel"][:, :, keep1, :]
  small["conv_3"] = {"kernel": small["conv_3"]["kernel"][..., keep3],
                     "bias": small["conv_3"]["bias"][keep3]}
  dense = small["dense_0"]["kernel"].reshape(8, 8, 6, 256)[:, :, keep3, :]
  small["dense_0"]["kernel"] = dense.reshape(-1, 256)
  shrunk = models.create("conv4", 7, widths=(4, 3, 6, 2))
  expected, _ = full.apply(zeroed, state, x, train=False)
  got, _ = shrunk.apply(small, state, x, train=False)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# compute dtype


def test_bfloat16_compute_keeps_float32_params_and_logits():
  x = jax.random.uniform(jax.random.key(1), (2, 32, 32, 3))
  f32 = models.create("vgg16", 7, widths=(4,) * 13, classifier_width=8)
  bf16 = models.create("vgg16", 7, widths=(4,) * 13, classifier_width=8, dtype=jnp.bfloat16)
  params, state = bf16.init(jax.random.key(0), x)
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves((params, state)))
  logits, new_state = bf16.apply(params, state, x, train=True)
  assert logits.dtype == jnp.float32
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(new_state))
  # Eval mode: train-mode BN over 2 examples of a 1x1 map amplifies rounding, not a fair check.
  logits, _ = bf16.apply(params, state, x, train=False)
  ref, _ = f32.apply(params, state, x, train=False)
  assert not np.array_equal(logits, ref)
  np.testing.assert_allclose(logits, ref, rtol=0.1, atol=0.1 * float(np.abs(ref).max()))


@pytest.mark.parametrize("name,shape", [("mlp", (2, 8, 8, 1)), ("lenet5", (2, 8, 8, 1)),
                                        ("logistic", (2, 8, 8, 1))])
def test_bfloat16_small_models(name, shape):
  model = models.create(name, 3, dtype=jnp.bfloat16)
  x = jax.random.uniform(jax.random.key(1), shape)
  params, state = model.init(jax.random.key(0), x)
  logits, _ = model.apply(params, state, x, train=False)
  assert logits.dtype == jnp.float32 and logits.shape == (2, 3)
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))


def test_init_is_deterministic_and_kernels_scaled_by_scheme():
  x = jnp.zeros((2, 32, 32, 3))
  he = models.create("conv2", 7, widths=(8, 32), kernel_init="he_normal")
  p1, _ = he.init(jax.random.key(3), x)
  p2, _ = he.init(jax.random.key(3), x)
  assert all(jax.tree.leaves(jax.tree.map(np.array_equal, p1, p2)))
  # He normal, fan-out for convs: std = sqrt(2 / (3 * 3 * 32)); fan-in for dense.
  np.testing.assert_allclose(np.std(p1["conv_1"]["kernel"]), np.sqrt(2 / (9 * 32)), rtol=0.05)
  np.testing.assert_allclose(np.std(p1["dense_0"]["kernel"]), np.sqrt(2 / 8192), rtol=0.03)
  assert not np.any(p1["dense_0"]["bias"])
  # The Lottery Ticket default: Glorot, variance 2 / (fan_in + fan_out), receptive field included.
  glorot, _ = models.create("conv2", 7, widths=(8, 32)).init(jax.random.key(3), x)
  np.testing.assert_allclose(np.std(glorot["conv_1"]["kernel"]), np.sqrt(2 / (9 * 8 + 9 * 32)),
                             rtol=0.05)
  np.testing.assert_allclose(np.std(glorot["dense_0"]["kernel"]), np.sqrt(2 / (8192 + 256)),
                             rtol=0.03)
  mlp, _ = models.create("mlp", 10).init(jax.random.key(0), jnp.zeros((1, 784)))
  np.testing.assert_allclose(np.std(mlp["dense_1"]["kernel"]), np.sqrt(2 / 400), rtol=0.03)
  # Renda et al.'s TF models: conv truncated normal 1 / fan_in, dense N(0, 0.01^2).
  tf, _ = models.create("resnet20", 10, kernel_init="tf_official").init(jax.random.key(0), x)
  np.testing.assert_allclose(np.std(tf["block_8"]["conv_1"]["kernel"]), np.sqrt(1 / (9 * 64)),
                             rtol=0.03)
  np.testing.assert_allclose(np.std(tf["head"]["kernel"]), 0.01, rtol=0.15)
  with pytest.raises(ValueError, match="kernel_init"):
    models.create("mlp", 10, kernel_init="zeros")


def test_stage_projection_resnet_matches_tf_official_layout():
  """Renda et al.'s TF ResNet v1 projects at the first block of every stage, stage 1 included."""
  _, params, state = abstract_init("resnet20", (1, 32, 32, 3), shortcut="stage_projection",
                                   bn_momentum=0.997)
  assert sorted(k for k in params if "shortcut_conv" in params[k]) == ["block_0", "block_3",
                                                                       "block_6"]
  assert params["block_0"]["shortcut_conv"]["kernel"].shape == (1, 1, 16, 16)
  assert n_params(params) == cifar_resnet_count(3, "B") + 16 * 16 + 2 * 16 == 272_762
  model = models.create("resnet20", 10, shortcut="stage_projection", bn_momentum=0.997)
  x = jax.random.normal(jax.random.key(1), (4, 32, 32, 3))
  p, s = model.init(jax.random.key(0), x)
  _, new = model.apply(p, s, x, train=True)
  mean = np.asarray(jnp.mean(jnp.asarray(model.module.apply(
      {"params": p, **s}, x, train=False, capture_intermediates=True,
      mutable=["intermediates"])[1]["intermediates"]["stem_conv"]["__call__"][0]), (0, 1, 2)))
  # running = 0.997 * running + 0.003 * batch mean (flax momentum convention).
  np.testing.assert_allclose(np.asarray(new["batch_stats"]["stem_bn"]["mean"]), 0.003 * mean,
                             rtol=1e-4, atol=1e-7)


def test_vgg16_without_hidden_classifier_is_renda_nofc():
  _, params, _ = abstract_init("vgg16", (1, 32, 32, 3), classifier_width=0)
  assert "dense_0" not in params and "bn_dense" not in params
  convs = sum(9 * a * b for a, b in zip((3,) + models.convnets.VGG16_WIDTHS[:-1],
                                        models.convnets.VGG16_WIDTHS))
  assert n_params(params) == convs + 2 * sum(models.convnets.VGG16_WIDTHS) + 512 * 10 + 10
  assert n_params(params) == 14_724_042
