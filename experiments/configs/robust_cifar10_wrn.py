"""Paper scale, CIFAR-10 (Yang et al. 2020, Tables 2 and 3): l_inf eps = 0.031, WRN-40-10.

  --config=experiments/configs/robust_cifar10_wrn.py           # without dropout
  --config=experiments/configs/robust_cifar10_wrn.py:dropout   # dropout 0.3 in every block

SGD momentum 0.9, batch 64, 120 epochs, lr 0.01 divided by 10 at epochs 40 and 80, random crop
and flip. TRADES inner max 10 steps of 2 eps / 10 = 0.0062; PGD-10 training attack with step eps/5.
Evaluation: PGD-20 (step eps/4) and multi-target; Lipschitz with the paper's 10 steps of 0.003.
"""
import ml_collections

from experiments.configs import robust_digits_mlp


def get_config(arg: str = "nodropout"):
  if arg not in ("nodropout", "dropout"):
    raise ValueError(f"config argument {arg!r}; expected one of ['nodropout', 'dropout']")
  c = robust_digits_mlp.get_config()
  c.dataset = "cifar10"
  c.augment = "crop_flip"
  c.model = "wrn"
  c.model_kwargs = ml_collections.ConfigDict(
      {"depth": 40, "width": 10, "dropout_rate": 0.3 if arg == "dropout" else 0.0})
  c.eps = 0.031
  c.methods = ("natural,gradient_regularization:lam=1,llr,adversarial,rst:lam=0.5,rst:lam=1,"
               "rst:lam=2,trades:beta=1,trades:beta=3,trades:beta=6")
  c.num_seeds = 1
  c.batch_size = 64
  c.num_epochs = 120
  c.learning_rate = 0.01
  c.lr_schedule = "step"
  c.lr_boundaries_epochs = (40, 80)
  c.weight_decay = 5e-4
  c.eval_steps = 20
  c.lip_steps = 10
  c.lip_step_size = 0.003
  c.eval_batch_size = 250
  c.log_every = 500
  c.checkpoint_every = 2000
  return c
