"""Tests of lipprune.robust.separation against brute-force numpy."""
import numpy as np
import pytest

from lipprune.robust import separation


def _brute(qx, qy, rx, ry, norm):
  q = qx.reshape(len(qx), -1).astype(np.float64)
  r = rx.reshape(len(rx), -1).astype(np.float64)
  out = np.full(len(q), np.inf)
  for i in range(len(q)):
    other = r[ry != qy[i]]
    if len(other):
      d = other - q[i]
      dist = np.abs(d).max(1) if norm == "linf" else np.sqrt((d ** 2).sum(1))
      out[i] = dist.min()
  return out


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_matches_brute_force_with_conflicting_duplicates(norm):
  rng = np.random.default_rng(0)
  train_x = rng.uniform(size=(53, 3, 4)).astype(np.float32)
  train_y = rng.integers(0, 4, size=53)
  train_x[10] = train_x[20]  # a duplicate ...
  train_y[10] = (train_y[20] + 1) % 4  # ... with a conflicting label
  train_x[30] = train_x[31]
  train_y[30] = train_y[31]  # a harmless duplicate
  test_x = rng.uniform(size=(17, 3, 4)).astype(np.float32)
  test_y = rng.integers(0, 4, size=17)
  for qx, qy in ((train_x, train_y), (test_x, test_y)):
    dist, idx = separation.nearest_other_class(qx, qy, train_x, train_y, norm=norm,
                                               query_chunk=7, ref_chunk=11)
    np.testing.assert_allclose(dist, _brute(qx, qy, train_x, train_y, norm), rtol=1e-5)
    # the returned neighbour has another label and realizes the distance
    assert np.all(train_y[idx] != qy)
    d = (train_x[idx] - qx).reshape(len(qx), -1)
    realized = np.abs(d).max(1) if norm == "linf" else np.linalg.norm(d, axis=1)
    np.testing.assert_allclose(realized, dist, rtol=1e-5, atol=1e-6)
  report, dist = separation.separation_report(train_x, train_y, train_x, train_y, norm=norm,
                                              eps=0.05, bins=5)
  assert report["num_conflicting_duplicates"] == 2
  assert sorted(p[0] for p in report["conflicting_duplicates"]) == [10, 20]
  assert report["min"] == 0.0
  assert sum(report["hist_counts"]) == 53
  np.testing.assert_allclose(report["frac_below_2eps"], np.mean(dist < 0.1))


def test_single_class_reference_gives_inf():
  x = np.zeros((3, 2), np.float32)
  dist, idx = separation.nearest_other_class(x, np.zeros(3, int), x, np.zeros(3, int))
  assert np.all(np.isinf(dist)) and np.all(idx == -1)


def test_bad_norm():
  with pytest.raises(ValueError, match="norm"):
    separation.nearest_other_class(np.zeros((2, 2)), np.zeros(2), np.zeros((2, 2)), np.ones(2),
                                   norm="l1")
