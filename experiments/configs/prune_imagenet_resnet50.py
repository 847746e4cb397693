"""Renda et al. (ICLR 2020), ImageNet ResNet-50, unstructured iterative global magnitude pruning.

Original training: 90 epochs, batch 1024, SGD with Nesterov momentum 0.9, LR 0.4 with a 5-epoch
linear warmup, divided by 10 at epochs 30, 60 and 80, weight decay 1e-4. Densities 0.8^k.

ImageNet does not fit in host memory, so it is only streamed (``config.streaming=True``, see
``experiments/configs/imagenet_resnet50.py`` for training it with experiments.train). The pruning
driver (experiments.prune) still loads its data in memory, so this job stops at config validation
with a message naming ``config.dataset`` and saying to stream it; pruning on a stream needs
experiments.prune to open `experiments.train.open_streams` and evaluate with
`lipprune.train.loop.evaluate_source`. TPU-pod / multi-GPU scale.
"""
from experiments.configs import prune_cifar10_resnet20


def get_config():
  c = prune_cifar10_resnet20.get_config("resnet50")
  c.dataset = "imagenet2012"
  c.validation_size = 0
  c.augment = "none"  # random-resized-crop + flip belongs to the ImageNet input pipeline
  c.batch_size = 1024
  c.num_epochs = 90
  c.nesterov = True
  c.learning_rate = 0.4
  c.warmup_epochs = 5
  c.lr_boundaries_epochs = (30, 60, 80)
  c.weight_decay = 1e-4
  c.retrain_epochs = 90.0
  c.arms = ("global_magnitude:fine_tune", "global_magnitude:weight_rewind@80",
            "global_magnitude:lr_rewind", "random:lr_rewind")
  c.eval_batch_size = 1024
  c.checkpoint_every = 1000
  return c
