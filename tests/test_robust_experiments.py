"""End-to-end tests of experiments.robust and experiments.separation on embedded digits."""
import os

import jax
import numpy as np
import pytest

from experiments import joint, robust, robust_specs, separation
from experiments.configs import joint_robust_digits, robust_digits_mlp, separation_digits
from lipprune import data as data_lib
from lipprune.train import io


def _tiny_config():
  c = robust_digits_mlp.get_config()
  c.methods = "natural,trades:beta=3"
  c.num_seeds = 2
  c.num_epochs = 1
  c.model_kwargs.hidden = (16,)
  c.train_attack_steps = 2
  c.eval_steps = 3
  c.eval_multi_target = False
  c.lip_steps = 2
  c.eval_max_examples = 64
  c.eval_batch_size = 64
  c.aa_steps = 5
  c.aa_targets = 2
  c.log_every = 10
  return c


def test_robust_end_to_end_and_finished_rerun(tmp_path):
  config = _tiny_config()
  table = robust.run(config, str(tmp_path))
  assert [e["method"] for e in table] == ["natural", "trades:beta=3"]
  rows = [io.read_json(os.path.join(tmp_path, "runs", m, f"seed{s}", "results.json"))
          for m in ("natural", "trades_beta3") for s in (0, 1)]
  for e, runs in zip(table, (rows[:2], rows[2:])):
    assert e["seeds"] == 2
    np.testing.assert_allclose(e["test_adv_accuracy"], np.mean([r["test_adv_accuracy"] for r in runs]))
    np.testing.assert_allclose(e["gap"], np.mean([r["train_accuracy"] - r["test_accuracy"] for r in runs]))
    for r in runs:
      assert 0 <= r["test_adv_accuracy"] <= r["test_accuracy"] <= 1 and r["test_lipschitz"] > 0
      assert 0 <= r["test_aa_accuracy"] <= r["test_apgd_ce_accuracy"] <= r["test_accuracy"]
    np.testing.assert_allclose(e["test_aa_accuracy"],
                               np.mean([r["test_aa_accuracy"] for r in runs]))
  assert "AutoAttack test acc" in (tmp_path / "table.md").read_text()
  for name in ("table.csv", "table.md", "results.csv", "robust_adv_vs_lipschitz.png"):
    assert os.path.getsize(os.path.join(tmp_path, name)) > 0
  mtime = os.path.getmtime(os.path.join(tmp_path, "table.csv"))
  again = robust.run(config, str(tmp_path))
  assert again == table and os.path.getmtime(os.path.join(tmp_path, "table.csv")) == mtime


@pytest.mark.parametrize("field,value,match", [
    ("methods", "natural,madry", "natural"),
    ("methods", "trades:gamma=1", "beta"),
    ("norm", "l1", "linf"),
    ("model", "nope", "mlp"),
])
def test_bad_config_fails_before_compute(tmp_path, field, value, match):
  config = _tiny_config()
  config[field] = value
  with pytest.raises(ValueError, match=match):
    robust.run(config, str(tmp_path / "w"))
  assert not os.path.exists(tmp_path / "w")


def test_markdown_shows_na_for_a_single_seed():
  config = _tiny_config()
  rows = [{"method": "natural", "seed": 0, **{c: 0.5 for c in robust.TABLE_COLUMNS}}]
  table = robust.summarize(rows, ["natural"])
  assert table[0]["test_accuracy_std"] is None
  md = robust.markdown_table(table, config)
  assert "50.0 ± n/a" in md and "± 0.0" not in md and "AutoAttack" not in md


@pytest.mark.parametrize("changes,match", [
    (dict(dataset="mnist1d"), r"config\.box: dataset 'mnist1d' declares no input range"),
    (dict(eps=2.0), r"config\.eps=2\.0 must lie in \(0, 1\]"),
    (dict(eps=0.0), r"config\.eps=0\.0 must lie in \(0, 1\]"),
    (dict(dataset="mnist1d", box=(-6.0, 5.0), eps=12.0),
     r"config\.eps=12\.0 must lie in \(0, 11\]"),
    (dict(lip_eps=1.5), r"config\.lip_eps=1\.5 must lie in \(0, 1\]"),
    (dict(box=(1.0, 0.0)), r"config\.box=\(1\.0, 0\.0\); expected \(lo, hi\) with lo < hi"),
    (dict(train_attack_steps=0), r"config\.train_attack_steps=0 must be > 0"),
    (dict(eval_steps=0), r"config\.eval_steps=0 must be > 0"),
    (dict(lip_steps=0), r"config\.lip_steps=0 must be > 0"),
    (dict(aa_steps=0), r"config\.aa_steps=0 must be > 0"),
    (dict(lip_estimator="best"), r"lip_estimator"),
    (dict(methods="trades:eps=1.5"), r"config\.methods \('trades:eps=1\.5'\) eps=1\.5 must lie in"),
    (dict(methods="trades:steps=0"), r"steps=0 must be a number > 0"),
    (dict(methods="natural:lr=-1"), r"lr=-1 must be a number > 0"),
])
def test_threat_model_and_input_range_fail_before_compute(tmp_path, changes, match):
  config = _tiny_config()
  for k, v in changes.items():
    config[k] = v
  with pytest.raises(ValueError, match=match):
    robust.run(config, str(tmp_path / "w"))
  assert not os.path.exists(tmp_path / "w")


