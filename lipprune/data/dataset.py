"""The in-memory dataset record every loader returns."""
from __future__ import annotations

import dataclasses

import numpy as np


def check_labels(y, num_classes: int, what: str = "labels") -> None:
  """Raises ValueError, naming ``what``, unless ``y`` holds integer class indices in
  ``[0, num_classes)``. Float, negative or too large labels would otherwise reach the loss, whose
  one-hot encoding turns them into an all-zero target: loss 0, gradient 0, no error.

  Call it where data enter (the `Dataset` constructor does), once, outside any jitted step.
  """
  if isinstance(num_classes, (bool, np.bool_)) or not isinstance(num_classes, (int, np.integer)) \
      or num_classes < 1:
    raise ValueError(f"{what}: num_classes={num_classes!r} must be a positive int")
  y = np.asarray(y)
  if not (np.issubdtype(y.dtype, np.integer) and y.dtype != np.bool_):
    raise ValueError(f"{what}: dtype {y.dtype} is not an integer type; labels are class indices "
                     f"in [0, {num_classes})")
  bad = np.flatnonzero((y < 0) | (y >= num_classes))
  if bad.size:
    raise ValueError(f"{what}: {bad.size} labels outside [0, {num_classes}), e.g. {y.flat[bad[0]]} "
                     f"at index {bad[0]}")


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
    check_labels(self.y, self.num_classes, f"Dataset {self.name!r}: y")
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
