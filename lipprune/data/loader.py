"""``load(name, split)``: one entry point for every dataset lipprune trains on.

Sources by name:

* embedded, offline, in pip packages (lipprune.data.embedded): ``digits``, ``mnist5k``, ``mnist1d``;
* the TensorFlow Datasets catalog (lipprune.data.catalog): ``mnist``, ``fashion_mnist``, ``cifar10``,
  ``cifar100``, ``svhn_cropped``; prepared once with tfds, then read offline;
* tabular fairness data (lipprune.data.tabular): ``compas``, ``adult``, ``german``. (The
  synthetic generator of Wick et al. is `lipprune.fairness.synthetic.generate`.)

Datasets too large for host memory (``STREAMING_NAMES``: ImageNet) are not loaded here: they are
streamed batch by batch with `lipprune.data.streaming.StreamingSource` (``config.streaming=True`` in
the experiments), which reads any prepared tfds dataset; ``load`` refuses them with that advice.

Images are NHWC float32 in [0, 1]; labels are int32.
"""
from __future__ import annotations

import jax
import numpy as np

from lipprune.data import catalog
from lipprune.data import embedded
from lipprune.data.dataset import Dataset

TABULAR_NAMES = ("compas", "adult", "german")
NAMES = embedded.NAMES + catalog.NAMES + TABULAR_NAMES
# tfds datasets known not to fit in host memory; `load` refuses them (stream them instead).
STREAMING_NAMES = ("imagenet2012",)
# The interval every input value lies in, for attacks that project onto it; None where the data are
# not bounded images (mnist1d's generator standardizes its signals, the tabular loaders standardize
# numeric columns).
INPUT_RANGES: dict[str, tuple[float, float] | None] = {
    **{name: (0.0, 1.0) for name in ("digits", "mnist5k") + catalog.NAMES + STREAMING_NAMES},
    "mnist1d": None,
    **{name: None for name in TABULAR_NAMES},
}


def input_range(name: str) -> tuple[float, float] | None:
  """The declared input range ``(lo, hi)`` of dataset ``name``, or None if it has none."""
  if name not in INPUT_RANGES:
    raise ValueError(f"Unknown dataset {name!r}; allowed: {', '.join(INPUT_RANGES)}")
  return INPUT_RANGES[name]


def load(name: str, split: str = "train", *, data_dir=None, download: bool = False, **kwargs) -> Dataset:
  """Loads one split of dataset ``name`` as host numpy arrays.

  Args:
    name: one of ``NAMES``.
    split: ``'train'`` or ``'test'`` for image and signal datasets; tabular datasets document theirs.
    data_dir: where prepared data lives (tfds catalog and tabular data); ignored by embedded data.
    download: whether a missing dataset may be fetched; without it, missing data fails fast with a
      message saying how to provide it.
    **kwargs: source-specific options (``manual_dir`` for the catalog; see lipprune.data.tabular).

  Returns:
    A `lipprune.data.Dataset`.

  Raises:
    ValueError: for an unknown name or split (the message lists the allowed values), or for a name
      in ``STREAMING_NAMES`` (the message says to stream it).
    FileNotFoundError / ConnectionError: catalog data not prepared and not downloadable.
  """
  if name in STREAMING_NAMES:
    raise ValueError(
        f"Dataset {name!r} does not fit in host memory and is not loaded as arrays; stream it: set "
        "--config.streaming=True (experiments.train), or use "
        "lipprune.data.streaming.StreamingSource directly.")
  if name in embedded.NAMES:
    if kwargs:
      raise TypeError(f"Embedded dataset {name!r} takes no options, got {sorted(kwargs)}")
    del data_dir, download  # embedded data is always present
    return embedded.load(name, split)
  if name in catalog.NAMES:
    return catalog.load(name, split, data_dir=data_dir, download=download, **kwargs)
  if name in TABULAR_NAMES:
    from lipprune.data import tabular  # pylint: disable=g-import-not-at-top
    return tabular.load(name, split, data_dir=data_dir, download=download, **kwargs)
  raise ValueError(f"Unknown dataset {name!r}; allowed: {', '.join(NAMES)}")


def holdout(ds: Dataset, n: int, key_or_seed) -> tuple[Dataset, Dataset]:
  """Splits ``ds`` into ``(rest, held)`` with ``len(held) == n``, deterministically.

  The held-out indices are the first ``n`` entries of ``jax.random.permutation(key, len(ds))``, with
  ``key = jax.random.key(seed)`` for an int seed (or the given typed key); both parts keep the
  original order of ``ds``. Renda et al. (ICLR 2020) hold out 2,000 of CIFAR-10's 10,000 test images
  as a validation set: ``test, val = holdout(load('cifar10', 'test'), 2000, seed)``.
  """
  rest, held = holdout_indices(len(ds), n, key_or_seed)
  return ds.take(rest), ds.take(held)


def holdout_indices(num_examples: int, n: int, key_or_seed) -> tuple[np.ndarray, np.ndarray]:
  """The sorted indices ``(rest, held)`` that `holdout` takes from a dataset of ``num_examples``:
  ``held = sort(perm[:n])``, ``rest = sort(perm[n:])``, ``perm = permutation(key, num_examples)``.
  Streamed datasets use them to hold out the same examples without loading the split."""
  if not 0 <= n <= num_examples:
    raise ValueError(f"holdout size n={n} must be in [0, {num_examples}]")
  key = jax.random.key(int(key_or_seed)) if isinstance(key_or_seed, (int, np.integer)) else key_or_seed
  perm = np.asarray(jax.random.permutation(key, num_examples))
  return np.sort(perm[n:]), np.sort(perm[:n])
