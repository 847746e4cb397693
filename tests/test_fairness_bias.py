"""Bias injection hits its target rates; the generator is deterministic and keeps z independent of rho."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lipprune.fairness import bias, synthetic

N = 40000


def _se(p, n):  # 5 standard errors of a proportion.
  return 5 * np.sqrt(p * (1 - p) / n) + 1e-9


def _population(key, n=N, r=0.5):
  k1, k2 = jax.random.split(key)
  rho = (jax.random.uniform(k1, (n,)) < 0.5).astype(jnp.int32)
  z = (jax.random.uniform(k2, (n,)) < r).astype(jnp.int32)
  return np.asarray(rho), np.asarray(z)


@pytest.mark.parametrize("favorable", [1, 0])
def test_label_bias_rates(favorable):
  beta = 0.3
  rho, z = _population(jax.random.key(0))
  y = np.asarray(bias.label_bias(jax.random.key(1), z, rho, beta, favorable=favorable))
  biased = np.where(rho == 1, 1 - favorable, favorable)
  # Cells whose clean label differs from the biased label flip at rate beta; the others never.
  for cell in ((rho == 0) & (z != biased), (rho == 1) & (z != biased)):
    rate = (y[cell] != z[cell]).mean()
    assert abs(rate - beta) < _se(beta, cell.sum())
  assert np.all(y[z == biased] == z[z == biased])
  assert np.all(np.asarray(bias.label_bias(jax.random.key(1), z, rho, 0.0)) == z)


def test_flip_labels_group_class_rates_and_paper_special_case():
  rho, z = _population(jax.random.key(2))
  rates = np.array([[0.1, 0.4], [0.25, 0.05]])
  y = np.asarray(bias.flip_labels(jax.random.key(3), z, rho, rates))
  for g in (0, 1):
    for c in (0, 1):
      cell = (rho == g) & (z == c)
      assert abs((y[cell] != c).mean() - rates[g, c]) < _se(rates[g, c], cell.sum())
  # The paper's label bias is the special case [[beta, 0], [0, beta]] (same key, same uniforms).
  beta = 0.2
  paper = bias.label_bias(jax.random.key(5), z, rho, beta)
  flips = bias.flip_labels(jax.random.key(5), z, rho, [[beta, 0.0], [0.0, beta]])
  np.testing.assert_array_equal(paper, flips)


@pytest.mark.parametrize("sigma", [1.0, 2.0, 4.0, 8.0])
def test_selection_subsample_and_reassign_hit_r_over_sigma(sigma):
  rho, z = _population(jax.random.key(6), r=0.6)
  r = z[rho == 1].mean()
  keep = np.asarray(bias.selection_keep_mask(jax.random.key(7), z, rho, sigma))
  assert np.all(keep[(rho == 0) | (z == 0)])  # only protected positives are dropped
  kept_prot = keep & (rho == 1)
  share = z[kept_prot].mean()
  assert abs(share - r / sigma) < _se(r / sigma, kept_prot.sum())
  rho2 = np.asarray(bias.selection_reassign(jax.random.key(8), z, rho, sigma))
  assert np.all(rho2 <= rho) and np.all(rho2[z == 0] == rho[z == 0])
  share2 = z[rho2 == 1].mean()
  assert abs(share2 - r / sigma) < _se(r / sigma, (rho2 == 1).sum())


def test_first_kept():
  keep = jnp.array([False, True, True, False, True])
  idx, ok = bias.first_kept(keep, 2)
  np.testing.assert_array_equal(idx, [1, 2])
  assert bool(ok) and not bool(bias.first_kept(keep, 4)[1])


def test_generator_shapes_determinism_and_independence():
  cfg = synthetic.GeneratorConfig(n_test=20000, n_unlabeled=100)
  d1 = synthetic.generate(jax.random.key(0), cfg)
  d2 = synthetic.generate(jax.random.key(0), cfg)
  for split in ("train", "test", "unlabeled"):
    for k in ("x", "rho", "z", "y"):
      np.testing.assert_array_equal(d1[split][k], d2[split][k])
  assert d1["train"]["x"].shape == (200, 20) and d1["unlabeled"]["x"].shape == (100, 20)
  t = {k: np.asarray(v) for k, v in d1["test"].items()}
  # Feature 0 is the constant 1; the last input is rho; z = 1[w.x > 0]; beta=0 means y == z.
  assert np.all(t["x"][:, 0] == 1) and np.all(t["x"][:, -1] == t["rho"])
  np.testing.assert_array_equal(t["z"], (t["x"][:, :-1] @ np.asarray(d1["w"]) > 0).astype(int))
  np.testing.assert_array_equal(t["y"], t["z"])
  # Feature marginals (1/(j+1))**tau.
  np.testing.assert_allclose(t["x"][:, 1:5].mean(0), [1 / 2, 1 / 3, 1 / 4, 1 / 5], atol=0.03)
  # z independent of rho: the two conditional rates agree within sampling error.
  a, b = t["z"][t["rho"] == 1].mean(), t["z"][t["rho"] == 0].mean()
  assert abs(a - b) < 4 * np.sqrt(0.25 * (1 / (t["rho"] == 1).sum() + 1 / (t["rho"] == 0).sum()))
  assert abs(t["rho"].mean() - 0.5) < 0.02


def test_generator_biases_under_vmap_with_traced_parameters():
  cfg = synthetic.GeneratorConfig(n_test=10, n_unlabeled=10, selection="subsample")
  keys = jax.random.split(jax.random.key(1), 50)
  gen = jax.jit(jax.vmap(lambda k, b, s: synthetic.generate(k, cfg, beta=b, sigma=s), (0, None, None)))
  base = gen(keys, 0.0, 1.0)["train"]
  d = gen(keys, 0.3, 4.0)
  assert bool(jnp.all(d["pool_ok"]))
  tr = {k: np.asarray(v) for k, v in d["train"].items()}
  prot = tr["rho"] == 1
  r = np.asarray(base["z"])[np.asarray(base["rho"]) == 1].mean()
  assert abs(tr["z"][prot].mean() - r / 4) < 0.04
  flip_cell = prot & (tr["z"] == 1)
  unprot_neg = ~prot & (tr["z"] == 0)
  assert abs((tr["y"][unprot_neg] == 1).mean() - 0.3) < _se(0.3, unprot_neg.sum())
  assert abs((tr["y"][flip_cell] == 0).mean() - 0.3) < 0.1
  cfg_re = synthetic.GeneratorConfig(n_test=10, n_unlabeled=10, selection="reassign", sigma=4.0)
  tr2 = jax.vmap(lambda k: synthetic.generate(k, cfg_re)["train"])(keys)
  assert abs(np.asarray(tr2["z"])[np.asarray(tr2["rho"]) == 1].mean() - r / 4) < 0.04


def test_generator_config_validation():
  with pytest.raises(ValueError, match="selection"):
    synthetic.GeneratorConfig(selection="drop")


@pytest.mark.parametrize("favorable", [1, 0])
@pytest.mark.parametrize("sigma", [2.0, 8.0])
def test_paper_selection_divides_protected_favourable_rate_by_sigma(sigma, favorable):
  rho, z = _population(jax.random.key(9), r=0.6)
  fav = z == favorable
  p = fav[rho == 1].mean()
  keep = np.asarray(bias.selection_paper_keep_mask(jax.random.key(10), z, rho, sigma, favorable=favorable))
  target = (rho == 1) & fav
  assert np.all(keep[~target])
  assert abs(keep[target].mean() - 1 / sigma) < _se(1 / sigma, target.sum())
  kept_prot = keep & (rho == 1)
  want = bias.selected_share(p, sigma)
  assert abs(fav[kept_prot].mean() - want) < _se(want, kept_prot.sum())
  rho2 = np.asarray(bias.selection_paper_assign(jax.random.key(11), z, rho, sigma, favorable=favorable))
  # P(rho = 1 | z = f) is divided by sigma; P(rho = 1 | z != f) is unchanged.
  a = rho[fav].mean()
  assert abs(rho2[fav].mean() - a / sigma) < _se(a / sigma, fav.sum())
  np.testing.assert_array_equal(rho2[~fav], rho[~fav])
  assert abs(fav[rho2 == 1].mean() - want) < _se(want, (rho2 == 1).sum())


def test_selected_share_at_sigma_2_4_8():
  np.testing.assert_allclose([bias.selected_share(0.5, s) for s in (2, 4, 8)], [1 / 3, 1 / 5, 1 / 9])
  np.testing.assert_allclose([bias.selected_share(0.5, s, "share") for s in (2, 4, 8)],
                             [0.25, 0.125, 0.0625])
  with pytest.raises(ValueError, match="definition='both'"):
    bias.selected_share(0.5, 2, "both")


def test_generator_paper_selection_default():
  cfg = synthetic.GeneratorConfig(n_train=400, n_test=10, n_unlabeled=10)
  assert cfg.selection == "paper"
  keys = jax.random.split(jax.random.key(2), 100)
  tr = jax.vmap(lambda k: synthetic.generate(k, cfg, sigma=4.0)["train"])(keys)
  z, rho = np.asarray(tr["z"]).ravel(), np.asarray(tr["rho"]).ravel()
  assert abs(rho[z == 1].mean() - 0.5 / 4) < _se(0.125, (z == 1).sum())
  assert abs(rho[z == 0].mean() - 0.5) < _se(0.5, (z == 0).sum())
