"""Streaming input for datasets that do not fit in host memory (ImageNet), sharded per process.

A `StreamingSource` is a *batch source* for `lipprune.train.train`: ``source.batch(i)`` returns this
process's rows of global batch ``i`` as a pure function of ``i``, read on demand by random access
from a tfds ``ArrayRecord`` data source (``tfds.data_source``). Nothing but the current (and, with
prefetching, the next few) batches is ever in memory.

Batch order (identical to `lipprune.data.iterators.BatchSampler` with the same key):

  perm_e = jax.random.permutation(fold_in(key, e), N)       # epoch e's shuffle
  global batch i = examples perm_e[j*B : (j+1)*B],  (e, j) = divmod(i, N // B)

and process ``p`` of ``P`` reads only the contiguous slice ``[p*B/P, (p+1)*B/P)`` of that global
batch, which is exactly what ``jax.make_array_from_process_local_data`` (used by
``shard_batch(..., process_local=True)``) expects: the global batch is the concatenation of the
processes' local batches in process order. Every process computes the same permutation (it depends
only on the key), so no coordination is needed. `lipprune.train.train` batches an in-memory dict
with ``BatchSampler(fold_in(run_key, 0), ...)``; pass ``key=train_order_key(run_key)`` to stream the
very same batches (`tests/test_streaming.py` checks that both give identical parameters).

Images: ``x`` is float32 NHWC ``pixel / 255`` in [0, 1], ``y`` int32. With ``image_size=None`` every
image must already have one shape (MNIST, CIFAR, ...). With ``image_size=S`` each image is resized
on the host (PIL, bilinear on uint8) so that its shorter side is ``round(S / crop_fraction)`` and
then center-cropped to ``S x S`` -- the standard ImageNet evaluation transform (256 -> 224 for
``crop_fraction=0.875``). Random crops and flips belong on the device
(`lipprune.data.augment.make_augment` as the train step's ``preprocess``), which keeps the host path
deterministic.

Why plain ``tfds.data_source`` + numpy rather than grain: grain is not a dependency, and the loop
needs only "batch i as a function of i", which random access gives directly; decoding runs in a
small thread pool (``num_threads``) and the next batches can be prefetched on a background thread
(``prefetch``). Reading needs no TensorFlow. Preparing a catalog dataset's ArrayRecord files needs
TensorFlow once (``tfds build NAME --file_format=array_record``); a custom builder that yields
already-encoded PNG/JPEG bytes (or raw tensors) prepares without it.
"""
from __future__ import annotations

import concurrent.futures
import os
import threading
from typing import Any, Sequence

import jax
import numpy as np

from lipprune.data import catalog
from lipprune.data.iterators import epoch_permutation, steps_per_epoch


def train_order_key(run_key: jax.Array) -> jax.Array:
  """The batch-order key `lipprune.train.train` gives its in-memory ``BatchSampler`` for a run key.

  ``StreamingSource(..., key=train_order_key(run_key))`` streams the batches that
  ``train(..., data=arrays, key=run_key)`` would draw from the same examples held in memory.
  """
  return jax.random.fold_in(run_key, 0)


def resize_center_crop(image: np.ndarray, image_size: int,
                       crop_fraction: float = 0.875) -> np.ndarray:
  """Resizes ``image`` (H, W, C) uint8 so its shorter side is ``round(image_size / crop_fraction)``
  (PIL bilinear; the aspect ratio kept, the longer side rounded), then takes the central
  ``image_size x image_size`` window (offsets ``(H' - S) // 2``, ``(W' - S) // 2``).

  An image whose shorter side already has the target length is not resampled, only cropped.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  image = np.asarray(image)
  if image.ndim != 3:
    raise ValueError(f"expected an (H, W, C) image, got shape {image.shape}")
  h, w, c = image.shape
  target = int(round(image_size / crop_fraction))
  if target < image_size:
    raise ValueError(f"crop_fraction={crop_fraction} must be in (0, 1]")
  scale = target / min(h, w)
  new_h, new_w = max(target, int(round(h * scale))), max(target, int(round(w * scale)))
  if (new_h, new_w) != (h, w):
    if c == 1:
      pil = Image.fromarray(image[..., 0]).resize((new_w, new_h), Image.BILINEAR)
      image = np.asarray(pil)[..., None]
    else:
      image = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))
  top, left = (new_h - image_size) // 2, (new_w - image_size) // 2
  return image[top:top + image_size, left:left + image_size]


def _num_classes(source, label_key: str) -> int | None:
  """The label feature's class count from the tfds metadata (``None`` if the source has none)."""
  try:
    return int(source.dataset_info.features[label_key].num_classes)
  except (AttributeError, KeyError, TypeError):
    return None


