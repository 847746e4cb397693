"""ResNet-20 on CIFAR-10, the standard recipe (He et al. 2016; the setting Renda et al. 2020 prune):
182 epochs, batch 128, SGD momentum 0.9 (no Nesterov), LR 0.1 divided by 10 at epochs 91 and 136,
weight decay 2e-4 on every parameter (batch norm included), pad-4 crop + flip; 2,000 of the 10,000
test images held out for validation. Needs CIFAR-10 prepared for tfds (see README)."""
from lipprune import cli

mnist5k_mlp = cli.sibling_config(__file__, "mnist5k_mlp")


def get_config():
  c = mnist5k_mlp.get_config()
  c.dataset = "cifar10"
  c.validation_size = 2000
  c.augment = "crop_flip"
  c.model = "resnet20"
  c.model_kwargs = {}
  c.batch_size = 128
  c.num_epochs = 182
  c.learning_rate = 0.1
  c.lr_schedule = "step"
  c.lr_boundaries_epochs = (91, 136)
  c.weight_decay = 2e-4
  c.log_every = 200
  c.eval_every = 2000
  c.checkpoint_every = 2000
  return c
