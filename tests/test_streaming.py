"""Streaming input (lipprune.data.streaming) on tiny datasets built by tfds builders defined here.

The builders yield PNG bytes encoded with PIL, so preparing the ArrayRecord files needs no
TensorFlow (tfds only needs TensorFlow to *encode* numpy images); reading uses tfds.data_source.
The reference for every batch is the generator's own numpy arrays, batched by BatchSampler.
"""
import io

import jax
import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")
PIL_Image = pytest.importorskip("PIL.Image")

from lipprune import models, train as lt  # noqa: E402
from lipprune.data.iterators import BatchSampler  # noqa: E402
from lipprune.data.streaming import StreamingSource, resize_center_crop, train_order_key  # noqa: E402

NUM_TRAIN, SIDE, NUM_CLASSES, BATCH = 64, 8, 4, 16
VAR_SHAPES = [(8, 12, 3), (12, 8, 3), (8, 8, 3), (10, 15, 3), (9, 8, 3), (16, 24, 3)]


def _png(image: np.ndarray) -> bytes:
  buf = io.BytesIO()
  PIL_Image.fromarray(image).save(buf, format="PNG")
  return buf.getvalue()


def fixed_examples():
  """The 64 train images (8x8x3 uint8) and labels the fixed-size builder writes."""
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (NUM_TRAIN, SIDE, SIDE, 3), dtype=np.uint8)
  labels = rng.integers(0, NUM_CLASSES, NUM_TRAIN).astype(np.int32)
  return images, labels


def var_examples():
  """Images of several sizes; the (10, 15) one is a constant colour (a resize keeps it exactly)."""
  rng = np.random.default_rng(1)
  images = [rng.integers(0, 256, s, dtype=np.uint8) for s in VAR_SHAPES]
  images[3] = np.full(VAR_SHAPES[3], 77, np.uint8)
  return images, np.arange(len(images), dtype=np.int32) % NUM_CLASSES


class LippruneStreamFixed(tfds.core.GeneratorBasedBuilder):
  """64 random 8x8x3 images with labels in [0, 4)."""

  VERSION = tfds.core.Version("1.0.0")
  # No checksums file; also skips tfds' probe of the module path (it needs importlib_resources).
  code_path = None

  def _info(self):
    # disable_shuffling: records stay in generation order, so fixed_examples() is the reference.
    return tfds.core.DatasetInfo(builder=self, disable_shuffling=True,
                                 features=tfds.features.FeaturesDict({
                                     "image": tfds.features.Image(shape=(SIDE, SIDE, 3)),
                                     "label": tfds.features.ClassLabel(num_classes=NUM_CLASSES)}))

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples()}

  def _generate_examples(self):
    images, labels = fixed_examples()
    for i, (image, label) in enumerate(zip(images, labels)):
      yield i, {"image": _png(image), "label": int(label)}


class LippruneStreamVarsize(tfds.core.GeneratorBasedBuilder):
  """Six images of different sizes, like ImageNet's."""

  VERSION = tfds.core.Version("1.0.0")
  # No checksums file; also skips tfds' probe of the module path (it needs importlib_resources).
  code_path = None

  def _info(self):
    # disable_shuffling: records stay in generation order, so fixed_examples() is the reference.
    return tfds.core.DatasetInfo(builder=self, disable_shuffling=True,
                                 features=tfds.features.FeaturesDict({
                                     "image": tfds.features.Image(shape=(None, None, 3)),
                                     "label": tfds.features.ClassLabel(num_classes=NUM_CLASSES)}))

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples()}

  def _generate_examples(self):
    images, labels = var_examples()
    for i, (image, label) in enumerate(zip(images, labels)):
      yield i, {"image": _png(image), "label": int(label)}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("tfds")
  for cls in (LippruneStreamFixed, LippruneStreamVarsize):
    cls(data_dir=str(root), file_format="array_record").download_and_prepare()
  return str(root)


@pytest.fixture(scope="module")
def arrays():
  images, labels = fixed_examples()
  x = images.astype(np.float32)
  x /= np.float32(255.0)
  return {"x": x, "y": labels}


def _source(data_dir, **kw):
  kw.setdefault("key", jax.random.key(7))
  kw.setdefault("batch_size", BATCH)
  return StreamingSource("lipprune_stream_fixed", split="train", data_dir=data_dir, **kw)


