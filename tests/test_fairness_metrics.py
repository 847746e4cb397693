"""Fairness metrics against a hand-computed confusion table, sklearn, and penalties on fair predictors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import f1_score

from lipprune.fairness import losses, metrics, penalties

# Hand-made table (group 0 = rows 0-4, group 1 = rows 5-9).
PRED = np.array([1, 1, 0, 0, 1, 0, 1, 0, 1, 0])
Y = np.array([1, 0, 0, 1, 1, 0, 0, 0, 1, 0])
GROUP = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
# Group 0: TP=2 FP=1 TN=1 FN=1.  Group 1: TP=1 FP=1 TN=3 FN=0.  Overall: TP=3 FP=2 TN=4 FN=1.


def test_confusion_and_rates_by_hand():
  c = metrics.confusion(PRED, Y)
  assert {k: float(v) for k, v in c.items()} == {"tp": 3, "fp": 2, "tn": 4, "fn": 1}
  r = metrics.group_rates(PRED, Y, GROUP)
  np.testing.assert_allclose(r["tpr"], [2 / 3, 1.0], rtol=1e-6)
  np.testing.assert_allclose(r["fpr"], [1 / 2, 1 / 4], rtol=1e-6)
  np.testing.assert_allclose(r["fnr"], [1 / 3, 0.0], rtol=1e-6)
  np.testing.assert_allclose(r["accuracy"], [3 / 5, 4 / 5], rtol=1e-6)
  np.testing.assert_allclose(metrics.selection_rates(PRED, GROUP), [3 / 5, 2 / 5], rtol=1e-6)
  np.testing.assert_allclose(metrics.disparate_impact(PRED, GROUP), 2 / 3, rtol=1e-6)
  np.testing.assert_allclose(metrics.demographic_parity_difference(PRED, GROUP), -1 / 5, atol=1e-6)
  np.testing.assert_allclose(metrics.equal_opportunity_gap(PRED, Y, GROUP), 1 / 3, rtol=1e-6)
  np.testing.assert_allclose(metrics.equalized_odds_gap(PRED, Y, GROUP), 1 / 3, rtol=1e-6)
  np.testing.assert_allclose(metrics.accuracy(PRED, Y), 0.7, rtol=1e-6)
  # F1_1 = 2*3/(6+2+1) = 2/3 (support 4); F1_0 = 2*4/(8+2+1) = 8/11 (support 6).
  np.testing.assert_allclose(metrics.weighted_f1(PRED, Y), (4 * 2 / 3 + 6 * 8 / 11) / 10, rtol=1e-6)


def test_evaluate_against_y_and_z_and_jit():
  z = 1 - Y
  out = jax.jit(metrics.evaluate)(PRED, Y, GROUP, z)
  np.testing.assert_allclose(out["accuracy_y"], 0.7, rtol=1e-6)
  np.testing.assert_allclose(out["accuracy_z"], 0.3, rtol=1e-6)
  np.testing.assert_allclose(out["di"], 2 / 3, rtol=1e-6)
  np.testing.assert_allclose(out["fpr_g1_y"], 1 / 4, rtol=1e-6)
  assert "f1_z" in out and "f1_z" not in metrics.evaluate(PRED, Y, GROUP)


def test_weighted_f1_matches_sklearn_random():
  rng = np.random.default_rng(0)
  for _ in range(20):
    n = int(rng.integers(1, 40))
    p, y = rng.integers(0, 2, n), rng.integers(0, 2, n)
    want = f1_score(y, p, average="weighted", zero_division=0)
    np.testing.assert_allclose(metrics.weighted_f1(p, y), want, rtol=1e-5, atol=1e-7)


def test_mask_equals_subset_and_empty_group_is_nan():
  rng = np.random.default_rng(1)
  p, y, g = rng.integers(0, 2, 50), rng.integers(0, 2, 50), rng.integers(0, 2, 50)
  m = rng.random(50) < 0.6
  full = metrics.evaluate(p, y, g, y, mask=m)
  sub = metrics.evaluate(p[m], y[m], g[m], y[m])
  for k in full:
    np.testing.assert_allclose(full[k], sub[k], rtol=1e-6, err_msg=k)
  assert np.isnan(metrics.disparate_impact(np.ones(4, int), np.ones(4, int)))


def test_bootstrap_interval_covers_and_shrinks():
  rng = np.random.default_rng(2)
  stat = lambda a: {"accuracy": metrics.accuracy(a["p"], a["y"])}
  widths = []
  for n in (100, 1600):
    y = rng.integers(0, 2, n)
    p = np.where(rng.random(n) < 0.8, y, 1 - y)
    ci = metrics.bootstrap_ci(jax.random.key(0), stat, {"p": p, "y": y}, num_resamples=400)["accuracy"]
    assert ci["low"] <= ci["estimate"] <= ci["high"]
    assert ci["low"] < 0.8 < ci["high"] or abs(ci["estimate"] - 0.8) > 2 * ci["std"]
    # The standard error of a proportion: sqrt(a(1-a)/n).
    np.testing.assert_allclose(ci["std"], np.sqrt(ci["estimate"] * (1 - ci["estimate"]) / n), rtol=0.2)
    widths.append(ci["high"] - ci["low"])
  assert widths[1] < widths[0] / 2.5


def test_penalties_zero_on_fair_predictor_and_match_numpy():
  rng = np.random.default_rng(3)
  g = np.repeat([0, 1], 100)
  y = np.tile(np.repeat([0, 1], 50), 2)
  feat = rng.random(100)
  # A fair predictor: the same score distribution for each (group, label) cell.
  p_fair = jnp.asarray(np.concatenate([feat, feat]), jnp.float32)
  assert float(penalties.demographic_parity_penalty(p_fair, g)) == pytest.approx(0.0, abs=1e-12)
  assert float(penalties.equalized_odds_penalty(p_fair, y, g)) == pytest.approx(0.0, abs=1e-12)
  assert float(penalties.demographic_parity_penalty(jnp.full(200, 0.3), g)) == pytest.approx(0.0, abs=1e-12)
  p = jnp.asarray(rng.random(200), jnp.float32)
  pn = np.asarray(p)
  want_dp = (pn[g == 1].mean() - pn[g == 0].mean()) ** 2
  want_eo = sum((pn[(g == 1) & (y == c)].mean() - pn[(g == 0) & (y == c)].mean()) ** 2 for c in (0, 1))
  np.testing.assert_allclose(penalties.demographic_parity_penalty(p, g), want_dp, rtol=1e-5)
  np.testing.assert_allclose(penalties.equalized_odds_penalty(p, y, g), want_eo, rtol=1e-5)
  # Differentiable: the gradient pushes protected scores up when they are lower.
  grad = jax.grad(penalties.demographic_parity_penalty)(jnp.where(g == 1, 0.2, 0.6), g)
  assert np.all(np.asarray(grad)[g == 1] < 0) and np.all(np.asarray(grad)[g == 0] > 0)


def test_reweighing_makes_label_independent_of_group():
  rng = np.random.default_rng(4)
  g = rng.integers(0, 2, 500)
  y = (rng.random(500) < np.where(g == 1, 0.2, 0.6)).astype(int)
  w = np.asarray(losses.reweighing_weights(jnp.asarray(y), jnp.asarray(g)))
  for gg in (0, 1):
    sel = g == gg
    np.testing.assert_allclose((w * sel * y).sum() / (w * sel).sum(), y.mean(), rtol=1e-5)
  # Weight of one cell by hand: P(g=1) P(y=1) / P(g=1, y=1).
  i = np.flatnonzero((g == 1) & (y == 1))[0]
  np.testing.assert_allclose(w[i], (g == 1).mean() * y.mean() / ((g == 1) & (y == 1)).mean(), rtol=1e-5)


def test_inputs_are_validated_outside_jit_and_nan_inside():
  p = np.array([0.9, 0.2, 0.6, 0.4])
  y = np.array([1, 0, 0, 1])
  g = np.array([0, 0, 1, 1])
  with pytest.raises(ValueError, match=r"pred must hold values in \[0, 1\].*threshold="):
    metrics.accuracy(p, y)
  np.testing.assert_allclose(metrics.accuracy(p, y, threshold=0.5), 0.5)
  with pytest.raises(ValueError, match=r"group must hold values in \[0, 1\]; got 2 other"):
    metrics.group_rates(PRED[:4], y, np.array([1, 2, 2, 1]))
  with pytest.raises(ValueError, match=r"equal shapes.*'pred': \(4,\).*'label': \(3,\)"):
    metrics.accuracy(PRED[:4], y[:3])
  with pytest.raises(ValueError, match="label must hold"):
    metrics.evaluate(PRED[:4], y, g, z=np.array([0, 1, 2, 0]))
  with pytest.raises(ValueError, match="mask must hold non-negative"):
    metrics.evaluate(PRED[:4], y, g, mask=np.array([1, -1, 1, 1]))
  # Under jit the values are unknown when tracing: an invalid input makes every metric NaN.
  out = jax.jit(metrics.evaluate)(jnp.asarray(p), y, g)
  assert all(np.isnan(v) for v in out.values())
  out = jax.jit(metrics.evaluate)(PRED[:4], y, jnp.array([1, 2, 2, 1]))
  assert all(np.isnan(v) for v in out.values())
  good = jax.jit(metrics.evaluate)(PRED[:4], y, g)
  np.testing.assert_allclose(good["accuracy_y"], metrics.accuracy(PRED[:4], y))


def test_disparate_impact_of_the_favourable_outcome():
  # Selection rates [3/5, 2/5]; with favourable 0 the rates of pred == 0 are [2/5, 3/5].
  np.testing.assert_allclose(metrics.disparate_impact(PRED, GROUP), 2 / 3, rtol=1e-6)
  np.testing.assert_allclose(metrics.disparate_impact(PRED, GROUP, favorable=0), 3 / 2, rtol=1e-6)
  np.testing.assert_allclose(metrics.evaluate(PRED, Y, GROUP, favorable=0)["di"], 3 / 2, rtol=1e-6)
  with pytest.raises(ValueError, match="favorable=2"):
    metrics.disparate_impact(PRED, GROUP, favorable=2)


def test_bootstrap_counts_undefined_replicates():
  # Group 1 has a single row: resamples without it leave its rate undefined (NaN).
  g = np.array([0] * 19 + [1])
  p = np.ones(20, int)
  stat = lambda a: {"sr1": metrics.selection_rates(a["p"], a["g"])[1]}
  ci = metrics.bootstrap_ci(jax.random.key(0), stat, {"p": p, "g": g}, num_resamples=300)["sr1"]
  # P(row 20 absent from a resample) = (19/20)**20 = 0.358.
  assert abs(ci["undefined"] / 300 - 0.358) < 0.1 and ci["low"] == ci["high"] == 1.0
