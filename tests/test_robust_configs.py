"""The paper-scale robustness configs carry the official code's values (yangarbiter/
robust-local-lipschitz at 656616a; each value's source is commented in the config file), with the
official learning rates translated to mean-reduced losses by lr x batch size (SGD)."""
import pytest

from experiments import robust, robust_specs
from experiments.configs import robust_cifar10_wrn, robust_mnist, robust_svhn_wrn

# Fields every paper-scale config shares: official optimizer, threat-model and evaluation values.
_COMMON = dict(norm="linf", optimizer="sgd", nesterov=False, weight_decay=0.0, batch_size=64,
               lr_schedule="step", lr_decay_factor=0.1, train_attack_steps=10, seed=0,
               num_seeds=1, eval_steps=10, eval_restarts=1, eval_multi_target=False,
               lip_steps=10, lip_step_size=0.003, lip_eps=0.0, lip_estimator="ascent",
               lip_extra_estimators=("released",),
               eval_max_examples=0, box=())


def _check_common(config, dataset, model, augment, eps):
  robust.validate_config(config)
  for k, v in _COMMON.items():
    assert config[k] == v, k
  assert (config.dataset, config.model, config.augment, config.eps) == (dataset, model, augment, eps)


def _lrs(config):
  return {spec: pytest.approx(robust_specs.method_learning_rate(spec, config))
          for spec in robust_specs.method_specs(config)}


@pytest.mark.parametrize("arg,model", [("cnn1", "yang_cnn1"), ("cnn2", "yang_cnn2")])
def test_robust_mnist_official_values(arg, model):
  c = robust_mnist.get_config(arg)
  _check_common(c, "mnist", model, "none", 0.1)
  assert (c.num_epochs, tuple(c.lr_boundaries_epochs), c.momentum) == (160, (40, 80, 120, 140), 0.9)
  assert c.eval_step_size == pytest.approx(0.02)  # 2 eps / 10
  lr = 1e-4 * 64
  assert _lrs(c) == {
      "rst:lam=2": lr, "rst:lam=1": lr, "rst:lam=0.5": lr, "trades:beta=6": lr,
      "trades:beta=3": lr, "trades:beta=1": lr, "natural": lr, "adversarial": lr, "llr_yang": lr,
      "gradient_regularization:lam=0.5:lr=0.0128": 2 * lr}


@pytest.mark.parametrize("arg", ["nodropout", "dropout"])
def test_robust_cifar10_wrn_official_values(arg):
  c = robust_cifar10_wrn.get_config(arg)
  _check_common(c, "cifar10", "wrn", "crop_flip", 0.031)
  assert dict(c.model_kwargs) == {"depth": 40, "width": 10,
                                  "dropout_rate": 0.2 if arg == "dropout" else 0.0}
  assert (c.num_epochs, tuple(c.lr_boundaries_epochs), c.momentum) == (120, (40, 80, 100), 0.0)
  assert c.eval_step_size == pytest.approx(0.0062)
  hi, lo = 1e-2 * 64, 1e-3 * 64
  if arg == "nodropout":
    assert _lrs(c) == {
        "natural": hi, "rst:lam=2:lr=0.064": lo, "rst:lam=1:lr=0.064": lo,
        "rst:lam=0.5:lr=0.064": lo, "adversarial:lr=0.064": lo, "trades:beta=6": hi,
        "trades:beta=3": hi, "trades:beta=1": hi, "gradient_regularization:lam=0.5:lr=1.28": 2 * hi,
        "llr_yang:lr=0.064": lo}
  else:  # scripts/Table4.sh: advce with '-lrem2'
    assert _lrs(c) == {"natural": hi, "rst:lam=2:lr=0.064": lo, "trades:beta=3": hi,
                       "trades:beta=6": hi, "adversarial:lr=0.64": hi}


@pytest.mark.parametrize("arg", ["nodropout", "dropout"])
def test_robust_svhn_wrn_official_values(arg):
  c = robust_svhn_wrn.get_config(arg)
  _check_common(c, "svhn_cropped", "wrn", "none", 0.031)
  assert c.model_kwargs.dropout_rate == (0.5 if arg == "dropout" else 0.0)
  assert (c.num_epochs, tuple(c.lr_boundaries_epochs), c.momentum) == (60, (30, 50), 0.0)
  hi, lo = 1e-2 * 64, 1e-3 * 64
  assert _lrs(c) == {"natural": hi, "rst:lam=2:lr=0.064": lo, "adversarial:lr=0.064": lo,
                     "trades:beta=3": hi, "trades:beta=6": hi}