@pytest.mark.parametrize("num_threads,prefetch", [(1, 0), (3, 2)])
def test_single_process_batches_equal_batch_sampler(data_dir, arrays, num_threads, prefetch):
  key = jax.random.key(7)
  sampler = BatchSampler(key, NUM_TRAIN, BATCH)
  with _source(data_dir, key=key, num_threads=num_threads, prefetch=prefetch,
               process_index=0, process_count=1) as source:
    assert source.num_examples == NUM_TRAIN and source.steps_per_epoch == NUM_TRAIN // BATCH
    assert source.process_local
    # Two and a half epochs, then out-of-order reads (a resume) that skip the prefetched batches.
    for i in list(range(10)) + [3, 9, 0, 4]:
      got, want = source.batch(i), sampler.batch(arrays, i)
      assert got["x"].dtype == np.float32 and got["y"].dtype == np.int32
      assert got["x"].shape == (BATCH, SIDE, SIDE, 3)
      np.testing.assert_array_equal(got["x"], want["x"])
      np.testing.assert_array_equal(got["y"], want["y"])
  # Epochs are reshuffled: batch 0 of epoch 0 and of epoch 1 differ.
  assert not np.array_equal(sampler.indices(0), sampler.indices(NUM_TRAIN // BATCH))


@pytest.mark.parametrize("processes", [2, 4])
def test_process_local_batches_concatenate_to_the_global_batch(data_dir, processes):
  full = _source(data_dir, process_index=0, process_count=1)
  parts = [_source(data_dir, process_index=p, process_count=processes) for p in range(processes)]
  for i in (0, 5):
    local = [s.batch(i) for s in parts]
    assert all(b["x"].shape[0] == BATCH // processes for b in local)
    want = full.batch(i)
    for k in ("x", "y"):
      np.testing.assert_array_equal(np.concatenate([b[k] for b in local]), want[k])
  # Disjoint slices: the processes read no example twice.
  idx = np.concatenate([s.local_indices(2) for s in parts])
  assert len(set(idx.tolist())) == BATCH


def test_train_with_streaming_source_equals_in_memory(data_dir, arrays):
  model = models.create("mlp", NUM_CLASSES, hidden=(16,))
  params, model_state = model.init(jax.random.key(0), arrays["x"][:2])
  tx = lt.direction("sgd", momentum=0.9)
  sched = lt.schedule("constant", base_lr=0.1, total_steps=6)
  step = jax.jit(lt.make_train_step(lt.cross_entropy(model), tx, sched))
  run_key = jax.random.key(3)
  common = dict(batch_size=BATCH, num_steps=6, key=run_key, log_every=0)

  in_memory = lt.train(lt.TrainState.create(params, model_state, tx), step, arrays, **common)
  with _source(data_dir, key=train_order_key(run_key), prefetch=1) as source:
    streamed = lt.train(lt.TrainState.create(params, model_state, tx), step, source, **common)
  assert int(streamed.step) == 6
  moved = jax.tree.map(lambda a, b: not np.array_equal(a, b), params, streamed.params)
  assert all(jax.tree.leaves(moved))
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(streamed.params),
               jax.device_get(in_memory.params))


def test_variable_size_images_resize_and_center_crop(data_dir):
  images, labels = var_examples()
  source = StreamingSource("lipprune_stream_varsize", split="train", data_dir=data_dir,
                           batch_size=len(images), key=jax.random.key(0), image_size=8,
                           crop_fraction=1.0, process_index=0, process_count=1)
  batch = source.read(range(len(images)))
  assert batch["x"].shape == (len(images), 8, 8, 3) and batch["x"].dtype == np.float32
  np.testing.assert_array_equal(batch["y"], labels)
  # Shorter side already 8: no resampling, just the central 8x8 window of the original.
  for k in (0, 1, 2):
    h, w, _ = images[k].shape
    top, left = (h - 8) // 2, (w - 8) // 2
    np.testing.assert_array_equal(batch["x"][k] * 255, images[k][top:top + 8, left:left + 8])
  # A constant image stays that constant through a bilinear resize (10x15 -> 8x12) and crop.
  np.testing.assert_allclose(batch["x"][3], 77 / 255, rtol=1e-6)
  assert batch["x"].min() >= 0 and batch["x"].max() <= 1
  # Without image_size the differing shapes are an error that says what to do.
  raw = StreamingSource("lipprune_stream_varsize", split="train", data_dir=data_dir,
                        batch_size=2, key=jax.random.key(0), process_index=0, process_count=1)
  with pytest.raises(ValueError, match="image_size"):
    raw.read([0, 1])


def test_resize_center_crop_geometry():
  # A horizontal ramp: after a 2x downsample of a 16x32 image and a centre crop of 8x8 from the
  # resulting 8x16 image, the columns come from the middle of the ramp and increase left to right.
  ramp = np.tile(np.arange(32, dtype=np.uint8)[None, :, None] * 8, (16, 1, 1))
  out = resize_center_crop(ramp, 8, crop_fraction=1.0)
  assert out.shape == (8, 8, 1) and out.dtype == np.uint8
  cols = out[0, :, 0].astype(int)
  assert np.all(np.diff(cols) > 0)
  assert 64 <= cols[0] and cols[-1] <= 192  # resized columns 4..11 of 16 = source columns 8..23
  # crop_fraction < 1: resize the shorter side to round(8 / 0.5) = 16 (a no-op here), then crop.
  out = resize_center_crop(ramp, 8, crop_fraction=0.5)
  np.testing.assert_array_equal(out, ramp[4:12, 12:20])


def test_rejects_bad_arguments(data_dir):
  with pytest.raises(ValueError, match="divisible by the number of processes"):
    _source(data_dir, batch_size=15, process_index=0, process_count=2)
  with pytest.raises(ValueError, match="process_index"):
    _source(data_dir, process_index=2, process_count=2)
  with pytest.raises(ValueError, match="exceeds"):
    _source(data_dir, batch_size=NUM_TRAIN + 1, process_count=1, process_index=0)
  with pytest.raises(ValueError, match="crop_fraction"):
    _source(data_dir, image_size=8, crop_fraction=1.5)
