"""The in-memory dataset record every loader returns."""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Dataset:
  """One split of a dataset, as host numpy arrays.

  Attributes:
    x: float32 inputs. Images are NHWC in [0, 1]; 1-D signals are (N, L); tabular data is (N, D).
    y: int32 labels in [0, num_classes).
    num_classes: number of classes.
    name: the dataset name as given to `lipprune.data.load`.
    extras: per-example side arrays with leading dimension N (e.g. ``group`` for the protected
      attribute and ``z`` for clean labels in the fairness datasets).
  """

  x: np.ndarray
  y: np.ndarray
  num_classes: int
  name: str = ""
  extras: dict = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if len(self.x) != len(self.y):
      raise ValueError(f"Dataset {self.name!r}: x has {len(self.x)} rows but y has {len(self.y)}")
    for k, v in self.extras.items():
      if len(v) != len(self.y):
        raise ValueError(f"Dataset {self.name!r}: extras[{k!r}] has {len(v)} rows, expected {len(self.y)}")

  def __len__(self) -> int:
    return len(self.y)

  def arrays(self) -> dict[str, np.ndarray]:
    """The batch dict layout the train steps read: ``{'x', 'y', **extras}``."""
    return {"x": self.x, "y": self.y, **self.extras}

  def take(self, index) -> "Dataset":
    """The sub-dataset at ``index`` (an index array or boolean mask)."""
    return dataclasses.replace(
        self, x=self.x[index], y=self.y[index], extras={k: v[index] for k, v in self.extras.items()})
