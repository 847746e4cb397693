"""experiments.fairness end to end on tiny settings: outputs, resume without recompute, bad configs."""
import os
from pathlib import Path

import numpy as np
import pytest

from experiments import fairness as job
from experiments.configs import fairness_compas, fairness_synthetic
from lipprune.train import io

SHARED = Path(os.environ.get("LIPPRUNE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _tiny(config):
  config.num_datasets = 2
  config.methods = ("baseline", "semisupervised")
  config.train.epochs = 2
  config.train.penalty_batch_size = 100
  config.eta_values = (0.0, 10.0)
  config.beta_values = (0.0, 0.2)
  config.sigma_values = (1.0, 3.0)
  config.bootstrap_resamples = 50
  return config


def test_synthetic_sweeps_write_tables_plots_and_resume(tmp_path, monkeypatch):
  c = _tiny(fairness_synthetic.get_config())
  c.generator.n_test = 100
  c.generator.n_unlabeled = 200
  wd = str(tmp_path / "run")
  res = job.run(c, wd)
  # eta sweep (beta=.2, eta in {0,10}), beta sweep (eta=10, beta in {0,.2}), sigma sweep (beta=.2,
  # eta=10, sigma in {1,3}) share (.2, 1, 10): 4 unique settings.
  files = sorted(os.listdir(os.path.join(wd, "settings")))
  assert len(files) == 4 and len(res) == 4
  for sweep in ("eta", "beta", "sigma"):
    assert os.path.getsize(os.path.join(wd, "plots", f"{sweep}.png")) > 1000
    rows = open(os.path.join(wd, "tables", f"{sweep}.csv")).read().splitlines()
    assert len(rows) == 1 + 2 * 2 and "f1_z_se" in rows[0]
  one = io.read_json(os.path.join(wd, "settings", "beta=0.2_sigma=1_eta=10.json"))
  assert len(one["semisupervised"]["test"]["f1_y"]) == 2
  # With beta = 0 the observed labels are the clean ones.
  zero = io.read_json(os.path.join(wd, "settings", "beta=0_sigma=1_eta=10.json"))
  np.testing.assert_allclose(zero["baseline"]["test"]["f1_y"], zero["baseline"]["test"]["f1_z"])
  # Rerun: finished settings are read back, never recomputed or rewritten.
  mtimes = {f: os.path.getmtime(os.path.join(wd, "settings", f)) for f in files}
  monkeypatch.setattr(job, "make_synthetic_runner", None)  # any recompute would now fail
  again = job.run(c, wd)
  assert again.keys() == res.keys()
  for name in res:  # NaN (e.g. DI with an empty group) is stored as the string "nan"
    for m in res[name]:
      for k, v in res[name][m]["test"].items():
        np.testing.assert_array_equal(np.asarray(again[name][m]["test"][k], float), np.asarray(v, float))
  assert mtimes == {f: os.path.getmtime(os.path.join(wd, "settings", f)) for f in files}


def test_compas_court_report(tmp_path):
  if not (SHARED / "compas-scores-two-years.csv").is_file():
    pytest.skip(f"COMPAS file absent from {SHARED}")
  c = _tiny(fairness_compas.get_config())
  c.data_dir = str(SHARED)
  c.sweeps = ("sigma",)
  c.sigma_values = (1.0,)
  c.train.epochs = 1
  c.train.batch_size = 256
  wd = str(tmp_path / "compas")
  job.run(c, wd)
  report = io.read_json(os.path.join(wd, "court_report.json"))
  acc = report["methods"]["baseline"]["split0_bootstrap"]["accuracy"]
  assert acc["low"] <= acc["estimate"] <= acc["high"] and 0.5 < acc["estimate"] < 0.8
  for m in c.methods:
    for k in ("fpr_african_american", "fnr_other"):
      assert 0.0 <= report["methods"][m]["over_splits"][k]["mean"] <= 1.0
  res = io.read_json(os.path.join(wd, "settings", "beta=0.2_sigma=1_eta=10.json"))
  assert set(res["baseline"]) == {"final_loss", "test", "test_balanced"}


def test_compas_balanced_mask_equalizes_base_rates():
  rng = np.random.default_rng(0)
  g = rng.integers(0, 2, 2000)
  z = (rng.random(2000) < np.where(g == 1, 0.6, 0.4)).astype(int)
  m = job.balanced_test_mask(z, g, 0) > 0
  rates = [z[m & (g == k)].mean() for k in (0, 1)]
  assert abs(rates[0] - rates[1]) < 0.01
  assert np.all(m[(g == 0) | (z == 0)])


@pytest.mark.parametrize("field,value,match", [
    ("dataset", "mnist", "config.dataset='mnist'.*expected one of"),
    ("model", "resnet", "config.model"),
    ("sweeps", ("eta", "gamma"), "config.sweeps"),
    ("methods", ("baseline", "magic"), "config.methods"),
    ("sigma_values", (0.5,), "sigma_values"),
])
def test_bad_config_fails_before_compute(tmp_path, field, value, match):
  c = fairness_synthetic.get_config()
  c[field] = value
  with pytest.raises(ValueError, match=match):
    job.run(c, str(tmp_path / "bad"))
  assert not os.path.exists(tmp_path / "bad")


def test_compas_needs_data_dir(tmp_path):
  c = fairness_compas.get_config()
  with pytest.raises(ValueError, match="config.data_dir"):
    job.run(c, str(tmp_path / "x"))