class StreamingSource:
  """Process-local batches of a tfds split, streamed by random access (see the module docstring).

  Usage::

    source = StreamingSource("imagenet2012", split="train", data_dir=DIR, batch_size=1024,
                             key=train_order_key(run_key), image_size=224, prefetch=2)
    state = lipprune.train.train(state, step, source, batch_size=1024, num_steps=..., key=run_key)
    source.close()

  Args:
    name: a tfds dataset name, opened with ``tfds.data_source(name, split=, data_dir=)``;
      or an already opened random-access source (``len(src)``, ``src[i]`` -> feature dict and
      optionally ``src.__getitems__(indices)``).
    split: the split to read (ignored when ``name`` is a source object).
    data_dir: the tfds data directory (default: tfds' own, ``$TFDS_DATA_DIR``).
    batch_size: the *global* batch size ``B``, divisible by ``process_count``; ``None`` (with
      ``key=None``) opens a read-only source for evaluation: ``read``, ``len`` and ``num_classes``
      work, ``batch`` raises.
    key: batch-order key (``BatchSampler`` semantics); use `train_order_key` to match `train`.
    image_size: ``None`` (images share one shape) or ``S`` to resize and center-crop to ``S x S``.
    crop_fraction: the center crop's share of the resized shorter side (with ``image_size``).
    image_key, label_key: the feature names of the image (uint8 HWC) and of the integer label.
    process_index, process_count: this process and the number of processes (default: JAX's).
    num_threads: threads decoding each batch (examples split into ``num_threads`` contiguous chunks;
      the batch is the same for any value).
    prefetch: how many batches ahead to read on one background thread (0 disables it). Batches are
      a pure function of ``i``, so prefetching never changes what ``batch(i)`` returns; a request
      for a batch that was not prefetched (a resume, a jump) is read synchronously.
    download: let tfds download and prepare the data if it is absent (needs network, and for most
      catalog datasets TensorFlow).

  Attributes:
    num_examples: the split's size (also ``len(source)``).
    num_classes: the label feature's class count from the tfds metadata, or ``None``.
  """

  process_local = True

  def __init__(self, name: str | Any, *, split: str = "train", data_dir: str | None = None,
               batch_size: int | None, key: jax.Array | None, image_size: int | None = None,
               crop_fraction: float = 0.875, image_key: str = "image", label_key: str = "label",
               process_index: int | None = None, process_count: int | None = None,
               num_threads: int = 1, prefetch: int = 0, download: bool = False):
    if isinstance(name, str):
      data_dir = (os.path.expanduser(os.fspath(data_dir)) if data_dir is not None
                  else catalog.default_data_dir())
      # Missing data fails fast naming the dataset, the directory and how to prepare it.
      self.source = catalog._open_or_explain(  # pylint: disable=protected-access
          name, split, data_dir, download, None)
      self.name = f"{name}:{split}"
    else:
      self.source, self.name = name, type(name).__name__
    self.process_index = jax.process_index() if process_index is None else int(process_index)
    self.process_count = jax.process_count() if process_count is None else int(process_count)
    if not 0 <= self.process_index < self.process_count:
      raise ValueError(f"process_index={self.process_index} not in [0, {self.process_count})")
    if (batch_size is None) != (key is None):
      raise ValueError("batch_size and key are both given (a training source) or both None "
                       "(a read-only source)")
    if batch_size is not None and batch_size % self.process_count:
      raise ValueError(f"batch_size={batch_size} must be divisible by the number of processes "
                       f"({self.process_count})")
    if image_size is not None and image_size <= 0:
      raise ValueError(f"image_size must be positive or None, got {image_size}")
    if not 0.0 < crop_fraction <= 1.0:
      raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction}")
    if num_threads < 1 or prefetch < 0:
      raise ValueError(f"need num_threads >= 1 and prefetch >= 0, got {num_threads}, {prefetch}")
    self.key = key
    self.num_examples = len(self.source)
    self.num_classes = _num_classes(self.source, label_key)
    if batch_size is None:
      self.batch_size = self.local_batch_size = self.steps_per_epoch = None
    else:
      self.batch_size = int(batch_size)
      self.local_batch_size = self.batch_size // self.process_count
      self.steps_per_epoch = steps_per_epoch(self.num_examples, self.batch_size)
    self.image_size, self.crop_fraction = image_size, float(crop_fraction)
    self.image_key, self.label_key = image_key, label_key
    self.num_threads, self.prefetch = int(num_threads), int(prefetch)

    self._lock = threading.Lock()  # guards the permutation cache and the prefetch table
    self._perms: dict[int, np.ndarray] = {}
    self._pending: dict[int, concurrent.futures.Future] = {}
    self._decoders = (concurrent.futures.ThreadPoolExecutor(self.num_threads, "lipprune-decode")
                      if self.num_threads > 1 else None)
    self._prefetcher = (concurrent.futures.ThreadPoolExecutor(1, "lipprune-prefetch")
                        if self.prefetch else None)

  def __len__(self) -> int:
    return self.num_examples

  # -- which examples --------------------------------------------------------------------------

  def _permutation(self, epoch: int) -> np.ndarray:
    with self._lock:
      perm = self._perms.get(epoch)
    if perm is None:
      perm = epoch_permutation(self.key, epoch, self.num_examples)
      with self._lock:
        self._perms[epoch] = perm
        for old in [e for e in self._perms if e < epoch - 1]:  # keep this epoch and the last
          del self._perms[old]
    return perm

  def global_indices(self, i: int) -> np.ndarray:
    """Example indices of global batch ``i`` (all processes), shape (batch_size,)."""
    if self.batch_size is None:
      raise ValueError(f"{self.name} was opened read-only (batch_size=None); it has no batches")
    epoch, j = divmod(int(i), self.steps_per_epoch)
    return self._permutation(epoch)[j * self.batch_size:(j + 1) * self.batch_size]

  def local_indices(self, i: int) -> np.ndarray:
    """Example indices this process reads for global batch ``i``, shape (local_batch_size,)."""
    batch = self.global_indices(i)
    start = self.process_index * self.local_batch_size
    return batch[start:start + self.local_batch_size]

  # -- reading ---------------------------------------------------------------------------------

  def _image(self, image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
      image = image[..., None]
    if self.image_size is not None:
      image = resize_center_crop(image, self.image_size, self.crop_fraction)
    return image

  def _read(self, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    indices = [int(k) for k in indices]
    getitems = getattr(self.source, "__getitems__", None)
    records = getitems(indices) if getitems is not None else [self.source[k] for k in indices]
    images = [self._image(r[self.image_key]) for r in records]
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
      raise ValueError(f"{self.name}: images of different shapes {sorted(shapes)}; pass "
                       "image_size=S to resize and center-crop them to S x S")
    labels = np.asarray([r[self.label_key] for r in records], np.int32)
    return np.stack(images), labels

  def read(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
    """The examples at ``indices`` as ``{'x': float32 NHWC in [0, 1], 'y': int32}``."""
    indices = np.asarray(indices, np.int64)
    if self._decoders is None or len(indices) < 2:
      parts = [self._read(indices)]
    else:
      chunks = [c for c in np.array_split(indices, self.num_threads) if len(c)]
      parts = list(self._decoders.map(self._read, chunks))
    images = np.concatenate([p[0] for p in parts])
    if images.dtype != np.uint8:
      raise ValueError(f"{self.name}: expected uint8 images, got {images.dtype}")
    x = images.astype(np.float32)
    x /= np.float32(255.0)
    return {"x": x, "y": np.concatenate([p[1] for p in parts])}

  def _compute(self, i: int) -> dict[str, np.ndarray]:
    return self.read(self.local_indices(i))

  def batch(self, i: int) -> dict[str, np.ndarray]:
    """This process's rows of global batch ``i``: ``{'x': (B/P, H, W, C) float32, 'y': (B/P,)}``."""
    i = int(i)
    if self._prefetcher is None:
      return self._compute(i)
    with self._lock:
      future = self._pending.pop(i, None)
      for stale in [k for k in self._pending if k < i or k > i + self.prefetch]:
        self._pending.pop(stale).cancel()
      for k in range(i + 1, i + 1 + self.prefetch):
        if k not in self._pending:
          self._pending[k] = self._prefetcher.submit(self._compute, k)
    return future.result() if future is not None else self._compute(i)

  def close(self) -> None:
    """Stops the background threads (pending prefetches are dropped)."""
    with self._lock:
      for future in self._pending.values():
        future.cancel()
      self._pending.clear()
    for pool in (self._prefetcher, self._decoders):
      if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)
    self._prefetcher = self._decoders = None

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


__all__ = ["StreamingSource", "resize_center_crop", "train_order_key"]
