"""Prune a robust model: TRADES (beta = 6) MLP on scikit-learn digits, l_inf eps = 0.1, iterative global
magnitude pruning of 20% per round for 10 rounds (density 0.8^10 = 10.7%), retrained with
fine-tuning, weight rewinding and LR rewinding, each retraining with the same robust loss. Every
round reports clean and adversarial (PGD-20) test accuracy and the local Lipschitz constant.

``:natural`` trains and prunes the same network with the natural loss, the baseline to compare with:

  python -m experiments.joint --config=experiments/configs/joint_robust_digits.py --workdir=/tmp/jr_trades
  python -m experiments.joint --config=experiments/configs/joint_robust_digits.py:natural --workdir=/tmp/jr_nat
"""
import ml_collections

from lipprune import cli

prune_digits_mlp = cli.sibling_config(__file__, "prune_digits_mlp")


def get_config(method: str = "trades:beta=6"):
  c = prune_digits_mlp.get_config()
  c.joint = ml_collections.ConfigDict({"kind": "robust", "method": method})
  c.model_kwargs = ml_collections.ConfigDict({"hidden": (256,)})
  c.num_seeds = 3
  c.num_epochs = 20
  c.lr_boundaries_epochs = (10, 15)
  c.retrain_epochs = 20.0
  c.prune.rounds = 10
  c.arms = ("global_magnitude:fine_tune", "global_magnitude:weight_rewind@15",
            "global_magnitude:lr_rewind")
  # Threat model (as experiments/configs/robust_digits_mlp.py).
  c.norm = "linf"
  c.eps = 0.1
  c.train_attack_steps = 10
  c.eval_steps = 20
  c.eval_restarts = 1
  c.lip_steps = 10
  c.lip_step_size = 0.01
  c.eval_batch_size = 512
  return c
