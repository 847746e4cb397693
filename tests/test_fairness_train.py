"""The five fair models train through lipprune.train.make_train_step and do what they claim."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lipprune import models
from lipprune.fairness import losses, synthetic, training

CFG = synthetic.GeneratorConfig(n_train=200, n_test=2000, n_unlabeled=2000)
TCFG = training.TrainConfig(epochs=10, batch_size=20, penalty_batch_size=500)


def _split(s):
  return {"x": s["x"], "y": s["y"], "z": s["z"], "group": s["rho"]}


@pytest.fixture(scope="module")
def biased_results():
  model = models.create("logistic", 2)
  keys = jax.random.split(jax.random.key(0), 4)

  def one(key, eta):
    d = synthetic.generate(key, CFG, beta=0.4)
    return training.fit_and_evaluate(key, model, _split(d["train"]), _split(d["unlabeled"]),
                                     {"test": _split(d["test"])}, eta=eta, cfg=TCFG)

  return jax.jit(jax.vmap(one, (0, None)))(keys, 30.0)


def test_all_methods_finite_and_fair_models_win_on_clean_labels(biased_results):
  r = jax.tree.map(np.asarray, biased_results)
  for m in training.METHODS:
    assert np.all(np.isfinite(r[m]["final_loss"])), m
  mean = lambda m, k: float(np.nanmean(r[m]["test"][k]))
  # Under strong label bias the baseline learns the bias: low DI; the penalty restores parity.
  assert mean("baseline", "di") < 0.6
  assert mean("semisupervised", "di") > mean("baseline", "di") + 0.2
  assert mean("inprocessing", "di") > mean("baseline", "di") + 0.2
  # Scored on clean labels the fair and oracle models beat the baseline.
  for m in ("oracle", "reweighing", "inprocessing", "semisupervised"):
    assert mean(m, "f1_z") > mean("baseline", "f1_z"), m


def test_penalized_loss_reduces_to_nll_at_eta_zero_and_adds_penalty():
  model = models.create("logistic", 2)
  d = synthetic.generate(jax.random.key(1), CFG)
  params, ms = model.init(jax.random.key(2), d["train"]["x"][:1])
  batch = {"x": d["train"]["x"], "y": d["train"]["y"], "penalty_x": d["test"]["x"],
           "penalty_group": d["test"]["rho"], "penalty_y": d["test"]["y"]}
  nll, _ = losses.classification_loss(model)(params, ms, batch, None)
  l0, aux0 = losses.penalized_loss(model, 0.0)(params, ms, batch, None)
  l5, aux5 = losses.penalized_loss(model, 5.0)(params, ms, batch, None)
  np.testing.assert_allclose(l0, nll, rtol=1e-6)
  np.testing.assert_allclose(l5, nll + 5.0 * aux5["metrics"]["penalty"], rtol=1e-6)
  # The penalty equals the numpy formula on the model's probabilities.
  logits, _ = model.apply(params, ms, d["test"]["x"], train=False)
  p = np.asarray(jax.nn.softmax(logits)[:, 1])
  g = np.asarray(d["test"]["rho"])
  np.testing.assert_allclose(aux0["metrics"]["penalty"], (p[g == 1].mean() - p[g == 0].mean()) ** 2,
                             rtol=1e-4)
  _, aux_eo = losses.penalized_loss(model, 1.0, "eodds")(params, ms, batch, None)
  assert float(aux_eo["metrics"]["penalty"]) >= 0
  with pytest.raises(ValueError, match="penalty"):
    losses.penalized_loss(model, 1.0, "nope")


def test_mlp_and_masked_training_and_eodds():
  model = models.create("mlp", 2, hidden=(8,))
  d = synthetic.generate(jax.random.key(3), CFG, beta=0.2)
  train = _split(d["train"])
  # A mask that drops every example but the first 100 must equal training on the first 100 only
  # when batches cover the same rows: check instead that masked rows carry no gradient signal.
  mask = (jnp.arange(200) < 100).astype(jnp.float32)
  train_masked = {**train, "mask": mask}
  cfg = training.TrainConfig(epochs=2, batch_size=200, penalty="eodds")
  p1, _, l1 = jax.jit(lambda k: training.fit(k, model, "inprocessing", train_masked, None, eta=1.0, cfg=cfg))(
      jax.random.key(4))
  garbage = {**train_masked, "y": jnp.where(mask > 0, train["y"], 1 - train["y"])}
  p2, _, l2 = jax.jit(lambda k: training.fit(k, model, "inprocessing", garbage, None, eta=1.0, cfg=cfg))(
      jax.random.key(4))
  # Flipping the labels of masked-out rows changes the eodds penalty cells only through masked rows.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), p1, p2)
  assert np.all(np.isfinite(np.asarray(l1)))
  with pytest.raises(ValueError, match="label-free"):
    training.fit(jax.random.key(0), model, "semisupervised", train, _split(d["unlabeled"]), cfg=cfg)
  with pytest.raises(ValueError, match="method"):
    training.fit(jax.random.key(0), model, "magic", train, None)
