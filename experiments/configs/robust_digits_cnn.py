"""Every robust method on digits with a small CNN (conv2: two 3x3 convs of 64, max pool, two dense
layers of 256; Frankle & Carbin's Conv-2), l_inf eps = 0.1. Slower than the MLP on CPU."""
import ml_collections

from lipprune import cli

robust_digits_mlp = cli.sibling_config(__file__, "robust_digits_mlp")


def get_config():
  c = robust_digits_mlp.get_config()
  c.model = "conv2"
  c.model_kwargs = ml_collections.ConfigDict()
  c.num_epochs = 20
  c.learning_rate = 0.02
  return c
