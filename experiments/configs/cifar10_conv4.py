"""Conv-4 (Frankle & Carbin 2019) on CIFAR-10: Adam 3e-4, batch 60, as in the Lottery Ticket paper
(25k iterations ~ 30 epochs). Needs CIFAR-10 prepared for tfds (see README)."""
from lipprune import cli

mnist5k_mlp = cli.sibling_config(__file__, "mnist5k_mlp")


def get_config():
  c = mnist5k_mlp.get_config()
  c.dataset = "cifar10"
  c.model = "conv4"
  c.model_kwargs = {}
  c.batch_size = 60
  c.num_epochs = 30
  c.optimizer = "adam"
  c.weight_decay = 0.0
  c.learning_rate = 3e-4
  c.lr_schedule = "constant"
  c.log_every = 200
  c.eval_every = 2000
  c.checkpoint_every = 2000
  return c
