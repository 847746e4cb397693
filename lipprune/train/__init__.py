"""Functional training engine: state, pure steps, schedules, data parallelism, checkpoints."""
from lipprune.train.losses import accuracy, cross_entropy, weighted_mean
from lipprune.train.masking import apply_masks, masked_norm, select_masks
from lipprune.train.optimizers import direction, schedule
from lipprune.train.parallel import make_mesh, replicate, shard_batch
from lipprune.train.state import TrainState
from lipprune.train.step import make_eval_step, make_train_step
from lipprune.train.checkpoint import Checkpointer
from lipprune.train.loop import NonFiniteLossError, evaluate, train, train_seeds
