r"""Train one model: the foundation job.

  python -m experiments.train --config=experiments/configs/mnist5k_mlp.py --workdir=/tmp/run
  python -m experiments.train --config=experiments/configs/cifar10_resnet20.py \
      --config.data_dir=~/tensorflow_datasets --workdir=/tmp/r20

The workdir receives config.json, metrics.jsonl, checkpoints/, results.json and tb/train/ (their
TensorBoard view: ``tensorboard --logdir <workdir>/tb``). Rerunning the same command resumes from
the last checkpoint; a finished run only reports its results again.

With ``--config.streaming=True`` the data are not loaded into memory: the train split is a
`lipprune.data.streaming.StreamingSource` read batch by batch (each process reads its share) and the
evaluations stream too (`lipprune.train.loop.evaluate_source`). Any prepared tfds dataset can then
be named (``imagenet2012``: ``experiments/configs/imagenet_resnet50.py``); batches, holdout and
metrics are those of the in-memory path on the same examples.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

from . import common
from lipprune import data as data_lib
from lipprune import models
from lipprune import train as train_lib
from lipprune.data import augment as augment_lib
from lipprune.data import loader as loader_lib
from lipprune.data import streaming as streaming_lib
from lipprune.train import io, loop, optimizers, parallel, summary

common.define_job_flags()


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


def open_streams(config, run_key):
  """``(train_source, test_source, test_indices)`` for ``config.streaming=True``.

  ``train_source`` streams the batches the in-memory path would draw (``key =
  train_order_key(run_key)``) and also serves the final train-set evaluation; ``test_source`` is a
  read-only source of ``config.eval_split`` (ImageNet's is ``validation``); ``test_indices`` are the
  examples reported, which exclude the ``validation_size`` held-out ones exactly as
  `lipprune.data.holdout` does in memory.
  """
  kwargs = dict(data_dir=config.get("data_dir") or None, download=config.get("download", False),
                image_size=config.get("image_size", None),
                crop_fraction=config.get("crop_fraction", 0.875),
                num_threads=config.get("stream_threads", 1))
  train_src = streaming_lib.StreamingSource(
      config.dataset, split=config.get("train_split", "train"), batch_size=config.batch_size,
      key=streaming_lib.train_order_key(run_key), prefetch=config.get("stream_prefetch", 2),
      **kwargs)
  test_src = streaming_lib.StreamingSource(
      config.dataset, split=config.get("eval_split", "test"), batch_size=None, key=None, **kwargs)
  try:
    if train_src.num_classes is None:
      raise ValueError(f"{config.dataset}: the tfds metadata gives no number of classes for 'label'")
    validate_data(config, train_src, test_src)
  except ValueError:
    train_src.close()
    raise
  test_indices = np.arange(len(test_src))
  if config.get("validation_size", 0):
    test_indices, _ = loader_lib.holdout_indices(len(test_src), config.validation_size, config.seed)
  return train_src, test_src, test_indices


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


@common.workdir_job
def train_and_evaluate(config, workdir: str) -> dict:
  """Trains ``config`` in ``workdir`` (resuming if possible) and returns the final metrics."""
  validate_config(config)
  common.check_workdir(workdir, config)
  finished = common.finished_result(workdir, "results.json")
  if finished is not None:
    return finished

  root = jax.random.key(config.seed)
  init_key, run_key = jax.random.split(root)
  if config.get("streaming", False):
    train_src, test_src, test_indices = open_streams(config, run_key)
    try:
      common.open_workdir(workdir, config)
      return _train_and_evaluate(config, workdir, train_src, test_src, test_indices, init_key,
                                 run_key)
    finally:
      train_src.close()
  train_ds, test_ds = load_data(config)
  common.open_workdir(workdir, config)
  return _train_and_evaluate(config, workdir, train_ds, test_ds, None, init_key, run_key)


def _train_and_evaluate(config, workdir, train_ds, test_ds, test_indices, init_key, run_key):
  """The run itself, on Datasets (``test_indices=None``) or streamed sources."""
  streaming = test_indices is not None
  results_path = os.path.join(workdir, "results.json")
  model, state, tx, sched, num_steps = build(config, train_ds, init_key)
  mesh = train_lib.make_mesh()
  loss_fn = train_lib.cross_entropy(model, label_smoothing=config.get("label_smoothing", 0.0))
  step = jax.jit(train_lib.make_train_step(loss_fn, tx, sched,
                                           preprocess=augment_lib.make_augment(config.augment)),
                 donate_argnums=0)

  def evaluate(s, ds, indices=None):
    if streaming:
      return loop.evaluate_source(model, s.params, s.model_state, ds, indices=indices,
                                  batch_size=config.eval_batch_size, mesh=mesh)
    return train_lib.evaluate(model, s.params, s.model_state, ds.arrays(),
                              batch_size=config.eval_batch_size, mesh=mesh)

  def eval_fn(s):
    return evaluate(s, test_ds, test_indices)

  state = train_lib.train(
      state, step, train_ds if streaming else train_ds.arrays(), batch_size=config.batch_size,
      num_steps=num_steps, key=run_key, mesh=mesh, ckpt_dir=os.path.join(workdir, "checkpoints"),
      checkpoint_every=config.checkpoint_every, log_every=config.log_every,
      metrics_path=os.path.join(workdir, "metrics.jsonl"), eval_fn=eval_fn,
      summary_dir=os.path.join(workdir, "tb", "train"),
      eval_every=config.eval_every, stop_after=config.get("stop_after_steps") or None)
  if int(jax.device_get(state.step)) < num_steps:
    logging.info("stopped at step %d of %d (stop_after_steps)", int(state.step), num_steps)
    return {}
  train_eval = evaluate(state, train_ds)
  test_eval = eval_fn(state)
  results = {"dataset": config.dataset, "model": config.model, "steps": num_steps,
             "num_params": int(sum(np.size(p) for p in jax.tree.leaves(state.params))),
             "train_accuracy": train_eval["accuracy"], "train_loss": train_eval["loss"],
             "test_accuracy": test_eval["accuracy"], "test_loss": test_eval["loss"]}
  summary.write_scalars(os.path.join(workdir, "tb", "train"), num_steps, results)
  if jax.process_index() == 0:
    io.write_json(results_path, results)
  logging.info("results: %s", results)
  return results


def main(argv):
  config, workdir = common.start_job(argv)
  results = train_and_evaluate(config, workdir)
  print({k: v for k, v in results.items()})


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main, flags_parser=common.parse_flags)
