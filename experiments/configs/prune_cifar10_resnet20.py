"""Renda, Frankle & Carbin (ICLR 2020), CIFAR-10 ResNet-20, unstructured: iterative global magnitude
pruning (20% of the survivors per round) with fine-tuning, weight rewinding and learning-rate
rewinding, random pruning as a control. GPU/TPU scale: 3 seeds x 4 arms x 14 rounds x 182 epochs.

Every value follows the official code, lottery-ticket/rewinding-iclr20-public (``vision/``; file
names below are relative to it), as the comments say field by field. Where the paper and the code
differ, the code wins:

* network: the TF official ResNet v1 (``resnet_version`` defaults to 1 in
  gpu-src/official/resnet/resnet_run_loop.py), whose first block of *every* stage has a 1x1
  projection shortcut (``block_layer`` in resnet_model.py), not the parameter-free option A of He et
  al. that lipprune's ``resnet20`` defaults to; hence ``shortcut='stage_projection'``, with the
  file's init (``kernel_init='tf_official'``: conv variance scaling 1/fan_in, dense N(0, 0.01^2))
  and batch-norm decay 0.997.
* retraining time: t = 170 epochs for every method, the official README's example (rewind to
  iteration 4701 of 71108 = epoch 12; fine-tuning for ``(71108 - 4701) / (71108 / 182)`` = 170
  epochs at ``--lottery_force_learning_rate 0.001``). The paper sweeps t and reports the best on the
  validation set: prune_t_sweep.py:cifar10_resnet20 does that.

Known differences that lipprune does not reproduce: the official input pipeline standardizes each
image (``tf.image.per_image_standardization``); the official run is 71,108 steps, here 182 epochs
of 390 full batches are 70,980 (the last partial batch of each epoch is dropped).

``--config=experiments/configs/prune_cifar10_resnet20.py:resnet56`` (or ``:resnet110``) selects
ResNet-56 or -110 with the same recipe (gpu-src/README.md: ``SIZE="20" # or 56,110``).
"""
import ml_collections

from lipprune import cli

prune_digits_mlp = cli.sibling_config(__file__, "prune_digits_mlp")

# The official checkpoint iterations of the CIFAR run, T = 71108 steps (gpu-src/README.md,
# --lottery_checkpoint_iters): the points weight rewinding can rewind to.
OFFICIAL_T_STEPS = 71108
OFFICIAL_REWIND_STEPS = (0, 4701, 12514, 20326, 28139, 35951, 43764, 51576, 59389, 67201)


def get_config(model: str = "resnet20"):
  c = prune_digits_mlp.get_config()
  c.dataset = "cifar10"
  # Renda et al., experimental setup: "20% of the original test set, selected at random, as the
  # validation set".
  c.validation_size = 2000
  # cifar10_main.py preprocess_image: pad to 40x40, random 32x32 crop, random horizontal flip.
  c.augment = "crop_flip"
  c.model = model or "resnet20"
  c.model_kwargs = ml_collections.ConfigDict({
      # resnet_model.py: projection shortcut in the first block of every stage (ResNet v1).
      "shortcut": "stage_projection",
      # resnet_model.py: conv variance_scaling_initializer(), dense random_normal(stddev=.01).
      "kernel_init": "tf_official",
      # resnet_model.py: _BATCH_NORM_DECAY = 0.997.
      "bn_momentum": 0.997,
  })
  c.batch_size = 128  # gpu-src/README.md: --batch_size 128
  c.num_epochs = 182  # cifar10_main.py: train_epochs=182 (README: --max_train_steps 71108)
  c.optimizer = "sgd"  # resnet_run_loop.py: tf.train.MomentumOptimizer
  c.momentum = 0.9  # cifar10_main.py: momentum=0.9
  c.nesterov = False  # resnet_run_loop.py: MomentumOptimizer without use_nesterov
  c.learning_rate = 0.1  # resnet_run_loop.py learning_rate_with_decay: 0.1 * batch_size / 128
  c.lr_schedule = "step"
  # cifar10_main.py: boundary_epochs=[91, 136, 182], decay_rates=[1, 0.1, 0.01, 0.01] (the 182
  # boundary is a "fake decay_rate": training ends there).
  c.lr_boundaries_epochs = (91, 136)
  c.lr_decay_factor = 0.1
  c.warmup_epochs = 0  # cifar10_main.py: learning_rate_with_decay(..., warmup=False)
  # cifar10_main.py: weight_decay = 2e-4, loss_filter_fn returns True (batch norm included).
  c.weight_decay = 2e-4
  c.label_smoothing = 0.0  # cifar10_main.py: plain sparse_softmax_cross_entropy
  # Paper Algorithm 1 / README prune_all_to_global_<density>: one ranking of |w| over every masked
  # layer (every conv, projections included, and the dense layer: resnet_model.py), 20% per round.
  c.prune.mode = "iterative"
  c.prune.fraction = 0.2
  c.prune.rounds = 14  # lipprune's choice: 0.8^14 = 4.4% density
  c.prune.normalize = ""  # prune_functions.py prune_all_to_global_x: raw |w| (zprune_* normalize)
  c.prune.min_density = 0.0
  c.prune.spare = ()  # every conv and the dense layer carry a mask (resnet_model.py)
  c.prune.spare_first = False
  c.prune.spare_last = False
  # gpu-src/README.md: REWIND_ITERATION=4701 of 71108 steps -> t = 170 epochs for every method;
  # fine-tuning at --lottery_force_learning_rate 0.001 (the schedule's last rate, as fine_tune
  # does).
  c.retrain_epochs = 170.0
  # lottery.py PruningHook restores the whole checkpoint (weights and momentum) for rewinding and
  # only the global step for LR rewinding: the optimizer state is kept.
  c.lr_rewind_reset_opt = False
  c.arms = ("global_magnitude:fine_tune", "global_magnitude:weight_rewind",
            "global_magnitude:lr_rewind",
            # lipprune's control (the official code prunes at a reinitialized checkpoint instead).
            "random:lr_rewind")
  c.log_every = 200
  c.eval_batch_size = 1000
  c.checkpoint_every = 2000
  return c
