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
import numpy as np
from absl import app, flags, logging

from . import common
from .recipe import (COMPUTE_DTYPES, build, build_optimizer, load_data,  # noqa: F401 (the job's API)
                     validate_config, validate_data)
from lipprune import train as train_lib
from lipprune.data import augment as augment_lib
from lipprune.data import loader as loader_lib
from lipprune.data import streaming as streaming_lib
from lipprune.train import io, loop, summary

common.define_job_flags()


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
