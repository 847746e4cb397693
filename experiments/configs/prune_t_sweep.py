"""A sweep over the retraining time t (Renda et al., ICLR 2020, Sec. 4-5): fine-tuning, weight
rewinding and learning-rate rewinding, each at the ten t of the official CIFAR grid, after one-shot
global magnitude pruning to 80% sparsity (``--config.prune.target_sparsity=...`` for other points),
on the base config given as the argument (default ``digits_mlp``: CPU minutes; e.g.
``cifar10_resnet20``). Per density, the best t of each method is selected on the validation split
(experiments.study.select_t, as the paper and its plotting code do) and reported as the
``<method>@val`` rows of summary.csv and matching.csv.

The t grid: the official CIFAR run saves checkpoints at iterations 0, 4701, 12514, ..., 67201 of
T = 71108 (lottery-ticket/rewinding-iclr20-public, vision/gpu-src/README.md,
``--lottery_checkpoint_iters``); the retraining times are ``T - k`` for those k, here as the same
fractions of the base config's T (rounded to 0.01 epochs).
"""
from lipprune import cli

prune_cifar10_resnet20 = cli.sibling_config(__file__, "prune_cifar10_resnet20")


def t_grid(num_epochs: float) -> tuple[float, ...]:
  """Retraining times (epochs) at the official CIFAR rewinding points, scaled to ``num_epochs``."""
  T = prune_cifar10_resnet20.OFFICIAL_T_STEPS
  return tuple(round(num_epochs * (T - k) / T, 2)
               for k in prune_cifar10_resnet20.OFFICIAL_REWIND_STEPS)


def get_config(base: str = "digits_mlp"):
  base = base or "digits_mlp"
  c = cli.sibling_config(__file__, f"prune_{base}").get_config()
  c.prune.mode = "one_shot"
  c.prune.rounds = 1
  c.prune.target_sparsity = 0.8  # lipprune's choice; the paper's figures span many densities
  c.arms = tuple(f"global_magnitude:{m}@{t:g}" for m in ("fine_tune", "weight_rewind", "lr_rewind")
                 for t in t_grid(c.num_epochs))
  return c
