"""Paper scale, MNIST (Yang et al. 2020, Table 2): l_inf eps = 0.1, the paper's CNNs, GPU/TPU.

  --config=experiments/configs/robust_mnist.py        # CNN1 (yang_cnn1)
  --config=experiments/configs/robust_mnist.py:cnn2   # CNN2, the TRADES small CNN (yang_cnn2)

Training as in the paper's code: SGD with momentum 0.9, batch 64, 160 epochs, lr 0.01 divided by
10 at epochs 40, 80 and 120 (the paper selects among {1e-2, 1e-3, 1e-4}). Evaluation: PGD-20
(step eps/4) and the multi-target attack; Lipschitz with the paper's 10 steps of 0.003.
"""
import ml_collections

from experiments.configs import robust_digits_mlp


def get_config(arg: str = "cnn1"):
  if arg not in ("cnn1", "cnn2"):
    raise ValueError(f"config argument {arg!r}; expected one of ['cnn1', 'cnn2']")
  c = robust_digits_mlp.get_config()
  c.dataset = "mnist"
  c.model = "yang_cnn1" if arg == "cnn1" else "yang_cnn2"
  c.model_kwargs = ml_collections.ConfigDict()
  c.eps = 0.1
  c.methods = ("natural,gradient_regularization:lam=1,llr,adversarial,rst:lam=0.5,rst:lam=1,"
               "rst:lam=2,trades:beta=1,trades:beta=3,trades:beta=6")
  c.num_seeds = 1
  c.batch_size = 64
  c.num_epochs = 160
  c.learning_rate = 0.01
  c.lr_schedule = "step"
  c.lr_boundaries_epochs = (40, 80, 120)
  c.eval_steps = 20
  c.lip_steps = 10
  c.lip_step_size = 0.003
  c.eval_batch_size = 1000
  c.log_every = 500
  c.checkpoint_every = 2000
  return c
