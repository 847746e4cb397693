"""Renda, Frankle & Carbin (ICLR 2020), ImageNet ResNet-50, unstructured iterative global magnitude
pruning (20% of the survivors per round).

Values follow the official TPU code, lottery-ticket/rewinding-iclr20-public
``vision/tpu-src/models/official/resnet/`` (resnet_main.py, configs/default.yaml) and its README
(``vision/tpu-src/models/README.md``), field by field in the comments.

Known differences that lipprune does not reproduce (the code wins where it is configurable):

* weight decay: the official loss decays every variable *except* batch norm (resnet_main.py,
  ``'batch_normalization' not in v.name``); lipprune's optimizer decays every parameter.
* init: the official model initializes the last batch-norm scale of each block to zero and the
  dense layer from N(0, 0.01^2) (resnet_model.py); lipprune's ``resnet50`` keeps its He init.
* the learning rate is a function of the fractional epoch (steps / 1251.1); here of the step with
  1,251 steps per epoch.

ImageNet does not fit in host memory, so it is only streamed (``config.streaming=True``, see
``experiments/configs/imagenet_resnet50.py`` for training it with experiments.train). The pruning
driver (experiments.prune) still loads its data in memory, so this job stops at config validation
with a message naming ``config.dataset`` and saying to stream it; pruning on a stream needs
experiments.prune to open `experiments.train.open_streams` and evaluate with
`lipprune.train.loop.evaluate_source`. TPU-pod / multi-GPU scale.
"""
import ml_collections

from lipprune import cli

prune_cifar10_resnet20 = cli.sibling_config(__file__, "prune_cifar10_resnet20")


def get_config():
  c = prune_cifar10_resnet20.get_config("resnet50")
  c.dataset = "imagenet2012"
  # Renda et al.'s split: 20% of the original test set (ImageNet's 50,000 validation images).
  c.validation_size = 10000
  c.augment = "none"  # random-resized-crop + flip belongs to the ImageNet input pipeline
  c.model_kwargs = ml_collections.ConfigDict()  # lipprune's resnet50 (see the differences above)
  c.batch_size = 1024  # configs/default.yaml: train_batch_size: 1024
  c.num_epochs = 90  # README: --train_steps 112590 = 90 epochs of 1251 steps
  c.optimizer = "sgd"
  c.momentum = 0.9  # default.yaml: momentum: 0.9
  c.nesterov = True  # resnet_main.py: MomentumOptimizer(..., use_nesterov=True)
  # resnet_main.py learning_rate_schedule: base_learning_rate 0.1 (default.yaml) * 1024 / 256.
  c.learning_rate = 0.4
  c.lr_schedule = "step"
  c.warmup_epochs = 5  # resnet_main.py get_lr_schedule: linear warmup to epoch 5
  c.lr_boundaries_epochs = (30, 60, 80)  # get_lr_schedule: multipliers 0.1 / 0.01 / 0.001
  c.lr_decay_factor = 0.1
  c.weight_decay = 1e-4  # default.yaml: weight_decay: 0.0001
  c.label_smoothing = 0.0  # default.yaml: label_smoothing: 0.0
  # README: REWIND_ITERATION=11259 of 112590 steps (epoch 9) -> t = 81 epochs for every method;
  # fine-tuning at --lottery_force_learning_rate 0.0004 = 0.4 * 0.001, the schedule's last rate.
  c.retrain_epochs = 81.0
  c.arms = ("global_magnitude:fine_tune", "global_magnitude:weight_rewind",
            "global_magnitude:lr_rewind", "random:lr_rewind")
  c.eval_batch_size = 1024  # default.yaml: eval_batch_size: 1024
  c.checkpoint_every = 1000
  return c
