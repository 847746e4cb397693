"""experiments.fairness end to end on tiny settings: outputs, one label coding, the court report
against an independent pandas computation, reruns that change nothing, bad configs."""
import os

import numpy as np
import pytest

from experiments import fairness as job
from experiments import group_report
from experiments.configs import fairness_compas, fairness_german, fairness_synthetic
from lipprune.train import io
from tests.conftest import shared_data_dir


def _tiny(config):
  config.num_seeds = 2
  config.methods = ("baseline", "semisupervised")
  config.train.max_iter = 50
  config.eta_values = (0.0, 10.0)
  config.beta_values = (0.0, 0.2)
  config.sigma_values = (1.0, 3.0)
  config.report.splits = 2
  config.report.resamples = 10
  return config


def _snapshot(workdir):
  out = {}
  for root, _, files in os.walk(workdir):
    for f in files:
      p = os.path.join(root, f)
      out[p] = (os.path.getmtime(p), open(p, "rb").read())
  return out


def _data(*files):
  data = shared_data_dir()
  if data is None or not all((data / f).is_file() for f in files):
    pytest.skip(f"{files} absent from the shared data folder")
  return str(data)


def test_synthetic_sweeps_write_tables_plots_and_rerun_changes_nothing(tmp_path, monkeypatch):
  c = _tiny(fairness_synthetic.get_config())
  c.methods = ("baseline", "semisupervised")
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
    assert len(rows) == 1 + 2 * 2 and "f1_z_se" in rows[0] and "di_undefined" in rows[0]
    assert "grad_norm_max" in rows[0]
  one = io.read_json(os.path.join(wd, "settings", "beta=0.2_sigma=1_eta=10.json"))
  assert len(one["semisupervised"]["test"]["f1_y"]) == 2
  # The paired table: each model minus the baseline on the same data sets.
  paired = open(os.path.join(wd, "tables", "beta_paired.csv")).read().splitlines()
  assert len(paired) == 1 + 2 and "f1_z_diff_positive" in paired[0]
  last = dict(zip(paired[0].split(","), paired[-1].split(",")))
  diff = np.subtract(*(io.read_json(os.path.join(wd, "settings", "beta=0.2_sigma=1_eta=10.json"))[m]["test"]["f1_z"]
                       for m in ("semisupervised", "baseline")))
  assert float(last["f1_z_diff"]) == pytest.approx(diff.mean()) and int(last["f1_z_diff_positive"]) == (diff > 0).sum()
  assert max(one["semisupervised"]["grad_norm"]) < c.train.tol or max(one["semisupervised"]["iterations"]) == 50
  # With beta = 0 the observed labels are the clean ones.
  zero = io.read_json(os.path.join(wd, "settings", "beta=0_sigma=1_eta=10.json"))
  np.testing.assert_allclose(zero["semisupervised"]["test"]["f1_y"], zero["semisupervised"]["test"]["f1_z"])
  # Rerun: nothing is recomputed or rewritten.
  before = _snapshot(wd)
  monkeypatch.setattr(job, "make_synthetic_runner", None)  # any recompute would now fail
  again = job.run(c, wd)
  assert again.keys() == res.keys()
  assert _snapshot(wd) == before


def test_summary_counts_undefined_values():
  s = job.summary([1.0, float("nan"), 3.0])
  assert s["mean"] == 2.0 and s["undefined"] == 1 and s["se"] == pytest.approx(1.0)
  assert np.isnan(job.summary([0.5])["se"]) and np.isnan(job.summary([float("nan")])["mean"])


