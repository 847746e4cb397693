"""Tests of the training engine: schedules, optimizers, masked steps, loop, checkpoints, I/O."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lipprune import train as T
from lipprune.train import io
from tests.conftest import REPO, blobs


# ---------------------------------------------------------------- schedules and optimizers

def test_step_schedule_matches_cifar_recipe():
  lr = T.schedule("step", base_lr=0.1, total_steps=182, boundaries=(91, 136), decay_factor=0.1)
  got = [float(lr(s)) for s in (0, 90, 91, 135, 136, 181)]
  np.testing.assert_allclose(got, [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)


def test_cosine_and_warmup():
  lr = T.schedule("cosine", base_lr=1.0, total_steps=100, final_lr=0.0)
  np.testing.assert_allclose([float(lr(0)), float(lr(50)), float(lr(100))], [1.0, 0.5, 0.0], atol=1e-6)
  warm = T.schedule("constant", base_lr=0.4, total_steps=100, warmup_steps=5)
  np.testing.assert_allclose([float(warm(s)) for s in range(6)], [0.08, 0.16, 0.24, 0.32, 0.4, 0.4],
                             rtol=1e-6)


def test_unknown_names_are_rejected():
  with pytest.raises(ValueError, match="expected one of .*'sgd'"):
    T.direction("sgdd")
  with pytest.raises(ValueError, match="expected one of .*'cosine'"):
    T.schedule("linear", base_lr=0.1, total_steps=10)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_matches_pytorch_semantics_by_hand(nesterov):
  """d = g + wd*w; buf = mu*buf + d; step = lr*buf (nesterov: lr*(d + mu*buf)), in numpy."""
  lr_value, mu, wd = 0.1, 0.9, 0.01
  w0 = np.array([1.0, -2.0, 3.0], np.float32)
  grads = [np.array([0.5, 0.1, -0.3], np.float32) * (i + 1) for i in range(4)]
  tx = T.direction("sgd", momentum=mu, nesterov=nesterov, weight_decay=wd)
  sched = T.schedule("constant", base_lr=lr_value, total_steps=10)
  state = T.TrainState.create({"w": jnp.asarray(w0)}, {}, tx)

  def loss_fn(params, model_state, batch, key):  # gradient = batch["g"]
    return jnp.sum(params["w"] * batch["g"]), {"model_state": model_state, "metrics": {}}

  step = jax.jit(T.make_train_step(loss_fn, tx, sched))
  w, buf = w0.copy(), np.zeros_like(w0)
  for g in grads:
    state, _ = step(state, {"g": jnp.asarray(g)}, jax.random.key(0))
    d = g + wd * w
    buf = mu * buf + d
    w = w - lr_value * ((d + mu * buf) if nesterov else buf)
  np.testing.assert_allclose(np.asarray(state.params["w"]), w, rtol=1e-5)
  assert int(state.step) == len(grads)


def test_lr_rewind_is_setting_the_step(tiny_model, blob_data):
  sched = T.schedule("step", base_lr=0.1, total_steps=10, boundaries=(5,))
  tx = T.direction("sgd", momentum=0.0)
  params, ms = tiny_model.init(jax.random.key(0), blob_data["x"][:1])
  state = T.TrainState.create(params, ms, tx).replace(step=jnp.asarray(7, jnp.int32))
  step = jax.jit(T.make_train_step(T.cross_entropy(tiny_model), tx, sched))
  batch = {k: v[:8] for k, v in blob_data.items()}
  _, m_late = step(state, batch, jax.random.key(1))
  _, m_rewound = step(state.replace(step=jnp.asarray(2, jnp.int32)), batch, jax.random.key(1))
  assert float(m_late["lr"]) == pytest.approx(0.01)
  assert float(m_rewound["lr"]) == pytest.approx(0.1)


@pytest.mark.parametrize("opt", ["sgd", "adam", "adamw"])
def test_masked_step_keeps_pruned_weights_zero(tiny_model, blob_data, opt):
  tx = T.direction(opt, momentum=0.9, nesterov=True, weight_decay=0.1)
  sched = T.schedule("constant", base_lr=0.05, total_steps=10)
  params, ms = tiny_model.init(jax.random.key(0), blob_data["x"][:1])
  # Warm up the optimizer state dense, so momentum/Adam moments are non-zero when pruning starts.
  state = T.TrainState.create(params, ms, tx)
  step = jax.jit(T.make_train_step(T.cross_entropy(tiny_model), tx, sched))
  batch = {k: v[:32] for k, v in blob_data.items()}
  for i in range(3):
    state, _ = step(state, batch, jax.random.key(i))
  rng = np.random.default_rng(0)
  masks = jax.tree.map(lambda p: jnp.asarray(rng.random(p.shape) > 0.5, jnp.float32)
                       if p.ndim == 2 else None, state.params)
  state = state.replace(params=T.apply_masks(state.params, masks), masks=masks)
  for i in range(10):
    state, _ = step(state, batch, jax.random.key(10 + i))
  pairs = jax.tree.leaves(jax.tree.map(lambda m, p: (m, p) if m is not None else None, masks,
                                       state.params, is_leaf=lambda x: x is None),
                          is_leaf=lambda x: isinstance(x, tuple))
  assert len(pairs) == 2
  for m, p in pairs:
    assert np.all(np.asarray(p)[np.asarray(m) == 0] == 0)
    assert np.any(np.asarray(p)[np.asarray(m) == 1] != 0)


# ---------------------------------------------------------------- the loop and checkpoints

def _setup(model, data, lr=0.1):
  tx = T.direction("sgd", momentum=0.9, weight_decay=1e-4)
  sched = T.schedule("cosine", base_lr=lr, total_steps=40)
  params, ms = model.init(jax.random.key(0), data["x"][:1])
  state = T.TrainState.create(params, ms, tx)
  step = jax.jit(T.make_train_step(T.cross_entropy(model), tx, sched))
  return state, step


def test_loop_learns_and_writes_metrics(tmp_path, tiny_bn_model, blob_data):
  state, step = _setup(tiny_bn_model, blob_data)
  metrics_path = str(tmp_path / "m.jsonl")
  before = T.evaluate(tiny_bn_model, state.params, state.model_state, blob_data)
  evals = []

  def eval_fn(s):
    evals.append(1)
    return T.evaluate(tiny_bn_model, s.params, s.model_state, blob_data, batch_size=40)

  state = T.train(state, step, blob_data, batch_size=16, num_steps=40, key=jax.random.key(3),
                  log_every=10, metrics_path=metrics_path, eval_fn=eval_fn, eval_every=20)
  after = T.evaluate(tiny_bn_model, state.params, state.model_state, blob_data)
  assert after["accuracy"] > max(before["accuracy"], 0.9)
  records = io.read_jsonl(metrics_path)
  assert [r["step"] for r in records if "train/loss" in r] == [10, 20, 30, 40]
  assert [r["step"] for r in records if "eval/accuracy" in r] == [20, 40]
  assert len(evals) == 2
  # BN statistics moved during training.
  assert not np.allclose(jax.tree.leaves(state.model_state)[0], 0.0)


def test_evaluate_matches_numpy(tiny_model, blob_data):
  params, ms = tiny_model.init(jax.random.key(0), blob_data["x"][:1])
  logits = np.asarray(tiny_model.apply(params, ms, blob_data["x"], train=False)[0], np.float64)
  y = blob_data["y"]
  logp = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)) \
      - logits.max(1, keepdims=True)
  want_loss = -logp[np.arange(len(y)), y].mean()
  got = T.evaluate(tiny_model, params, ms, blob_data, batch_size=37)  # ragged last batch
  assert got["accuracy"] == pytest.approx((logits.argmax(1) == y).mean())
  assert got["loss"] == pytest.approx(want_loss, rel=1e-5)


def test_resume_is_bit_identical(tmp_path, tiny_bn_model, blob_data):
  state0, step = _setup(tiny_bn_model, blob_data)
  kw = dict(batch_size=16, num_steps=40, key=jax.random.key(5), checkpoint_every=7)
  full = T.train(state0, step, blob_data, ckpt_dir=str(tmp_path / "a"), **kw)
  part = T.train(state0, step, blob_data, ckpt_dir=str(tmp_path / "b"), stop_after=17, **kw)
  assert int(part.step) == 17
  # Resume from a *different* starting state: everything must come from the checkpoint.
  other, _ = _setup(tiny_bn_model, blobs(seed=9))
  resumed = T.train(other, step, blob_data, ckpt_dir=str(tmp_path / "b"), **kw)
  assert int(resumed.step) == 40
  for a, b in zip(jax.tree.leaves((full.params, full.model_state, full.opt_state)),
                  jax.tree.leaves((resumed.params, resumed.model_state, resumed.opt_state))):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_consecutive_segments_equal_one_run(tiny_bn_model, blob_data):
  state0, step = _setup(tiny_bn_model, blob_data)
  kw = dict(batch_size=16, key=jax.random.key(5))
  whole = T.train(state0, step, blob_data, num_steps=40, **kw)
  part = T.train(state0, step, blob_data, num_steps=13, **kw)
  part = T.train(part, step, blob_data, num_steps=27, first_step=13, **kw)
  for a, b in zip(jax.tree.leaves((whole.params, whole.opt_state)),
                  jax.tree.leaves((part.params, part.opt_state))):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # Without the offset the second segment replays the first batches: a different run.
  replay = T.train(T.train(state0, step, blob_data, num_steps=13, **kw), step, blob_data,
                   num_steps=27, **kw)
  assert not np.array_equal(np.asarray(replay.params["Dense_0"]["kernel"]),
                            np.asarray(whole.params["Dense_0"]["kernel"]))


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, tiny_model, blob_data):
  tx = T.direction("sgd", momentum=0.0)
  params, ms = tiny_model.init(jax.random.key(0), blob_data["x"][:1])
  state = T.TrainState.create(params, ms, tx)
  base = T.cross_entropy(tiny_model)

  def loss_fn(params, model_state, batch, key):  # finite for 12 steps, then NaN
    loss, aux = base(params, model_state, batch, key)
    return jnp.where(batch["poison"][0] > 0, jnp.nan, loss), aux

  data = dict(blob_data, poison=np.zeros(len(blob_data["y"]), np.float32))
  step = jax.jit(T.make_train_step(loss_fn, tx, T.schedule("constant", base_lr=0.1, total_steps=1)))

  # Poison every example after step 12 by swapping the data dict between two runs of train().
  ckpt = str(tmp_path / "ck")
  state = T.train(state, step, data, batch_size=16, num_steps=30, key=jax.random.key(0),
                  ckpt_dir=ckpt, checkpoint_every=4, stop_after=12)
  data["poison"][:] = 1.0
  with pytest.raises(T.NonFiniteLossError, match="Last good checkpoint: step 12"):
    T.train(state, step, data, batch_size=16, num_steps=30, key=jax.random.key(0), ckpt_dir=ckpt,
            checkpoint_every=4, log_every=100)
  restored = T.Checkpointer(ckpt).restore(state)
  assert restored[0] == 12
  assert all(np.all(np.isfinite(np.asarray(p))) for p in jax.tree.leaves(restored[1].params))


def test_batch_size_must_divide_devices_and_data():
  from lipprune.data import steps_per_epoch
  with pytest.raises(ValueError, match="batch_size=200 exceeds the 100"):
    steps_per_epoch(100, 200)


# ---------------------------------------------------------------- io

def test_atomic_writes_and_jsonl_truncation(tmp_path):
  p = str(tmp_path / "r.json")
  io.write_json(p, {"a": np.float32(1.5), "b": jnp.arange(3)})
  assert io.read_json(p) == {"a": 1.5, "b": [0, 1, 2]}
  assert [f for f in os.listdir(tmp_path) if f.startswith(".tmp")] == []
  io.write_csv(str(tmp_path / "t.csv"), [{"x": 1, "y": 2}, {"x": 3, "z": 4}])
  assert (tmp_path / "t.csv").read_text().splitlines() == ["x,y,z", "1,2,", "3,,4"]
  j = str(tmp_path / "m.jsonl")
  for s in range(5):
    io.append_jsonl(j, {"step": s})
  with open(j, "a") as f:
    f.write('{"step": 9, "torn')  # a crash mid-line
  io.truncate_jsonl(j, 2)
  assert [r["step"] for r in io.read_jsonl(j)] == [0, 1, 2]


# ---------------------------------------------------------------- multi-device equality

_MULTI = r"""
import jax, numpy as np
assert jax.device_count() == 8, jax.devices()
from lipprune import train as T
from tests.conftest import TinyMLP, blobs
from lipprune.models import Model
model = Model(TinyMLP(use_bn=True))
data = blobs(n=128)
tx = T.direction("sgd", momentum=0.9, weight_decay=1e-4)
sched = T.schedule("cosine", base_lr=0.1, total_steps=20)
params, ms = model.init(jax.random.key(0), data["x"][:1])
step = jax.jit(T.make_train_step(T.cross_entropy(model), tx, sched))
out = []
for devices in (jax.devices()[:1], jax.devices()):
  mesh = T.make_mesh(devices)
  s = T.train(T.TrainState.create(params, ms, tx), step, data, batch_size=32, num_steps=20,
              key=jax.random.key(1), mesh=mesh)
  assert len(s.params["Dense_0"]["kernel"].sharding.device_set) == len(devices)
  out.append(jax.device_get((s.params, s.model_state)))
  out.append(T.evaluate(model, s.params, s.model_state, data, batch_size=64, mesh=mesh))
for a, b in zip(jax.tree.leaves(out[0]), jax.tree.leaves(out[2])):
  np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
assert abs(out[1]["loss"] - out[3]["loss"]) < 1e-5, (out[1], out[3])
print("MULTI_OK", out[1], out[3])
"""


def test_one_device_equals_eight_devices():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
  proc = subprocess.run([sys.executable, "-c", _MULTI], env=env, cwd=REPO, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "MULTI_OK" in proc.stdout
