"""Renda et al. (ICLR 2020), CIFAR-10 ResNet-20, unstructured: iterative global magnitude pruning
(20% of the survivors per round, densities 0.8^k down to 0.8^14 = 4.4%) with fine-tuning, weight
rewinding and learning-rate rewinding, random pruning as the control.

Original training is the CIFAR ResNet recipe: 182 epochs, batch 128, SGD momentum 0.9 without
Nesterov, LR 0.1 divided by 10 at epochs 91 and 136, weight decay 2e-4 on every parameter (batch
norm included), pad-4 crop + flip; 2,000 of the 10,000 test images held out for validation. Fine
tuning retrains at the final LR 0.001. ``retrain_epochs`` is t (the paper uses t = T for LR
rewinding and compares t values in prune_t_sweep.py). GPU/TPU scale: 3 seeds x 4 arms x 14 rounds x
182 epochs.

``python -m experiments.prune --config=experiments/configs/prune_cifar10_resnet20.py:resnet56``
selects ResNet-56 or ResNet-110 with the same recipe.
"""
from experiments.configs import prune_digits_mlp


def get_config(model: str = "resnet20"):
  c = prune_digits_mlp.get_config()
  c.dataset = "cifar10"
  c.validation_size = 2000
  c.augment = "crop_flip"
  c.model = model or "resnet20"
  c.model_kwargs = {}
  c.batch_size = 128
  c.num_epochs = 182
  c.optimizer = "sgd"
  c.momentum = 0.9
  c.nesterov = False
  c.learning_rate = 0.1
  c.lr_schedule = "step"
  c.lr_boundaries_epochs = (91, 136)
  c.lr_decay_factor = 0.1
  c.weight_decay = 2e-4
  c.retrain_epochs = 182.0
  c.arms = ("global_magnitude:fine_tune", "global_magnitude:weight_rewind@136",
            "global_magnitude:lr_rewind", "random:lr_rewind")
  c.log_every = 200
  c.eval_batch_size = 1000
  c.checkpoint_every = 2000
  return c
