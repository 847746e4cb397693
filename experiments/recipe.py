"""The training recipe every job shares: checks of the training fields of a config, the in-memory
data with their held-out validation examples, and the model, optimizer and initial state a config
describes. `experiments.train` runs it as is; `experiments.prune`, `experiments.robust` (and through
prune `experiments.joint`) build on it, so they import this module rather than each other's jobs.
"""
from __future__ import annotations

import jax.numpy as jnp

from . import common
from lipprune import data as data_lib
from lipprune import models
from lipprune import train as train_lib
from lipprune.data import augment as augment_lib
from lipprune.data import loader as loader_lib
from lipprune.train import optimizers, parallel


# Compute dtypes: parameters, optimizer state and the loss stay float32 either way.
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def validate_config(config) -> None:
  """Checks every name and value before any compute; errors name the field and allowed values."""
  common.validate_choice("streaming", config.get("streaming", False), (False, True))
  if config.get("streaming", False):
    # Any tfds dataset may stream; whether it is prepared is checked when it is opened.
    if not isinstance(config.dataset, str) or not config.dataset:
      raise ValueError(f"config.dataset={config.dataset!r} must name a tfds dataset when "
                       "config.streaming=True")
    image_size = config.get("image_size", None)
    if image_size is not None and not (isinstance(image_size, int) and image_size > 0):
      raise ValueError(f"config.image_size={image_size!r} must be a positive int or None")
    common.validate_range("crop_fraction", config.get("crop_fraction", 0.875), 1e-6, 1.0)
    common.validate_positive("stream_threads", config.get("stream_threads", 1), integer=True)
    common.validate_positive("stream_prefetch", config.get("stream_prefetch", 2), allow_zero=True,
                             integer=True)
  else:
    if config.dataset in loader_lib.STREAMING_NAMES:
      raise ValueError(f"config.dataset={config.dataset!r} does not fit in memory; set "
                       "--config.streaming=True to stream it")
    common.validate_choice("dataset", config.dataset, data_lib.NAMES)
    for field in ("image_size",):
      if config.get(field, None) is not None:
        raise ValueError(f"config.{field}={config.get(field)!r} applies only with "
                         "config.streaming=True (in-memory datasets keep their image size)")
  for field in ("download", "verify", "nesterov"):
    common.validate_choice(field, config.get(field, False), (False, True))
  common.validate_positive("seed", config.seed, allow_zero=True, integer=True)
  common.validate_choice("model", config.model, models.names())
  common.validate_choice("optimizer", config.optimizer, optimizers.OPTIMIZERS)
  common.validate_choice("lr_schedule", config.lr_schedule, optimizers.SCHEDULES)
  common.validate_choice("augment", config.augment, augment_lib.AUGMENTATIONS)
  common.validate_positive("batch_size", config.batch_size, integer=True)
  parallel.check_batch_size(config.batch_size, train_lib.make_mesh(), "config.batch_size")
  common.validate_positive("num_epochs", config.num_epochs)
  common.validate_positive("learning_rate", config.learning_rate)
  common.validate_positive("weight_decay", config.weight_decay, allow_zero=True)
  common.validate_range("momentum", config.momentum, 0.0, 1.0)
  common.validate_range("label_smoothing", config.get("label_smoothing", 0.0), 0.0, 1.0,
                        high_open=True)
  common.validate_positive("lr_decay_factor", config.get("lr_decay_factor", 0.1))
  common.validate_positive("warmup_epochs", config.get("warmup_epochs", 0), allow_zero=True)
  for b in config.get("lr_boundaries_epochs", ()):
    common.validate_positive("lr_boundaries_epochs[]", b, allow_zero=True)
  common.validate_choice("compute_dtype", config.get("compute_dtype", "float32"), COMPUTE_DTYPES)
  common.validate_positive("validation_size", config.get("validation_size", 0), allow_zero=True,
                           integer=True)
  common.validate_positive("eval_batch_size", config.eval_batch_size, integer=True)
  for field in ("log_every", "eval_every", "checkpoint_every", "stop_after_steps"):
    common.validate_positive(field, config.get(field, 0), allow_zero=True, integer=True)


def validate_data(config, train_ds, test_ds) -> None:
  """The data-dependent checks, once the data are open and before anything is written: the batch
  fits in the train split, the ``validation_size`` held-out test examples leave a test set, and
  in-memory test labels are classes of the train split."""
  name = config.dataset
  if config.batch_size > len(train_ds):
    raise ValueError(f"config.batch_size={config.batch_size} exceeds the {len(train_ds)} examples "
                     f"of the {name} train split")
  held = config.get("validation_size", 0)
  if held >= len(test_ds):
    raise ValueError(f"config.validation_size={held} leaves no test examples: the {name} "
                     f"{config.get('eval_split', 'test')} split has {len(test_ds)}")
  if isinstance(test_ds, data_lib.Dataset) and isinstance(train_ds, data_lib.Dataset):
    data_lib.check_labels(test_ds.y, train_ds.num_classes, f"{name} test labels")


def load_data(config):
  """(train, test) Datasets; with ``validation_size > 0`` that many test examples are held out
  and the remainder is the reported test set (Renda et al. hold out 2,000 CIFAR-10 test images).
  Checks the data-dependent sizes (`validate_data`)."""
  if config.get("streaming", False):
    raise ValueError("config.streaming=True: the data are streamed, not loaded into memory "
                     "(experiments.train opens them with open_streams); this job loads in memory "
                     "only, so set --config.streaming=False with an in-memory dataset")
  kwargs = common.data_kwargs(config)
  train_ds = data_lib.load(config.dataset, "train", **kwargs)
  test_ds = data_lib.load(config.dataset, config.get("eval_split", "test"), **kwargs)
  validate_data(config, train_ds, test_ds)
  if config.get("validation_size", 0):
    test_ds, _ = data_lib.holdout(test_ds, config.validation_size, config.seed)
  return train_ds, test_ds


def build_optimizer(config, steps_per_epoch: int):
  """(tx, schedule, num_steps) from the config; epochs in the config become steps here."""
  num_steps = int(config.num_epochs * steps_per_epoch)
  tx = optimizers.direction(config.optimizer, momentum=config.momentum, nesterov=config.nesterov,
                            weight_decay=config.weight_decay)
  sched = optimizers.schedule(
      config.lr_schedule, base_lr=config.learning_rate, total_steps=num_steps,
      warmup_steps=int(config.get("warmup_epochs", 0) * steps_per_epoch),
      boundaries=tuple(int(e * steps_per_epoch) for e in config.get("lr_boundaries_epochs", ())),
      decay_factor=config.get("lr_decay_factor", 0.1))
  return tx, sched, num_steps


def build(config, train_ds, key):
  """The model, the initial TrainState and the optimizer pieces of a config.

  ``train_ds`` is a `Dataset` or a `StreamingSource` (``num_classes``, ``len`` and ``read``)."""
  model_kwargs = dict(config.get("model_kwargs", {}))
  if config.get("compute_dtype", "float32") != "float32":  # mixed precision for GPU/TPU
    model_kwargs["dtype"] = COMPUTE_DTYPES[config.compute_dtype]
  model = models.create(config.model, train_ds.num_classes, **model_kwargs)
  sample = train_ds.x[:1] if isinstance(train_ds, data_lib.Dataset) else train_ds.read([0])["x"]
  params, model_state = model.init(key, sample)
  spe = data_lib.steps_per_epoch(len(train_ds), config.batch_size)
  tx, sched, num_steps = build_optimizer(config, spe)
  state = train_lib.TrainState.create(params, model_state, tx)
  return model, state, tx, sched, num_steps
