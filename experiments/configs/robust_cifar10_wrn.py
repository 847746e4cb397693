"""Paper scale, CIFAR-10 (Yang et al., NeurIPS 2020): l_inf eps = 0.031, WRN-40-10.

  --config=experiments/configs/robust_cifar10_wrn.py           # WRN_40_10, scripts/Table3.sh
  --config=experiments/configs/robust_cifar10_wrn.py:dropout   # WRN_40_10_drop20, Table4.sh

Every value is the official code's (yangarbiter/robust-local-lipschitz at 656616a): the runs of
``aug01-<loss>-tor-WRN_40_10[_drop20]`` with ``--eps 0.031 --norm inf --attack pgd
--random_seed 0``, the hyperparameters lolip/models/__init__.py ``get_hyper`` gives a WRN on
CIFAR and the schedule of lolip/models/torch_utils ``get_scheduler``. The official losses are sums
over the batch, lipprune's means: SGD learning rates are the official ones times the batch size 64
(lipprune.robust.losses; tested in tests/test_robust_conventions.py). Note what this means: the
official WRN runs use plain SGD without momentum or weight decay at an effective (mean-loss)
learning rate of 0.64 for natural training and TRADES. tests/test_robust_configs.py pins these.
"""
import ml_collections

from lipprune import cli

robust_digits_mlp = cli.sibling_config(__file__, "robust_digits_mlp")

BATCH = 64  # get_hyper: batch_size 64 for 'WRN'
LR = 1e-2 * BATCH  # get_hyper: 1e-2 unless 'adv' or 'llr' in the loss name -> 0.64 here
LR_ADV = 1e-3 * BATCH  # get_hyper: 1e-3 for 'adv' (advce and advbeta*) and 'llr' -> 0.064
# tulip (GR): lam 1, h 1; the official loop back-propagates sum CE twice (losses.py docstring):
# lam / 2 and twice the learning rate here.
GR = f"gradient_regularization:lam=0.5:lr={2 * LR:g}"
# scripts/Table3.sh: ce, advbeta2ce, advbetace, advbeta.5ce, advce, strades6ce, strades3ce,
# stradesce. GR and LLR are not among its runs; their learning rates are get_hyper's.
METHODS = ("natural,"
           f"rst:lam=2:lr={LR_ADV:g},rst:lam=1:lr={LR_ADV:g},rst:lam=0.5:lr={LR_ADV:g},"
           f"adversarial:lr={LR_ADV:g},"
           "trades:beta=6,trades:beta=3,trades:beta=1,"
           f"{GR},llr_yang:lr={LR_ADV:g}")
# scripts/Table4.sh, CIFAR block: ce, advbeta2ce, strades3ce, strades6ce on WRN_40_10_drop20, and
# advce with the '-lrem2' suffix (learning rate 1e-2).
DROPOUT_METHODS = (f"natural,rst:lam=2:lr={LR_ADV:g},trades:beta=3,trades:beta=6,"
                   f"adversarial:lr={LR:g}")


def get_config(arg: str = "nodropout"):
  if arg not in ("nodropout", "dropout"):
    raise ValueError(f"config argument {arg!r}; expected one of ['nodropout', 'dropout']")
  c = robust_digits_mlp.get_config()
  c.dataset = "cifar10"  # lolip/datasets: keras CIFAR-10 / 255, in [0, 1]
  c.augment = "crop_flip"  # aug01: RandomCrop(32, padding=4) + RandomHorizontalFlip
  c.model = "wrn"
  c.model_kwargs = ml_collections.ConfigDict(
      {"depth": 40, "width": 10,  # wideresnet.py WRN_40_10
       "dropout_rate": 0.2 if arg == "dropout" else 0.0})  # WRN_40_10_drop20: dropRate 0.2
  c.norm = "linf"  # --norm inf
  c.eps = 0.031  # --eps 0.031
  c.methods = DROPOUT_METHODS if arg == "dropout" else METHODS
  c.train_attack_steps = 10  # advce/advbeta: nb_iter=10; strades: perturb_steps 10
  c.seed = 0  # --random_seed 0
  c.num_seeds = 1
  c.batch_size = BATCH
  c.num_epochs = 120  # get_hyper: epochs 120 for cifar
  c.optimizer = "sgd"  # get_hyper: 'sgd'
  c.momentum = 0.0  # TorchModel default momentum=0.0; get_hyper sets momentum only for CNNs
  c.nesterov = False
  c.weight_decay = 0.0  # TorchModel default weight_decay=0.0
  c.learning_rate = LR
  c.lr_schedule = "step"  # MultiStepLR
  c.lr_boundaries_epochs = (40, 80, 100)  # get_scheduler: n_epochs <= 120
  c.lr_decay_factor = 0.1  # gamma 0.1
  # Evaluation: lolip/attacks/__init__.py pgd: 10 steps of 2 eps / 10, uniform start, one run.
  c.eval_steps = 10
  c.eval_step_size = 2 * c.eps / 10
  c.eval_restarts = 1
  c.eval_multi_target = False
  c.eval_autoattack = True  # not in the official code: APGD-CE + APGD-T
  # Lipschitz: estimate_local_lip_v2 defaults, 10 steps of 0.003, epsilon = eps; the paper's
  # maximum as the headline, the released code's (descending) estimate beside it (see robust_mnist.py).
  c.lip_eps = 0.0
  c.lip_steps = 10
  c.lip_step_size = 0.003
  c.lip_estimator = "ascent"  # the paper's definition (a maximum): the headline column
  c.lip_extra_estimators = ("released",)  # what the released code prints, for Table 2
  c.eval_max_examples = 0
  c.eval_batch_size = 250
  c.log_every = 500
  c.checkpoint_every = 2000
  return c
