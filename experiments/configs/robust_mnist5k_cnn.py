"""Every robust method on mnist5k with the paper's small CNN "CNN1" (lipprune.robust.models,
``yang_cnn1``), l_inf eps = 0.1. A TRADES epoch takes about 1.5 minutes on 2 CPU cores, so the
full 8 methods x 3 seeds x 10 epochs is hours on CPU and minutes on a GPU; on CPU pick a subset,
e.g. --config.methods=natural,trades:beta=6 --config.num_seeds=1."""
import ml_collections

from lipprune import cli

robust_digits_mlp = cli.sibling_config(__file__, "robust_digits_mlp")


def get_config():
  c = robust_digits_mlp.get_config()
  c.dataset = "mnist5k"
  c.model = "yang_cnn1"
  c.model_kwargs = ml_collections.ConfigDict()
  c.num_epochs = 10
  c.learning_rate = 0.01
  c.eval_batch_size = 256
  return c
