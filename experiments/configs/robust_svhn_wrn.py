"""Paper scale, SVHN (Yang et al. 2020): l_inf eps = 0.031, WRN-40-10, with (``:dropout``) or
without dropout; like robust_cifar10_wrn but no flips (digits are not mirror symmetric), 60 epochs,
lr divided by 10 at epochs 20 and 40."""
from experiments.configs import robust_cifar10_wrn


def get_config(arg: str = "nodropout"):
  c = robust_cifar10_wrn.get_config(arg)
  c.dataset = "svhn_cropped"
  c.augment = "none"
  c.num_epochs = 60
  c.lr_boundaries_epochs = (20, 40)
  return c