def test_explicit_box_admits_unbounded_data_and_reaches_the_attacks(monkeypatch):
  config = _tiny_config()
  config.dataset, config.box, config.eps = "mnist1d", (-6.0, 5.0), 0.5
  robust.validate_config(config)
  assert robust_specs.resolve_box(config) == (-6.0, 5.0)
  from lipprune import models
  from lipprune.robust import attacks
  seen = []
  real_pgd = attacks.pgd

  def recording_pgd(*args, **kwargs):
    seen.append(kwargs["box"])
    return real_pgd(*args, **kwargs)

  monkeypatch.setattr(attacks, "pgd", recording_pgd)
  model = models.create("mlp", 10, hidden=(8,))
  x = np.zeros((4, 40), np.float32)
  params, state = model.init(jax.random.key(0), x)
  for spec in ("trades:beta=1", "adversarial"):
    robust_specs.build_loss(model, spec, config)(params, state, {"x": x, "y": np.zeros(4, np.int32)},
                                           jax.random.key(1))
  assert seen == [(-6.0, 5.0), (-6.0, 5.0)]


def test_declared_input_ranges_hold_for_embedded_data():
  for name in ("digits", "mnist5k", "mnist1d"):
    x = data_lib.load(name, "train").x
    declared = data_lib.input_range(name)
    if declared is None:
      assert x.min() < 0 or x.max() > 1, name  # undeclared because it is not in [0, 1]
    else:
      assert declared[0] <= x.min() and x.max() <= declared[1], name
  assert set(data_lib.INPUT_RANGES) >= set(data_lib.NAMES)


def test_joint_robust_part_checks_the_threat_model(tmp_path):
  config = joint_robust_digits.get_config()
  config.eps = 2.0
  with pytest.raises(ValueError, match=r"config\.eps=2\.0 must lie in \(0, 1\]"):
    joint.validate_config(config)
  config = joint_robust_digits.get_config("trades:beta=6:lr=0.1")
  with pytest.raises(ValueError, match="lr"):
    joint.validate_config(config)


def test_parse_method():
  assert robust_specs.parse_method("rst:lam=0.5") == ("rst", {"lam": 0.5})
  config = _tiny_config()
  assert robust_specs.parse_method("trades:beta=6:lr=0.5") == ("trades", {"beta": 6})
  assert robust_specs.method_learning_rate("trades:beta=6:lr=0.5", config) == 0.5
  assert robust_specs.method_learning_rate("trades:beta=6", config) == config.learning_rate
  assert robust_specs.parse_method("gradient_regularization:finite_difference=true:h=0.01") == (
      "gradient_regularization", {"finite_difference": True, "h": 0.01})


def test_separation_entry_point(tmp_path):
  config = separation_digits.get_config()
  config.max_train = 300
  config.max_test = 100
  out = separation.run(config, str(tmp_path))
  train = data_lib.load("digits", "train").take(np.arange(300))
  test = data_lib.load("digits", "test").take(np.arange(100))
  q = test.x.reshape(100, -1)
  r = train.x.reshape(300, -1)
  d = np.abs(q[:, None] - r[None]).max(-1)
  d[test.y[:, None] == train.y[None]] = np.inf
  np.testing.assert_allclose(out["linf"]["test_train"]["min"], d.min(1).min(), rtol=1e-6)
  for name in ("separation.md", "separation_linf.png", "separation_l2.png"):
    assert os.path.getsize(os.path.join(tmp_path, name)) > 0
  assert separation.run(config, str(tmp_path)) == out
  config.norms = "linf,l1"
  with pytest.raises(ValueError, match="norms"):
    separation.run(config, str(tmp_path / "bad"))
