"""Paper scale, SVHN (Yang et al., NeurIPS 2020): l_inf eps = 0.031, WRN-40-10.

  --config=experiments/configs/robust_svhn_wrn.py           # WRN_40_10
  --config=experiments/configs/robust_svhn_wrn.py:dropout   # WRN_40_10_drop50

The SVHN block of scripts/Table4.sh (yangarbiter/robust-local-lipschitz at 656616a):
``<loss>-tor-WRN_40_10[_drop50]`` for ce, advbeta2ce, advce, strades3ce, strades6ce, without
augmentation, ``--eps 0.031``. As robust_cifar10_wrn (same get_hyper branch: SGD without momentum
or weight decay, batch 64, 1e-2 / 1e-3 on summed losses) except the values below.
"""
from lipprune import cli

robust_cifar10_wrn = cli.sibling_config(__file__, "robust_cifar10_wrn")

LR, LR_ADV = robust_cifar10_wrn.LR, robust_cifar10_wrn.LR_ADV
METHODS = (f"natural,rst:lam=2:lr={LR_ADV:g},adversarial:lr={LR_ADV:g},trades:beta=3,"
           "trades:beta=6")


def get_config(arg: str = "nodropout"):
  c = robust_cifar10_wrn.get_config(arg)
  c.dataset = "svhn_cropped"  # lolip/datasets: torchvision SVHN train/test / 255
  c.augment = "none"  # no 'aug01-' prefix for SVHN
  c.model_kwargs.dropout_rate = 0.5 if arg == "dropout" else 0.0  # WRN_40_10_drop50: dropRate 0.5
  c.methods = METHODS
  c.num_epochs = 60  # get_hyper: epochs 60 for svhn
  c.lr_boundaries_epochs = (30, 50)  # get_scheduler: n_epochs <= 60
  return c
