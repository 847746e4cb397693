"""Group-report metrics against fairlearn's MetricFrame on COMPAS's own predictions, scikit-learn,
pandas, a resampled copy of the data, and a simulation of label bias."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from lipprune.fairness import bias, groups
from tests.conftest import shared_data_dir


@pytest.fixture(scope="module")
def compas():
  data = shared_data_dir()
  if data is None or not (data / "compas-scores-two-years.csv").is_file():
    pytest.skip("COMPAS file absent from the shared data folder")
  from lipprune.data import tabular
  return tabular.read("compas", data_dir=data)


def test_group_metrics_match_fairlearn_metricframe_on_compas_scores(compas):
  fairlearn_metrics = pytest.importorskip("fairlearn.metrics")
  from sklearn.metrics import accuracy_score, precision_score
  race = compas.attributes["race"]
  score = compas.attributes["decile_score"]
  y = compas.label
  pred = (score >= 5).astype(int)
  names = sorted(set(race))
  got = groups.group_metrics(score, y, {r: race == r for r in names}, threshold=5)
  frame = fairlearn_metrics.MetricFrame(
      metrics={"selection_rate": fairlearn_metrics.selection_rate,
               "fpr": fairlearn_metrics.false_positive_rate,
               "fnr": fairlearn_metrics.false_negative_rate,
               "ppv": lambda t, p: precision_score(t, p, zero_division=np.nan),
               "npv": lambda t, p: precision_score(1 - t, 1 - p, zero_division=np.nan),
               "accuracy": accuracy_score, "base_rate": lambda t, p: np.mean(t),
               "size": fairlearn_metrics.count},
      y_true=y, y_pred=pred, sensitive_features=race)
  for metric in ("selection_rate", "fpr", "fnr", "ppv", "npv", "accuracy", "base_rate", "size"):
    want = frame.by_group[metric].loc[names].to_numpy(float)
    np.testing.assert_allclose(got[metric][0], want, rtol=1e-12, err_msg=metric)
  auc = fairlearn_metrics.MetricFrame(metrics=roc_auc_score, y_true=y, y_pred=score,
                                      sensitive_features=race).by_group.loc[names].to_numpy(float)
  np.testing.assert_allclose(got["auc"][0], auc, rtol=1e-12)
  # ProPublica's published disparity, from the same rows.
  i, j = names.index("African-American"), names.index("Caucasian")
  np.testing.assert_allclose(got["fpr"][0, [i, j]], [0.4234, 0.2201], atol=1e-4)


def test_replicate_weights_equal_resampled_data_and_weighted_auc_matches_sklearn():
  rng = np.random.default_rng(0)
  n = 300
  score = rng.integers(0, 12, n).astype(float)  # many ties
  y = (rng.random(n) < 0.2 + 0.05 * score).astype(int)
  g = {"a": rng.random(n) < 0.5, "all": np.ones(n, bool)}
  w = groups.bootstrap_weights(rng, n, 3)
  assert np.all(w.sum(1) == n)
  reps = groups.group_metrics(score, y, g, threshold=6, weights=w)
  for r in range(3):
    idx = np.repeat(np.arange(n), w[r].astype(int))
    direct = groups.group_metrics(score[idx], y[idx], {k: m[idx] for k, m in g.items()}, threshold=6)
    for k in groups.METRICS:
      np.testing.assert_allclose(reps[k][r], direct[k][0], rtol=1e-10, err_msg=k)
    np.testing.assert_allclose(reps["auc"][r, 1], roc_auc_score(y, score, sample_weight=w[r]), rtol=1e-10)


def test_calibration_and_threshold_curves_match_a_direct_count(compas):
  pd = pytest.importorskip("pandas")
  frame = pd.DataFrame({"race": compas.attributes["race"], "decile": compas.attributes["decile_score"],
                        "y": compas.label})
  names = ["African-American", "Caucasian"]
  masks = {r: frame.race.to_numpy() == r for r in names}
  cal = groups.calibration(frame.decile, frame.y, masks, np.arange(1, 12))
  want = frame[frame.race.isin(names)].groupby(["race", "decile"]).y.agg(["mean", "size"])
  for gi, r in enumerate(names):
    np.testing.assert_allclose(cal["rate"][0, gi], want.loc[r]["mean"].to_numpy(), rtol=1e-12)
    np.testing.assert_array_equal(cal["count"][0, gi], want.loc[r]["size"].to_numpy())
  curves = groups.threshold_curves(frame.decile, frame.y, masks, [1, 5, 11])
  np.testing.assert_allclose(curves["fpr"][0, :, 0], [1, 1])  # cut-off 1: everyone flagged
  np.testing.assert_allclose(curves["fnr"][0, :, 2], [1, 1])  # cut-off 11: nobody flagged
  aa = frame[frame.race == names[0]]
  np.testing.assert_allclose(curves["fpr"][0, 0, 1], ((aa.decile >= 5) & (aa.y == 0)).sum() / (aa.y == 0).sum())


def test_chouldechova_identity_holds_on_any_table():
  rng = np.random.default_rng(1)
  for _ in range(5):
    n = 2000
    y = (rng.random(n) < rng.uniform(0.2, 0.7)).astype(int)
    s = np.where(rng.random(n) < 0.7, y, 1 - y).astype(float)
    m = groups.group_metrics(s, y, {"all": np.ones(n, bool)}, threshold=0.5)
    np.testing.assert_allclose(groups.implied_fpr(m["base_rate"], m["ppv"], m["fnr"]), m["fpr"], rtol=1e-12)


@pytest.mark.parametrize("favorable", [0, 1])
def test_debiased_counts_recover_the_clean_labels_in_expectation(favorable):
  import jax
  rng = np.random.default_rng(2)
  n, beta = 400_000, 0.25
  rho = (rng.random(n) < 0.5).astype(np.int32)
  feat = rng.random(n)
  z = (rng.random(n) < 0.2 + 0.6 * feat).astype(np.int32)
  score = feat + 0.3 * rng.random(n)
  y = np.asarray(bias.label_bias(jax.random.key(0), z, rho, beta, favorable=favorable))
  biased_to = np.where(rho == 1, 1 - favorable, favorable)
  masks = {"protected": rho == 1, "other": rho == 0, "all": np.ones(n, bool)}
  est = groups.rates_from_counts(groups.debiased_counts(score, y, masks, biased_to, beta, threshold=0.7))
  truth = groups.group_metrics(score, z, masks, threshold=0.7)
  observed = groups.group_metrics(score, y, masks, threshold=0.7)
  for k in ("accuracy", "fpr", "fnr", "ppv"):
    np.testing.assert_allclose(est[k][0], truth[k][0], atol=0.006, err_msg=k)
  # The correction matters: the recorded labels are off by far more than the tolerance.
  assert np.max(np.abs(observed["fnr"][0] - truth["fnr"][0])) > 0.05
  zero = groups.rates_from_counts(groups.debiased_counts(score, y, masks, biased_to, 0.0, threshold=0.7))
  np.testing.assert_allclose(zero["fpr"][0], observed["fpr"][0])


def test_infeasible_beta_is_undefined_and_bad_inputs_fail():
  score = np.array([0.9, 0.1, 0.8, 0.2])
  y = np.array([1, 0, 0, 0])  # one recorded 1 against three 0s in the group biased to 1
  counts = groups.debiased_counts(score, y, {"g": np.ones(4, bool)}, np.ones(4, int), 0.5, threshold=0.5)
  assert not counts["feasible"][0, 0] and np.isnan(groups.rates_from_counts(counts)["fpr"][0, 0])
  g = {"g": np.ones(4, bool)}
  with pytest.raises(ValueError, match="threshold is required"):
    groups.group_metrics(score, y, g, threshold=None)
  with pytest.raises(ValueError, match=r"label must hold values in \[0, 1\]"):
    groups.group_metrics(score, np.array([1, 0, 2, 0]), g, threshold=0.5)
  with pytest.raises(ValueError, match=r"groups\['g'\] must be a boolean mask of shape \(4,\)"):
    groups.group_metrics(score, y, {"g": np.array([1, 2, 1, 1])}, threshold=0.5)
  with pytest.raises(ValueError, match="equal length"):
    groups.group_metrics(score[:3], y, g, threshold=0.5)
  iv = groups.interval(np.array([[1.0, np.nan], [2.0, np.nan], [np.nan, np.nan]]))
  np.testing.assert_array_equal(iv["undefined"], [1, 3])
  assert np.isnan(iv["low"][1]) and 1.0 <= iv["low"][0] <= iv["high"][0] <= 2.0
