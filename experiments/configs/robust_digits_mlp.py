"""Every robust method on scikit-learn digits (1437 train / 360 test, 8x8), one-hidden-layer MLP
(256 units, the paper's MLP), l_inf eps = 0.1. Minutes on CPU.

eps: the digits' exact train-train l_inf separation is 0.4375 (python -m experiments.separation
--config=experiments/configs/separation_digits.py), so eps = 0.1 leaves 2 eps = 0.2 well inside it.
The Lipschitz ascent uses 10 steps of 0.01 so that it can reach the boundary of the 0.1-ball (the
paper's 10 x 0.003 stops at 0.03).
"""
import ml_collections

METHODS = ("natural,adversarial,rst:lam=1,trades:beta=1,trades:beta=3,trades:beta=6,"
           "gradient_regularization:lam=1,llr,llr_yang")


def get_config():
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.num_seeds = 3
  # Data.
  c.dataset = "digits"
  c.data_dir = ""
  c.download = False
  c.verify = True  # tabular data: check each file's sha256 (False: parse a modified file anyway)
  c.augment = "none"
  # Model.
  c.model = "mlp"
  c.model_kwargs = ml_collections.ConfigDict({"hidden": (256,)})
  # Threat model and methods (see experiments/robust.py for the spec syntax).
  c.norm = "linf"
  c.box = ()  # (): the dataset's declared input range (lipprune.data.INPUT_RANGES); else (lo, hi)
  c.eps = 0.1
  c.methods = METHODS
  c.train_attack_steps = 10  # PGD-10 with step eps/5; TRADES 10 steps of 2 eps/10
  # Optimization.
  c.batch_size = 64
  c.num_epochs = 40
  c.optimizer = "sgd"
  c.momentum = 0.9
  c.nesterov = False
  c.weight_decay = 0.0
  c.learning_rate = 0.05
  c.lr_schedule = "cosine"
  c.lr_boundaries_epochs = ()
  c.lr_decay_factor = 0.1
  # Evaluation.
  c.eval_steps = 20
  c.eval_step_size = 0.0  # 0: eps / 4
  c.eval_restarts = 1
  c.eval_multi_target = True
  c.lip_eps = 0.0  # 0: eps
  c.lip_steps = 10
  c.lip_step_size = 0.01
  c.lip_estimator = "ascent"  # or "released": the official code's estimator (it descends)
  c.eval_autoattack = True  # APGD-CE + APGD-T on the test set (lipprune.robust.apgd)
  c.aa_steps = 100
  c.aa_restarts = 1
  c.aa_targets = 9
  c.eval_max_examples = 0  # 0: every example
  c.eval_batch_size = 512
  # Bookkeeping.
  c.log_every = 200
  c.checkpoint_every = 0
  c.stop_after_steps = 0
  return c
