"""Structured (filter) pruning of Li et al., "Pruning Filters for Efficient ConvNets" (ICLR 2017), as
Renda et al. (ICLR 2020, Sec. 3) retrain it: one-shot L1-norm filter pruning with the published
per-layer fractions, then fine-tuning, weight rewinding or learning-rate rewinding, on CIFAR-10 with
the recipe of prune_cifar10_resnet20.py (every value there follows lottery-ticket/
rewinding-iclr20-public). Random filter pruning with the same per-layer fractions is the structured
control (``random_filter``: whole filters, shrinkable).

Argument (``--config=...prune_cifar10_structured.py:NAME``), the fractions of the official
lottery/lottery/l1_filter_pruning.py, whose ``conv_k`` counts conv layers from 1 (the stem):

* ``vgg16`` (VGG-16-pruned-A, ``vgg_16_A``): 50% of the filters of conv layers 1 and 8-13
  (``conv_0``, ``conv_7 .. conv_12`` here). The network is the official ``vgg16_nofc``
  (gpu-src/official/vgg/vgg_model.py and the README: batch norm and a single fully connected
  layer, no hidden classifier: ``classifier_width=0``), weight decay 5e-4
  (gpu-src/official/vgg/cifar10_main.py), otherwise the ResNet recipe.
* ``resnet56`` (ResNet-56-pruned-B, ``resnet_56_B``): only the first conv of each residual block,
  60% / 30% / 10% of its filters in stages 1 / 2 / 3, skipping layers 16, 18, 20, 34, 38, 54 (block
  i's first conv is layer 2 + 2i).
* ``resnet110`` (ResNet-110-pruned-B, ``resnet_110_B``): 50% / 40% / 30% in stages 1 / 2 / 3,
  skipping layers 36, 38 and 74.

Difference from the official code: it rounds each layer's filter count ``alive * fraction``
stochastically (``int(n) + (random.random() < frac(n))``, Python's ``random`` seeded 0,
prune_functions.py ``_prune_resnet_generic``); lipprune rounds to the nearest integer, so a layer
may keep one filter more or less.

The driver adds the bias/batch-norm companions of removed filters to the masks, so the result can be
rebuilt physically smaller with `lipprune.sparsity.shrink`; its rows report the alive parameters and
FLOPs of that smaller network.
"""
import ml_collections

from lipprune import cli

prune_cifar10_resnet20 = cli.sibling_config(__file__, "prune_cifar10_resnet20")


def _resnet_rates(blocks_per_stage: int, stage_rates, skip_layers) -> dict:
  rates = {"default": 0.0}
  for i in range(3 * blocks_per_stage):
    if 2 + 2 * i in skip_layers:
      continue
    rates[rf"^block_{i}/conv_0/"] = stage_rates[i // blocks_per_stage]
  return rates


# lottery/lottery/l1_filter_pruning.py: vgg_16_A, resnet_56_B, resnet_110_B.
LAYER_RATES = {
    "vgg16": {r"^conv_(0|7|8|9|10|11|12)/": 0.5, "default": 0.0},
    "resnet56": _resnet_rates(9, (0.6, 0.3, 0.1), {16, 18, 20, 34, 38, 54}),
    "resnet110": _resnet_rates(18, (0.5, 0.4, 0.3), {36, 38, 74}),
}


def get_config(model: str = "resnet56"):
  model = model or "resnet56"
  if model not in LAYER_RATES:
    raise ValueError(f"config argument {model!r}; expected one of {sorted(LAYER_RATES)}")
  c = prune_cifar10_resnet20.get_config(model)
  if model == "vgg16":
    c.model_kwargs = ml_collections.ConfigDict({
        "classifier_width": 0,  # vgg_model.py '16_nofc': one fc layer on the 512 features
        "kernel_init": "tf_official",  # vgg_model.py get_weight: variance scaling / N(0, 0.01^2)
        "bn_momentum": 0.997,  # vgg_model.py: _BATCH_NORM_DECAY = 0.997
    })
    c.weight_decay = 5e-4  # gpu-src/official/vgg/cifar10_main.py: weight_decay = 5e-4
  # prune_functions.py prune_<net>_<level>: one-shot from the trained network.
  c.prune.mode = "one_shot"
  c.prune.rounds = 1
  c.prune.layer_rates = ml_collections.ConfigDict(LAYER_RATES[model])
  c.arms = ("filter_l1:fine_tune", "filter_l1:weight_rewind", "filter_l1:lr_rewind",
            "random_filter:lr_rewind")
  return c
