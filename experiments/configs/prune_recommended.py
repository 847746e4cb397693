"""The paper's recommended pruning algorithm (Renda et al., ICLR 2020, Sec. 6, Algorithm 1): prune 20%
of the surviving weights by global magnitude, retrain with learning-rate rewinding for the full
original training time (t = T, optimizer state kept), and iterate.

``--config=experiments/configs/prune_recommended.py:BASE`` takes the data/model/schedule of a
prune_BASE.py config (default ``digits_mlp``, minutes on CPU; e.g. ``cifar10_resnet20``,
``mnist5k_mlp``), with 14 rounds (density 0.8^14 = 4.4%).
"""
from lipprune import cli


def get_config(base: str = "digits_mlp"):
  base = base or "digits_mlp"
  c = cli.sibling_config(__file__, f"prune_{base}").get_config()
  c.prune.mode = "iterative"  # Algorithm 1, step 4: "repeat steps 2 and 3 iteratively"
  c.prune.fraction = 0.2  # Algorithm 1, step 2: "prune the 20% lowest-magnitude weights globally"
  c.prune.normalize = ""  # ... by raw magnitude
  c.prune.rounds = 14  # lipprune's choice: density 0.8^14 = 4.4%
  # Algorithm 1, step 3: "retrain using learning rate rewinding for the original training time".
  c.retrain_epochs = float(c.num_epochs)
  # lottery.py PruningHook: LR rewinding restores only the global step; momentum is kept.
  c.lr_rewind_reset_opt = False
  c.arms = ("global_magnitude:lr_rewind",)
  return c
