"""Paper scale: exact separation of MNIST (60k x 60k train-train, 10k x 60k test-train), l_inf
eps = 0.1 (the paper reports a minimum train-train separation of 0.737). Meant for a GPU: query
chunks of 256 against reference chunks of 2048 are 256 * 2048 * 784 floats (1.6 GB) per tile."""
from lipprune import cli

separation_digits = cli.sibling_config(__file__, "separation_digits")


def get_config():
  c = separation_digits.get_config()
  c.dataset = "mnist"
  c.eps = 0.1
  c.l2_eps = 1.0
  c.query_chunk = 256
  c.ref_chunk = 2048
  return c