def test_compas_one_coding_court_report_matches_pandas_and_rerun_changes_nothing(tmp_path, monkeypatch):
  data = _data("compas-scores-two-years.csv")
  pd = pytest.importorskip("pandas")
  c = _tiny(fairness_compas.get_config())
  c.data_dir = data
  c.methods = ("baseline",)
  c.sweeps = ("sigma",)
  c.sigma_values = (1.0,)
  c.sigma_sweep_beta = 0.0
  wd = str(tmp_path / "compas")
  job.run(c, wd)
  # One coding: positive = re-offended. The baseline flags African-American defendants more often,
  # and DI is the ratio of the favourable (not flagged) rates.
  setting = io.read_json(os.path.join(wd, "settings", "beta=0_sigma=1_eta=10.json"))
  assert set(setting["baseline"]) == {"objective", "grad_norm", "iterations", "test", "test_balanced"}
  res = setting["baseline"]["test"]
  sr0, sr1 = np.asarray(res["sr_g0"]), np.asarray(res["sr_g1"])
  assert np.all(sr1 > sr0 + 0.1)
  np.testing.assert_allclose(res["di"], (1 - sr1) / (1 - sr0), rtol=1e-5)
  md = open(os.path.join(wd, "court_report.md")).read()
  for heading in [l for l in md.splitlines() if l.startswith("## ") or l.startswith("# ")]:
    assert "re-offended within two years" in heading, heading
  # The COMPAS-score rows against pandas on the same CSV (ProPublica's filter, decile >= 5).
  rep = io.read_json(os.path.join(wd, "court_report.json"))
  d = pd.read_csv(os.path.join(data, "compas-scores-two-years.csv"))
  d = d[d.days_b_screening_arrest.between(-30, 30) & (d.is_recid != -1) & (d.c_charge_degree != "O")
        & (d.score_text != "N/A")]
  for race in ("African-American", "Caucasian"):
    r = d[d.race == race]
    hi, y = r.decile_score >= 5, r.two_year_recid == 1
    want = {"fpr": (hi & ~y).sum() / (~y).sum(), "fnr": (~hi & y).sum() / y.sum(),
            "ppv": (hi & y).sum() / hi.sum()}
    g = rep["groups"].index(f"race: {race}")
    for k, v in want.items():
      assert rep["metrics"]["compas_score"][k]["estimate"][g] == pytest.approx(v, abs=1e-12), (race, k)
    by_decile = r.groupby("decile_score").two_year_recid.mean().reindex(range(1, 11)).to_numpy()
    np.testing.assert_allclose(rep["calibration"]["compas_score"]["rate"]["estimate"][g], by_decile, rtol=1e-12)
  assert rep["pair"] == ["race: African-American", "race: Caucasian"]
  assert "race x sex: African-American, Male" in rep["groups"] and "age: Less than 25" in rep["groups"]
  for name in ("error_rates", "thresholds", "calibration", "label_bias"):
    assert os.path.getsize(os.path.join(wd, f"court_{name}.png")) > 1000
  # Rerunning the finished workdir recomputes and rewrites nothing.
  before = _snapshot(wd)
  monkeypatch.setattr(job, "make_real_runner", None)
  monkeypatch.setattr(group_report, "compute", None)
  job.run(c, wd)
  assert _snapshot(wd) == before


def test_german_group_report(tmp_path):
  c = _tiny(fairness_german.get_config())
  c.data_dir = _data("german.data")
  c.methods = ("baseline",)
  c.sweeps = ()
  wd = str(tmp_path / "german")
  job.run(c, wd)
  rep = io.read_json(os.path.join(wd, "group_report.json"))
  assert rep["pair"] == ["age: <= 25", "age: > 25"]
  assert {"sex: female", "sex: male", "age x sex: > 25, male"} <= set(rep["groups"])
  assert rep["group_rows"]["age: <= 25"] == 190 and rep["group_rows"]["sex: female"] == 310
  md = open(os.path.join(wd, "group_report.md")).read()
  assert "# Group report: german (positive class: good credit)" in md


def test_adult_report_groups():
  from lipprune.data import tabular
  c = fairness_synthetic.get_config()
  c.dataset, c.protected = "adult", "race"
  t = tabular.read("adult", data_dir=_data("adult.data", "adult.test"))
  masks, pair = group_report.report_groups(c, t)
  assert pair == ("race group: not White", "race group: White")
  assert masks["race group: not White"].sum() == 48842 - 41762
  assert {"sex: Female", "race: Black", "race x sex: Black, Female"} <= set(masks)


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
    ("selection", "reassign", r"config.selection='reassign'.*\['paper', 'subsample'\]"),
])
def test_bad_config_fails_before_compute(tmp_path, field, value, match):
  c = fairness_synthetic.get_config()
  c[field] = value
  with pytest.raises(ValueError, match=match):
    job.run(c, str(tmp_path / "bad"))
  assert not os.path.exists(tmp_path / "bad")


@pytest.mark.parametrize("field,value,match", [
    ("protected", "sex", r"config.protected='sex' for compas; expected one of \['race'\]"),
    ("drop_features", ("colour",), r"config.drop_features/report.blind_features='colour'"),
    ("model", "mlp", "config.report needs config.model='logistic'"),
])
def test_bad_real_data_config_fails_before_compute(tmp_path, field, value, match):
  c = fairness_compas.get_config()
  c.data_dir = "/nonexistent"
  c[field] = value
  with pytest.raises(ValueError, match=match):
    job.run(c, str(tmp_path / "bad"))
  assert not os.path.exists(tmp_path / "bad")


def test_compas_needs_data_dir(tmp_path):
  c = fairness_compas.get_config()
  with pytest.raises(ValueError, match="config.data_dir"):
    job.run(c, str(tmp_path / "x"))


def test_configs_pin_the_papers_values():
  """Wick et al. 2019: appendix A.2 (generator), section 5.2 (sigma sweep at beta = 0.2, sigma up to
  8), appendix A.3 (COMPAS: race African-American or not, 40/40/20 splits)."""
  c = fairness_synthetic.get_config()
  g = c.generator
  assert (g.num_features, g.alpha, g.n_train, g.n_test, g.n_unlabeled) == (20, 0.5, 200, 1000, 10000)
  assert g.selection == "paper" and c.num_seeds == 10
  assert c.sigma_sweep_beta == 0.2 and max(c.sigma_values) == 8.0 and min(c.sigma_values) == 1.0
  assert c.methods == ("baseline", "oracle", "reweighing", "inprocessing", "semisupervised")
  compas = fairness_compas.get_config()
  assert compas.protected == "race" and tuple(compas.fractions) == (0.4, 0.4, 0.2)
  assert compas.report.blind_features == ("race",) and compas.report.splits >= 10
