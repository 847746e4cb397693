"""The paper's recommended pruning algorithm (Renda et al., ICLR 2020, Sec. 6): prune 20% of the
surviving weights by global magnitude, retrain with learning-rate rewinding for the full original
training time (t = T, optimizer state kept), and iterate.

``--config=experiments/configs/prune_recommended.py:BASE`` takes the data/model/schedule of a
prune_BASE.py config (default ``digits_mlp``, minutes on CPU; e.g. ``cifar10_resnet20``,
``mnist5k_mlp``), with 14 rounds (density 0.8^14 = 4.4%).
"""
import importlib


def get_config(base: str = "digits_mlp"):
  base = base or "digits_mlp"
  c = importlib.import_module(f"experiments.configs.prune_{base}").get_config()
  c.prune.mode = "iterative"
  c.prune.fraction = 0.2
  c.prune.rounds = 14
  c.retrain_epochs = float(c.num_epochs)
  c.lr_rewind_reset_opt = False
  c.arms = ("global_magnitude:lr_rewind",)
  return c
