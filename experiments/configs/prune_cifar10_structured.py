"""Structured (filter) pruning of Li et al., "Pruning Filters for Efficient ConvNets" (ICLR 2017), as
Renda et al. (ICLR 2020, Sec. 3) retrain it: one-shot L1-norm filter pruning with the published
per-layer fractions, then fine-tuning, weight rewinding or learning-rate rewinding, on CIFAR-10 with
the CIFAR recipe of prune_cifar10_resnet20.py (VGG-16: the same schedule; Li et al. trained it for
160 epochs, Renda et al. re-train everything with the ResNet recipe).

Argument (``--config=...prune_cifar10_structured.py:NAME``):

* ``vgg16`` (VGG-16-pruned-A): 50% of the filters of conv layers 1 and 8-13 (``conv_0``,
  ``conv_7 .. conv_12``), the others kept.
* ``resnet56`` (ResNet-56-pruned-B): only the first conv of each residual block, 60% / 30% / 10% of
  its filters in stages 1 / 2 / 3, skipping the sensitive layers 16, 18, 20, 34, 38, 54 (conv layer
  numbers counting the stem as 1, so block i's first conv is layer 2 + 2i).
* ``resnet110`` (ResNet-110-pruned-B): 50% / 40% / 30% in stages 1 / 2 / 3, skipping layers 36, 38
  and 74.

The driver adds the bias/batch-norm companions of removed filters to the masks, so the result can be
rebuilt physically smaller with `lipprune.sparsity.shrink` (see bench/bench_shrink.py).
"""
import ml_collections

from experiments.configs import prune_cifar10_resnet20


def _resnet_rates(blocks_per_stage: int, stage_rates, skip_layers) -> dict:
  rates = {"default": 0.0}
  for i in range(3 * blocks_per_stage):
    if 2 + 2 * i in skip_layers:
      continue
    rates[rf"^block_{i}/conv_0/"] = stage_rates[i // blocks_per_stage]
  return rates


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
  c.prune.mode = "one_shot"
  c.prune.rounds = 1
  c.prune.layer_rates = ml_collections.ConfigDict(LAYER_RATES[model])
  c.arms = ("filter_l1:fine_tune", "filter_l1:weight_rewind@136", "filter_l1:lr_rewind",
            "random:lr_rewind")
  return c
