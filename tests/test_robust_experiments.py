"""End-to-end tests of experiments.robust and experiments.separation on embedded digits."""
import os

import numpy as np
import pytest

from experiments import robust, separation
from experiments.configs import robust_digits_mlp, separation_digits
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


def test_parse_method():
  assert robust.parse_method("rst:lam=0.5") == ("rst", {"lam": 0.5})
  assert robust.parse_method("gradient_regularization:finite_difference=true:h=0.01") == (
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
