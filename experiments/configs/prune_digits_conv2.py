"""Conv-2 (Frankle & Carbin 2019) on sklearn digits (8x8): iterative global magnitude pruning, all
three retraining methods and random pruning, 3 seeds, the schedule of prune_digits_mlp.py. CPU
minutes (about 4.3M weights, most in the first dense layer, as in the paper's Conv-2)."""
import ml_collections

from lipprune import cli

prune_digits_mlp = cli.sibling_config(__file__, "prune_digits_mlp")


def get_config():
  c = prune_digits_mlp.get_config()
  c.model = "conv2"
  # Gaussian Glorot init, as Frankle & Carbin (ICLR 2019, Fig. 2) train Conv-2.
  c.model_kwargs = ml_collections.ConfigDict({"widths": (32, 32), "hidden": (128, 128),
                                              "kernel_init": "glorot_normal"})
  c.num_epochs = 20
  c.lr_boundaries_epochs = (10, 15)
  c.learning_rate = 0.02
  c.retrain_epochs = 20.0
  c.prune.rounds = 10
  c.arms = ("global_magnitude:fine_tune", "global_magnitude:weight_rewind@15",
            "global_magnitude:lr_rewind", "random:lr_rewind")
  return c
