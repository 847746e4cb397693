"""Shared fixtures: tiny models and data that compile in well under a second."""
import os
from pathlib import Path

import flax.linen as nn
import numpy as np
import pytest

from lipprune.models import Model

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
  """The real data files of ../shared/data (absent on a user's machine: tests then skip)."""
  env = os.environ.get("LIPPRUNE_SHARED_DATA")
  path = Path(env) if env else REPO.parent / "shared" / "data"
  return path if path.is_dir() else None


class TinyMLP(nn.Module):
  hidden: int = 16
  num_classes: int = 3
  use_bn: bool = False

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.reshape((x.shape[0], -1))
    x = nn.Dense(self.hidden)(x)
    if self.use_bn:
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
    x = nn.relu(x)
    return nn.Dense(self.num_classes)(x)


@pytest.fixture
def tiny_model():
  return Model(TinyMLP(), name="tiny")


@pytest.fixture
def tiny_bn_model():
  return Model(TinyMLP(use_bn=True), name="tiny_bn")


def blobs(n=96, d=5, k=3, seed=0):
  """Linearly separable-ish Gaussian blobs: x float32 (n, d), y int32 (n,)."""
  rng = np.random.default_rng(seed)
  centers = rng.normal(0, 3, (k, d))
  y = rng.integers(0, k, n).astype(np.int32)
  x = (centers[y] + rng.normal(0, 1, (n, d))).astype(np.float32)
  return {"x": x, "y": y}


@pytest.fixture
def blob_data():
  return blobs()
