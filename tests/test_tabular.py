"""Tabular loaders parse the publishers' files and reject corrupted copies with a clear message."""
import csv
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from lipprune.data import tabular

SHARED = Path(os.environ.get("LIPPRUNE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _need(*files):
  missing = [f for f in files if not (SHARED / f).is_file()]
  if missing:
    pytest.skip(f"real data files absent: {missing} (looked in {SHARED})")


def test_compas_propublica_filter_and_splits():
  _need("compas-scores-two-years.csv")
  ds = tabular.load("compas", "all", data_dir=SHARED)
  # ProPublica's analysis keeps 6,172 rows, 3,175 of them African-American.
  assert len(ds) == 6172 and int(ds.extras["group"].sum()) == 3175
  assert ds.x.shape == (6172, 14) and ds.x.dtype == np.float32 and ds.y.dtype == np.int32
  np.testing.assert_array_equal(ds.extras["z"], ds.y)
  # One-hot blocks sum to one; priors count standardized; race one-hot agrees with the group.
  for block in (slice(0, 3), slice(3, 5), slice(5, 11), slice(11, 13)):
    np.testing.assert_array_equal(ds.x[:, block].sum(1), 1)
  np.testing.assert_allclose([ds.x[:, 13].mean(), ds.x[:, 13].std()], [0, 1], atol=1e-4)
  np.testing.assert_array_equal(ds.x[:, 5], ds.extras["group"])
  assert abs(ds.y.mean() - 0.455) < 0.01
  parts = [tabular.load("compas", s, data_dir=SHARED, seed=3) for s in ("train", "unlabeled", "test")]
  assert [len(p) for p in parts] == [2469, 2469, 1234]
  rows = np.concatenate([p.x for p in parts])
  assert len(np.unique(np.concatenate([rows, np.concatenate([p.y[:, None] for p in parts])], 1), axis=0)) \
      == len(np.unique(np.concatenate([ds.x, ds.y[:, None]], 1), axis=0))
  other = tabular.load("compas", "train", data_dir=SHARED, seed=4)
  assert not np.array_equal(other.x, parts[0].x)


def test_adult_and_german_parse():
  _need("adult.data", "adult.test", "german.data")
  tr = tabular.load("adult", "train", data_dir=SHARED)
  te = tabular.load("adult", "test", data_dir=SHARED)
  assert len(tr) == 32561 and len(te) == 16281 and tr.x.shape[1] == te.x.shape[1]
  assert abs(tr.y.mean() - 0.2408) < 1e-3 and abs(te.y.mean() - 0.2362) < 1e-3
  assert abs(tr.extras["group"].mean() - 0.3308) < 1e-3  # share of women
  race = tabular.load("adult", "train", data_dir=SHARED, protected="race")
  assert abs(race.extras["group"].mean() - (1 - 27816 / 32561)) < 1e-4
  g = tabular.load("german", "all", data_dir=SHARED)
  assert len(g) == 1000 and g.y.sum() == 700  # 700 good, 300 bad
  assert g.extras["group"].sum() == 190  # age <= 25
  sex = tabular.load("german", "all", data_dir=SHARED, protected="sex")
  assert sex.extras["group"].sum() == 310  # A92 (310) + A95 (none in the data)


def test_corrupted_files_are_rejected_with_file_and_problem(tmp_path):
  _need("compas-scores-two-years.csv", "german.data", "adult.data")
  src = (SHARED / "compas-scores-two-years.csv").read_text(encoding="utf-8").splitlines(True)
  bad = tmp_path / "compas-scores-two-years.csv"
  bad.write_text("".join(src[:-1]), encoding="utf-8")  # truncated: wrong checksum
  with pytest.raises(tabular.DataFileError, match="sha256.*does not match"):
    tabular.load("compas", data_dir=tmp_path)
  with open(SHARED / "compas-scores-two-years.csv", newline="", encoding="utf-8") as f:
    rows = list(csv.reader(f))
  keep = [j for j, name in enumerate(rows[0]) if name != "priors_count"]  # the file has it twice
  with open(bad, "w", newline="", encoding="utf-8") as f:
    csv.writer(f).writerows([[r[j] for j in keep] for r in rows])
  with pytest.raises(tabular.DataFileError, match=f"{bad}.*missing column 'priors_count'"):
    tabular.load("compas", data_dir=tmp_path, verify=False)
  g = (SHARED / "german.data").read_text().splitlines(True)
  g[4] = g[4].replace("A11 24 ", "A11 x ", 1)  # line 5: duration "24" -> "x"
  (tmp_path / "german.data").write_text("".join(g))
  with pytest.raises(tabular.DataFileError, match="german.data: line 5.*cannot parse"):
    tabular.load("german", data_dir=tmp_path, verify=False)
  a = (SHARED / "adult.data").read_text().splitlines(True)
  a[2] = a[2].replace("<=50K", "maybe")
  (tmp_path / "adult.data").write_text("".join(a))
  with pytest.raises(tabular.DataFileError, match="adult.data: line 3: income 'maybe'"):
    tabular.load("adult", "train", data_dir=tmp_path, verify=False)


def test_local_path_option_and_verified_copy(tmp_path):
  _need("german.data")
  shutil.copy(SHARED / "german.data", tmp_path / "mine.data")
  ds = tabular.load("german", path=tmp_path / "mine.data")
  assert len(ds) == 1000


def test_missing_and_offline_errors_name_both_options_fast(tmp_path, monkeypatch):
  monkeypatch.setenv("LIPPRUNE_DATA_DIR", str(tmp_path / "cache"))
  with pytest.raises(FileNotFoundError, match="download=True.*data_dir="):
    tabular.load("compas", data_dir=tmp_path)
  monkeypatch.setattr(tabular, "_network_available", lambda url, timeout: False)
  t = time.time()
  with pytest.raises(ConnectionError, match="unreachable.*download=True.*data_dir="):
    tabular.load("german", data_dir=tmp_path, download=True)
  assert time.time() - t < 5


def test_bad_arguments_fail_before_any_file_is_read(tmp_path):
  empty = str(tmp_path)  # no data here: each error must come from the arguments alone
  with pytest.raises(ValueError, match="unknown tabular dataset 'fair_synthetic'"):
    tabular.load("fair_synthetic", "train")
  with pytest.raises(ValueError, match=r"split='validation' for 'compas'.*'unlabeled'"):
    tabular.load("compas", "validation", data_dir=empty)
  with pytest.raises(ValueError, match=r"split='unlabeled' for 'adult'"):
    tabular.load("adult", "unlabeled", data_dir=empty)
  with pytest.raises(TypeError, match="wings"):
    tabular.load("german", "train", wings=2)
  with pytest.raises(ValueError, match=r"protected='height' for german; expected one of \['age', 'sex'\]"):
    tabular.load("german", protected="height", data_dir=empty)
  with pytest.raises(ValueError, match=r"protected='sex' for compas"):
    tabular.load("compas", protected="sex", data_dir=empty)


def test_compas_keeps_the_score_and_attributes_like_pandas():
  _need("compas-scores-two-years.csv")
  pd = pytest.importorskip("pandas")
  d = pd.read_csv(SHARED / "compas-scores-two-years.csv")
  d = d[d.days_b_screening_arrest.between(-30, 30) & (d.is_recid != -1) & (d.c_charge_degree != "O")
        & (d.score_text != "N/A")]
  t = tabular.read("compas", data_dir=SHARED)
  assert len(t) == len(d) == 6172
  np.testing.assert_array_equal(t.attributes["decile_score"], d.decile_score.to_numpy())
  np.testing.assert_array_equal(t.attributes["race"], d.race.to_numpy())
  np.testing.assert_array_equal(t.label, d.two_year_recid.to_numpy())
  np.testing.assert_array_equal(t.columns["priors_count"], d.priors_count.to_numpy())
  x, names = tabular.encode(t, drop=("race",))
  assert x.shape == (6172, 8) and not any(n.startswith("race=") for n in names)
  assert tabular.load("compas", "test", data_dir=SHARED, drop_features=("race",)).x.shape[1] == 8


@pytest.mark.parametrize("name,column", [("compas", "priors_count"), ("german", "credit_amount")])
def test_standardization_uses_training_rows_only(name, column):
  _need("compas-scores-two-years.csv", "german.data")
  t = tabular.read(name, data_dir=SHARED)
  parts = tabular.partition(len(t), seed=5)
  raw = t.columns[column]
  mean, std = raw[parts["train"]].mean(), raw[parts["train"]].std()
  names = tabular.encode(t)[1]
  j = names.index(column)
  for split in ("train", "test"):
    ds = tabular.load(name, split, data_dir=SHARED, seed=5)
    np.testing.assert_allclose(ds.x[:, j], (raw[parts[split]] - mean) / std, rtol=1e-5, atol=1e-6)
  train = tabular.load(name, "train", data_dir=SHARED, seed=5).x[:, j]
  test = tabular.load(name, "test", data_dir=SHARED, seed=5).x[:, j]
  np.testing.assert_allclose([train.mean(), train.std()], [0, 1], atol=1e-4)
  assert abs(test.mean()) > 1e-3  # a test-fitted standardization would give exactly 0


def test_encode_fits_statistics_on_fit_rows_and_rejects_unknown_columns():
  t = tabular.Table(name="toy", columns={"c": np.array(["a", "b", "c", "a"]), "v": np.arange(4.0)},
                    label=np.zeros(4, np.int32), attributes={})
  x, names = tabular.encode(t, fit_rows=[0, 1])
  # Categories are the table's schema (the same columns for every split); statistics are fitted.
  assert names == ["c=a", "c=b", "c=c", "v"]
  np.testing.assert_array_equal(x[2, :3], [0, 0, 1])
  np.testing.assert_allclose(x[:, 3], (np.arange(4) - 0.5) / 0.5)
  with pytest.raises(ValueError, match=r"drop=\['w'\].*not feature columns.*\['c', 'v'\]"):
    tabular.encode(t, drop=("w",))
  with pytest.raises(ValueError, match=r"drop_features=\['colour'\] for compas"):
    tabular.load("compas", drop_features=("colour",), data_dir="/nonexistent")
