"""Paper scale: exact separation of CIFAR-10 (50k train, 10k test), l_inf eps = 0.031 (the paper
reports a minimum train-train separation of 0.212); GPU. Also SVHN with
``--config.dataset=svhn_cropped``."""
from lipprune import cli

separation_digits = cli.sibling_config(__file__, "separation_digits")


def get_config():
  c = separation_digits.get_config()
  c.dataset = "cifar10"
  c.eps = 0.031
  c.l2_eps = 0.5
  c.query_chunk = 128
  c.ref_chunk = 1024
  return c
