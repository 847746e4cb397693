"""ResNet-56 on CIFAR-10, unstructured iterative pruning: the recipe of prune_cifar10_resnet20.py."""
from lipprune import cli

prune_cifar10_resnet20 = cli.sibling_config(__file__, "prune_cifar10_resnet20")


def get_config():
  return prune_cifar10_resnet20.get_config("resnet56")
