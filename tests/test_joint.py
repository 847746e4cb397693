"""The joint study: pruning robust and fair models with the unchanged pruning driver."""
import numpy as np
import pytest

from experiments import joint
from experiments.configs import joint_fair_compas, joint_robust_digits
from lipprune import data as data_lib
from tests.conftest import shared_data_dir


def _small(config, **overrides):
  config.num_seeds = 1
  config.num_epochs = 3
  config.retrain_epochs = 3.0
  config.lr_boundaries_epochs = (2,)
  config.prune.rounds = 2
  config.arms = ("global_magnitude:fine_tune", "global_magnitude:lr_rewind")
  for k, v in overrides.items():
    setattr(config, k, v)
  return config


def test_robust_joint_rows_and_trades_beats_natural_on_lipschitz(tmp_path):
  trades = joint.run(_small(joint_robust_digits.get_config()), str(tmp_path / "trades"))
  natural = joint.run(_small(joint_robust_digits.get_config("natural")), str(tmp_path / "nat"))
  for res in (trades, natural):
    rows = res["rows"]
    assert len(rows) == 2 * 3  # 2 arms x (dense + 2 rounds)
    for r in rows:
      assert 0.0 <= r["test_adv_accuracy"] <= r["test_accuracy"]
      assert r["test_lipschitz"] > 0
    assert {"test_adv_accuracy_mean", "test_lipschitz_std"} <= set(res["summary"][0])
  assert (tmp_path / "trades" / "test_lipschitz_vs_compression.png").exists()
  lip = lambda res: np.mean([r["test_lipschitz"] for r in res["rows"]])
  adv = lambda res: np.mean([r["test_adv_accuracy"] for r in res["rows"]])
  # The robust loss really trains every round: TRADES(6) is smoother and more robust throughout.
  assert lip(trades) < 0.7 * lip(natural)
  assert adv(trades) > adv(natural) + 0.1


def test_label_bias_hook_flips_toward_the_unfavourable_label():
  rng = np.random.default_rng(0)
  n = 20000
  z = rng.integers(0, 2, n).astype(np.int32)
  g = rng.integers(0, 2, n).astype(np.int32)
  ds = data_lib.Dataset(x=np.zeros((n, 1), np.float32), y=z.copy(), num_classes=2, name="compas",
                        extras={"group": g, "z": z})
  import jax
  out = joint._with_label_bias(ds, 0.3, jax.random.key(0))
  np.testing.assert_array_equal(out.extras["z"], z)  # clean labels kept
  # COMPAS: 1 (re-offence) is unfavourable: protected 0 -> 1, unprotected 1 -> 0, each at rate 0.3.
  assert abs(np.mean(out.y[(g == 1) & (z == 0)]) - 0.3) < 0.02
  assert abs(np.mean(1 - out.y[(g == 0) & (z == 1)]) - 0.3) < 0.02
  assert np.all(out.y[(g == 1) & (z == 1)] == 1) and np.all(out.y[(g == 0) & (z == 0)] == 0)


@pytest.mark.skipif(shared_data_dir() is None, reason="needs ../shared/data (COMPAS CSV)")
def test_fair_joint_penalty_shrinks_the_parity_gap(tmp_path):
  kw = dict(data_dir=str(shared_data_dir()))
  fair = joint.run(_small(joint_fair_compas.get_config(), **kw), str(tmp_path / "fair"))
  base = joint.run(_small(joint_fair_compas.get_config("baseline"), **kw), str(tmp_path / "base"))
  gap = lambda res: np.mean([abs(r["test_dp_diff"]) for r in res["rows"]])
  assert gap(fair) < gap(base)
  for r in fair["rows"]:
    for k in ("test_fpr_g0_z", "test_fpr_g1_z", "test_f1_y", "test_f1_z", "test_accuracy_z"):
      assert 0.0 <= r[k] <= 1.0


@pytest.mark.parametrize("field,value,match", [
    ("kind", "both", r"config\.joint\.kind='both'.*'robust', 'fair'"),
    ("method", "trades:gamma=2", "trades takes no 'gamma'"),
])
def test_bad_joint_config_fails_before_compute(tmp_path, field, value, match):
  c = _small(joint_robust_digits.get_config())
  setattr(c.joint, field, value)
  with pytest.raises(ValueError, match=match):
    joint.run(c, str(tmp_path))
  assert not (tmp_path / "config.json").exists()


def test_fair_joint_needs_a_tabular_dataset(tmp_path):
  c = _small(joint_fair_compas.get_config(), dataset="digits")
  with pytest.raises(ValueError, match=r"config\.dataset='digits'.*'compas'"):
    joint.run(c, str(tmp_path))
