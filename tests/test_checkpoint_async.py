"""Asynchronous checkpoint saves: the same checkpoints and final state as synchronous ones, every
save finalized when `train` returns, and a run SIGKILLed while saves are in flight resumes to the
bit-identical final state (and event file) of an uninterrupted run."""
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np

from lipprune.train import io

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 120


def _run(workdir, async_checkpoints=True, stop_after=None):
  from lipprune import train as train_lib
  from lipprune.models import Model
  from tests.conftest import TinyMLP, blobs
  data = blobs(96)
  model = Model(TinyMLP(hidden=64))
  tx = train_lib.direction("sgd", momentum=0.9)
  params, model_state = model.init(jax.random.key(0), data["x"][:1])
  state = train_lib.TrainState.create(params, model_state, tx)
  sched = train_lib.schedule("step", base_lr=0.05, total_steps=STEPS, boundaries=(STEPS // 2,))
  step = jax.jit(train_lib.make_train_step(train_lib.cross_entropy(model), tx, sched))
  final = train_lib.train(
      state, step, data, batch_size=16, num_steps=STEPS, key=jax.random.key(1), log_every=4,
      checkpoint_every=4, ckpt_dir=os.path.join(workdir, "ckpt"), stop_after=stop_after,
      metrics_path=os.path.join(workdir, "metrics.jsonl"),
      summary_dir=os.path.join(workdir, "tb"), async_checkpoints=async_checkpoints)
  return jax.device_get(final)


def _same(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)


def test_async_saves_equal_sync_ones_and_are_final_on_return(tmp_path):
  from lipprune.train.checkpoint import Checkpointer
  sync = _run(str(tmp_path / "sync"), async_checkpoints=False, stop_after=40)
  done = _run(str(tmp_path / "async"), async_checkpoints=True, stop_after=40)
  _same(sync, done)
  for d in ("sync", "async"):
    assert sorted(os.listdir(tmp_path / d / "ckpt")) == ["36", "40"]  # no temporary directory
  restored = {}
  for d in ("sync", "async"):
    ckpt = Checkpointer(str(tmp_path / d / "ckpt"))
    restored[d] = ckpt.restore(sync)
    ckpt.close()
  assert restored["sync"][0] == restored["async"][0] == 40
  _same(restored["sync"][1], restored["async"][1])


def test_killed_during_async_saves_resumes_bit_identical(tmp_path):
  from tests.test_tensorboard import _expected, _no_duplicate_steps, _scalars
  ref = _run(str(tmp_path / "ref"), async_checkpoints=False)
  wd = tmp_path / "killed"
  metrics = wd / "metrics.jsonl"
  rng = np.random.default_rng(3)
  kills = 0
  for target in (6, 18):  # records; a checkpoint every record, so saves are always in flight
    proc = subprocess.Popen([sys.executable, "-m", "tests.test_checkpoint_async", str(wd)],
                            cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
      deadline = time.time() + 300
      while len(io.read_jsonl(metrics)) < target and proc.poll() is None:
        assert time.time() < deadline
        time.sleep(0.005)
      time.sleep(float(rng.uniform(0, 0.02)))
      if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        kills += 1
      proc.wait()
      assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.read()[-3000:]
    finally:
      if proc.poll() is None:
        proc.kill()
      proc.stderr.close()
  assert kills == 2, "the runs ended before they could be killed"
  _same(ref, _run(str(wd)))
  records = io.read_jsonl(metrics)
  steps = [r["step"] for r in records]
  assert steps == list(range(4, STEPS + 1, 4))
  got = _scalars(wd / "tb")
  _no_duplicate_steps(got)
  assert got == _expected(records)


if __name__ == "__main__":  # the process the kill test SIGKILLs
  _run(sys.argv[1])
