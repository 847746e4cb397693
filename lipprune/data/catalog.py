"""Image datasets from the TensorFlow Datasets catalog, read as numpy without TensorFlow.

Reading uses ``tfds.data_source`` (random access over ArrayRecord files), which needs no TensorFlow.
Preparing the files once does, or a network: on a machine with internet either call
``load(name, download=True)`` or run::

    pip install lipprune[tf]
    tfds build NAME --data_dir=DIR --file_format=array_record

and then load offline with ``load(name, data_dir=DIR)`` (or set ``TFDS_DATA_DIR=DIR``). Note the
``--file_format=array_record``: the CLI's default TFRecord format cannot be read by random access.

Offline behaviour is explicit and fast: with ``download=False`` (the default) and no prepared data we
raise `FileNotFoundError` naming the dataset, the directory searched and the ways to provide the data;
with ``download=True`` and no route to ``storage.googleapis.com`` we raise `ConnectionError` after a
socket probe of at most ``NETWORK_PROBE_TIMEOUT_S`` seconds, rather than entering tfds' retry loops.
"""
from __future__ import annotations

import os
import socket
import threading

import numpy as np

from lipprune.data.dataset import Dataset

SPLITS = ("train", "test")
# name -> (image shape HWC, number of classes)
SPECS = {
    "mnist": ((28, 28, 1), 10),
    "fashion_mnist": ((28, 28, 1), 10),
    "cifar10": ((32, 32, 3), 10),
    "cifar100": ((32, 32, 3), 100),
    "svhn_cropped": ((32, 32, 3), 10),
}
NAMES = tuple(SPECS)
NETWORK_PROBE_HOST = ("storage.googleapis.com", 443)
NETWORK_PROBE_TIMEOUT_S = 3.0


def default_data_dir() -> str:
  """Where tfds looks when ``data_dir`` is None: ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``."""
  return os.path.expanduser(os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets")


def network_available(host: tuple[str, int] = NETWORK_PROBE_HOST,
                      timeout: float = NETWORK_PROBE_TIMEOUT_S) -> bool:
  """True if a TCP connection to ``host`` opens within ``timeout`` seconds (DNS included)."""
  result = []

  def probe():
    try:
      socket.create_connection(host, timeout=timeout).close()
      result.append(True)
    except OSError:
      result.append(False)

  # getaddrinfo ignores socket timeouts, so bound the whole probe with a daemon thread.
  thread = threading.Thread(target=probe, daemon=True)
  thread.start()
  thread.join(timeout)
  return bool(result and result[0])


def _how_to_provide(name: str, data_dir: str) -> str:
  return (f"To provide it: on a machine with internet run `pip install lipprune[tf]` and "
          f"`tfds build {name} --data_dir={data_dir} --file_format=array_record`, then copy {data_dir} "
          f"here (or pass data_dir=... / set TFDS_DATA_DIR); for datasets that need manual files pass "
          f"manual_dir=...; or call load({name!r}, download=True) on a networked machine.")


def _is_prepared(name: str, data_dir: str) -> bool:
  """Whether some version of ``name`` has been prepared under ``data_dir`` (the default config)."""
  root = os.path.join(data_dir, name)
  if not os.path.isdir(root):
    return False
  for version in os.listdir(root):
    if os.path.isfile(os.path.join(root, version, "dataset_info.json")):
      return True
  return False


def _open(name: str, split: str, data_dir: str, download: bool, manual_dir: str | None):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  kwargs = {}
  if download and manual_dir is not None:
    kwargs["download_and_prepare_kwargs"] = {
        "download_config": tfds.download.DownloadConfig(manual_dir=manual_dir)}
  return tfds.data_source(name, split=split, data_dir=data_dir, download=download, **kwargs)


def _open_or_explain(name: str, split: str, data_dir: str, download: bool, manual_dir: str | None):
  """Opens the split's data source, or fails fast with a message saying how to get the data."""
  try:
    # Prepared data needs no network even when download=True, so try reading first.
    return _open(name, split, data_dir, False, None)
  except Exception as e:  # pylint: disable=broad-except
    if _is_prepared(name, data_dir):
      if "TFRECORD" in str(e):
        raise ValueError(
            f"Dataset {name!r} in {data_dir} was prepared as TFRecord, which cannot be read by random "
            f"access; rebuild it with `tfds build {name} --data_dir={data_dir} "
            f"--file_format=array_record` (needs `pip install lipprune[tf]`).") from e
      raise
    if not download:
      raise FileNotFoundError(
          f"Dataset {name!r} (split {split!r}) is not prepared in data_dir={data_dir} and "
          f"download=False. {_how_to_provide(name, data_dir)}") from e
  if not network_available():
    raise ConnectionError(
        f"Dataset {name!r} is not prepared in data_dir={data_dir} and download=True, but "
        f"{NETWORK_PROBE_HOST[0]}:{NETWORK_PROBE_HOST[1]} is unreachable (probe timed out after "
        f"{NETWORK_PROBE_TIMEOUT_S:g} s or failed). {_how_to_provide(name, data_dir)}")
  return _open(name, split, data_dir, True, manual_dir)


def load(name: str, split: str = "train", *, data_dir: str | None = None, download: bool = False,
         manual_dir: str | None = None) -> Dataset:
  """One split of a tfds catalog image dataset, as NHWC float32 ``pixel / 255`` and int32 labels.

  Args:
    name: one of ``NAMES``.
    split: ``'train'`` or ``'test'``.
    data_dir: tfds data directory; default ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``.
    download: whether tfds may download and prepare the data if it is not already in ``data_dir``.
    manual_dir: directory of manually downloaded source files, passed to tfds when preparing.

  Returns:
    A `Dataset` with ``x`` of shape (N, H, W, C) in [0, 1] and ``y`` in [0, num_classes).
  """
  if name not in SPECS:
    raise ValueError(f"Unknown catalog dataset {name!r}; allowed: {', '.join(NAMES)}")
  if split not in SPLITS:
    raise ValueError(f"Unknown split {split!r} for dataset {name!r}; allowed splits: {', '.join(SPLITS)}")
  data_dir = os.path.expanduser(os.fspath(data_dir)) if data_dir is not None else default_data_dir()
  shape, num_classes = SPECS[name]
  source = _open_or_explain(name, split, data_dir, download, manual_dir)
  n = len(source)
  images = np.empty((n,) + shape, np.uint8)
  labels = np.empty((n,), np.int32)
  for i in range(n):  # per-record reads: tfds' mock data sources do not support batched reads
    example = source[i]
    images[i] = np.asarray(example["image"]).reshape(shape)
    labels[i] = example["label"]
  x = images.astype(np.float32)
  x /= np.float32(255.0)
  if n and not (labels.min() >= 0 and labels.max() < num_classes):
    raise ValueError(f"Dataset {name!r}: labels outside [0, {num_classes})")
  return Dataset(x=x, y=labels, num_classes=num_classes, name=name)

