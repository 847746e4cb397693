"""A sweep over the retraining length t (Renda et al., ICLR 2020, Figs. 2-4): fine-tuning, weight
rewinding and learning-rate rewinding, each with t in {T/4, T/2, 3T/4, T} epochs, one-shot global
magnitude pruning to 80% sparsity (``--config.prune.target_sparsity=...`` for other points) on the
base config given as the argument (default ``digits_mlp``: CPU minutes; e.g. ``cifar10_resnet20``).
"""
import importlib


def get_config(base: str = "digits_mlp"):
  base = base or "digits_mlp"
  c = importlib.import_module(f"experiments.configs.prune_{base}").get_config()
  c.prune.mode = "one_shot"
  c.prune.rounds = 1
  c.prune.target_sparsity = 0.8
  t_values = [c.num_epochs * f for f in (0.25, 0.5, 0.75, 1.0)]
  c.arms = tuple(f"global_magnitude:{m}@{t:g}" for m in ("fine_tune", "weight_rewind", "lr_rewind")
                 for t in t_values)
  return c
