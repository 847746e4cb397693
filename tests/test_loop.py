"""The training loop: chunked dispatch (device-resident data, several steps per dispatch) is
bit-identical to a plain step-by-step loop written here, for dense and convolutional nets, resumed
mid-chunk; checkpoints are never of a non-finite state; metrics and the final evaluation survive
any kill."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lipprune import train as T
from lipprune.data.iterators import BatchSampler, epoch_permutation
from lipprune.models import Model
from lipprune.train import chunks, io, masking
from tests.conftest import TinyMLP, blobs


class TinyConv(nn.Module):
  """conv3x3(4)-BN-relu-dense: a convolutional program with batch statistics."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.Conv(4, (3, 3))(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
    x = nn.relu(x).reshape((x.shape[0], -1))
    return nn.Dense(3)(x)


def _images(n=96, seed=0):
  rng = np.random.default_rng(seed)
  y = rng.integers(0, 3, n).astype(np.int32)
  x = (rng.normal(0, 1, (n, 6, 6, 1)) + y[:, None, None, None]).astype(np.float32)
  return {"x": x, "y": y}


def _setup(module, data, lr=0.1):
  model = Model(module)
  tx = T.direction("sgd", momentum=0.9, weight_decay=1e-4)
  sched = T.schedule("step", base_lr=lr, total_steps=40, boundaries=(20,))
  params, ms = model.init(jax.random.key(0), data["x"][:1])
  return T.TrainState.create(params, ms, tx), jax.jit(T.make_train_step(T.cross_entropy(model),
                                                                        tx, sched))


def reference_loop(state, step, data, *, batch_size, num_steps, key, log_every):
  """The loop as it was before chunks: host batches, one jitted step per call, metrics summed
  eagerly; returns the final state and the (step, mean loss) records."""
  order_key, step_keys = jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)
  per_epoch = len(data["y"]) // batch_size
  acc, count, records = None, 0, []
  for i in range(num_steps):
    epoch, j = divmod(i, per_epoch)
    rows = epoch_permutation(order_key, epoch, len(data["y"]))[j * batch_size:(j + 1) * batch_size]
    batch = jax.device_put({k: v[rows] for k, v in data.items()})
    state, metrics = step(state, batch, jax.random.fold_in(step_keys, i))
    acc = metrics if acc is None else jax.tree.map(jnp.add, acc, metrics)
    count += 1
    if (i + 1) % log_every == 0 or i + 1 == num_steps:
      records.append((i + 1, float(jax.device_get(acc["loss"])) / count))
      acc, count = None, 0
  return state, records


def _assert_same_state(a, b):
  for x, y in zip(jax.tree.leaves((a.params, a.model_state, a.opt_state, a.step)),
                  jax.tree.leaves((b.params, b.model_state, b.opt_state, b.step)), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


CASES = {"mlp": (lambda: TinyMLP(use_bn=True), blobs), "conv": (TinyConv, _images)}


# Bit-identical: one step per dispatch (any program) and the rolled loop for dense programs. On
# XLA:CPU the rolled loop compiles convolutions differently, and unrolled chunks let batch-norm
# reductions fuse across steps, so those may differ in the last bits; the measured table
# (lipprune.train.loop_modes) only ever picks a mode that bench/bench_loop.py found identical.
EXACT = [("mlp", "step", None), ("conv", "step", None), ("mlp", "scan", 4), ("mlp", "scan", 64)]
CLOSE = [("conv", "scan", 4), ("mlp", "unroll", 3), ("conv", "unroll", 3)]


@pytest.mark.parametrize("net,mode,k", EXACT + CLOSE)
def test_modes_match_step_by_step(tmp_path, net, mode, k):
  make, data_fn = CASES[net]
  data = data_fn()
  state0, step = _setup(make(), data)
  kw = dict(batch_size=16, num_steps=23, key=jax.random.key(4))
  want, want_records = reference_loop(state0, step, data, log_every=10, **kw)
  path = str(tmp_path / "m.jsonl")
  got = T.train(state0, step, data, log_every=10, metrics_path=path, loop_mode=mode,
                steps_per_dispatch=k, **kw)
  got_records = [(r["step"], r["train/loss"]) for r in io.read_jsonl(path)]
  if (net, mode, k) in EXACT:
    _assert_same_state(want, got)
    assert got_records == want_records  # the same sums in the same order: equal floats
  else:
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                 (want.params, want.model_state), (got.params, got.model_state))
    np.testing.assert_allclose(got_records, want_records, rtol=1e-5)
  # The caller's state survives (the chunks donate a copy of it).
  assert all(not x.is_deleted() for x in jax.tree.leaves(state0))


def test_resume_mid_chunk_is_bit_identical(tmp_path):
  data = blobs()
  state0, step = _setup(TinyMLP(use_bn=True), data)
  kw = dict(batch_size=16, num_steps=40, key=jax.random.key(5), checkpoint_every=7,
            loop_mode="scan", steps_per_dispatch=8)
  want, _ = reference_loop(state0, step, data, batch_size=16, num_steps=40, key=jax.random.key(5),
                           log_every=100)
  # Stops at 17 (not a checkpoint step, so a chunk of 8 is cut short), checkpoints there and
  # resumes: dispatches now start at 17 instead of 14 and 22.
  T.train(state0, step, data, ckpt_dir=str(tmp_path / "b"), stop_after=17, **kw)
  resumed = T.train(state0, step, data, ckpt_dir=str(tmp_path / "b"), **kw)
  _assert_same_state(want, resumed)


def test_device_and_host_batches_agree_with_a_batch_source():
  """A batch source (host batches, one dispatch per step) and device-resident arrays: the same
  parameters, so streaming and in-memory jobs stay interchangeable."""
  data = blobs()
  state0, step = _setup(TinyMLP(), data)
  key = jax.random.key(2)

  class Source:
    def __init__(self):
      self.sampler = BatchSampler(jax.random.fold_in(key, 0), len(data["y"]), 16)

    def batch(self, i):
      return self.sampler.batch(data, i)

  a = T.train(state0, step, Source(), batch_size=16, num_steps=15, key=key)
  b = T.train(state0, step, data, batch_size=16, num_steps=15, key=key, loop_mode="scan",
              steps_per_dispatch=4, device_data=True)
  c = T.train(state0, step, data, batch_size=16, num_steps=15, key=key, device_data=False)
  _assert_same_state(a, b)
  _assert_same_state(a, c)


def test_sampler_blocks_of_epochs_equal_one_permutation_per_epoch():
  key = jax.random.key(3)
  sampler = BatchSampler(key, 50, 8)  # 6 steps per epoch, the last 2 examples dropped
  sampler.epochs_per_block = 3
  for step in (0, 5, 6, 17, 18, 40, 7, 0):  # across block boundaries, and back
    epoch, j = divmod(step, 6)
    np.testing.assert_array_equal(sampler.indices(step),
                                  epoch_permutation(key, epoch, 50)[8 * j:8 * (j + 1)])
  assert BatchSampler(key, 10**6, 8).epochs_per_block == 4  # blocks stay small for big datasets


def test_family_finds_convolutions():
  data = _images(8)
  for make, want in ((TinyConv, "conv"), (TinyMLP, "dense")):
    model = Model(make())
    params, ms = model.init(jax.random.key(0), data["x"][:1])
    assert chunks.family(lambda p, x: model.apply(p, ms, x, train=False)[0], params,
                         data["x"]) == want


def test_plan_table_and_arguments(monkeypatch):
  monkeypatch.setattr(chunks.loop_modes, "TRAIN_LOOP",
                      {("cpu", "dense"): {"mode": "scan", "k": 32}})
  assert chunks.choose_plan("cpu", "dense") == chunks.Plan("scan", 32, "table")
  assert chunks.choose_plan("cpu", "conv") == chunks.Plan("step", 1, "default")
  assert chunks.choose_plan("tpu", "dense") == chunks.Plan("step", 1, "default")
  assert chunks.choose_plan("cpu", "dense", "unroll", 2) == chunks.Plan("unroll", 2, "argument")
  with pytest.raises(ValueError, match="loop_mode='rolled'"):
    chunks.check_plan_args("rolled", None)
  with pytest.raises(ValueError, match="steps_per_dispatch=0"):
    chunks.check_plan_args("scan", 0)
  with pytest.raises(ValueError, match="steps_per_dispatch=4 needs"):
    chunks.check_plan_args("step", 4)


def test_bad_loop_mode_fails_before_the_checkpoint_dir_is_made(tmp_path):
  data = blobs()
  state0, step = _setup(TinyMLP(), data)
  with pytest.raises(ValueError, match="loop_mode"):
    T.train(state0, step, data, batch_size=16, num_steps=5, key=jax.random.key(0),
            ckpt_dir=str(tmp_path / "ck"), loop_mode="fast")
  assert not (tmp_path / "ck").exists()


# ---------------------------------------------------------------- what a kill or a NaN leaves

def test_diverging_lr_never_checkpoints_a_non_finite_state(tmp_path):
  """lr 0.1 for 5 steps, then 0.1 * 1e39 = inf (float32): step 6 turns the weights into inf/NaN
  while its loss (computed before the update) is still finite."""
  data = blobs()
  model = Model(TinyMLP())
  tx = T.direction("sgd", momentum=0.9)
  sched = T.schedule("step", base_lr=0.1, total_steps=40, boundaries=(5,), decay_factor=1e39)
  assert np.isinf(float(sched(5))) and float(sched(4)) == pytest.approx(0.1)
  params, ms = model.init(jax.random.key(0), data["x"][:1])
  state0 = T.TrainState.create(params, ms, tx)
  step = jax.jit(T.make_train_step(T.cross_entropy(model), tx, sched))
  ckpt = str(tmp_path / "ck")
  with pytest.raises(T.NonFiniteLossError, match=r"after step 6 .*Last good checkpoint: step 5 "):
    T.train(state0, step, data, batch_size=16, num_steps=40, key=jax.random.key(0), ckpt_dir=ckpt,
            checkpoint_every=1, log_every=100)
  progress, restored = T.Checkpointer(ckpt).restore(state0)
  assert progress == 5 and int(restored.step) == 5
  assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(restored))


class _Killed(Exception):
  pass


def test_metrics_match_the_resumed_state_after_a_kill_before_the_first_checkpoint(tmp_path):
  data = blobs()
  state0, step = _setup(TinyMLP(), data)
  path, ckpt = str(tmp_path / "m.jsonl"), str(tmp_path / "ck")
  kw = dict(batch_size=16, num_steps=12, key=jax.random.key(1), log_every=2, metrics_path=path,
            ckpt_dir=ckpt, checkpoint_every=10, eval_every=2)
  calls = []

  def dies_at_step_6(s):
    calls.append(int(s.step))
    if int(s.step) == 6 and len(calls) == 3:
      raise _Killed
    return {"step_seen": int(s.step)}

  with pytest.raises(_Killed):
    T.train(state0, step, data, eval_fn=dies_at_step_6, **kw)
  assert [r["step"] for r in io.read_jsonl(path)] == [2, 2, 4, 4, 6]  # train/eval records
  T.train(state0, step, data, eval_fn=dies_at_step_6, **kw)  # no checkpoint: starts over
  records = io.read_jsonl(path)
  assert [(r["step"], "eval/step_seen" in r) for r in records] == [
      (s, e) for s in range(2, 13, 2) for e in (False, True)]


def test_final_eval_record_survives_a_kill_before_the_final_checkpoint(tmp_path, monkeypatch):
  data = blobs()
  state0, step = _setup(TinyMLP(), data)
  path, ckpt = str(tmp_path / "m.jsonl"), str(tmp_path / "ck")
  kw = dict(batch_size=16, num_steps=10, key=jax.random.key(1), log_every=5, metrics_path=path,
            ckpt_dir=ckpt, checkpoint_every=5, eval_fn=lambda s: {"step_seen": int(s.step)})
  save = T.Checkpointer.save

  def save_dies_at_the_end(self, progress, state, **kwargs):
    if progress == 10:
      raise _Killed
    return save(self, progress, state, **kwargs)

  monkeypatch.setattr(T.Checkpointer, "save", save_dies_at_the_end)
  with pytest.raises(_Killed):
    T.train(state0, step, data, **kw)
  assert io.read_jsonl(path)[-1] == {"step": 10, "phase": "train", "eval/step_seen": 10}
  monkeypatch.setattr(T.Checkpointer, "save", save)
  final = T.train(state0, step, data, **kw)  # resumes at 5, recomputes steps 6..10 and the eval
  assert int(final.step) == 10
  evals = [r for r in io.read_jsonl(path) if "eval/step_seen" in r]
  assert evals == [{"step": 10, "phase": "train", "eval/step_seen": 10}]
  assert T.Checkpointer(ckpt).latest_progress() == 10
  T.train(state0, step, data, **kw)  # finished: nothing is recomputed or dropped
  assert [r for r in io.read_jsonl(path) if "eval/step_seen" in r] == evals


# ---------------------------------------------------------------- seeds as one program

def test_vmapped_seeds_equal_sequential_runs(tmp_path):
  data = blobs()
  model = Model(TinyMLP(use_bn=True))
  tx = T.direction("sgd", momentum=0.9, weight_decay=1e-4)
  sched = T.schedule("cosine", base_lr=0.1, total_steps=30)
  step = jax.jit(T.make_train_step(T.cross_entropy(model), tx, sched))
  states = [T.TrainState.create(*model.init(jax.random.key(s), data["x"][:1]), tx)
            for s in range(3)]
  keys = [jax.random.key(10 + s) for s in range(3)]
  kw = dict(batch_size=16, num_steps=30, log_every=10, checkpoint_every=10,
            loop_mode="scan", steps_per_dispatch=8)
  sequential = [T.train(s, step, data, key=k, **kw) for s, k in zip(states, keys)]
  dirs = [str(tmp_path / f"ck{s}") for s in range(3)]
  paths = [str(tmp_path / f"m{s}.jsonl") for s in range(3)]
  # Run 1 alone is ahead (checkpoint at 20); the others catch up to it alone, then all three go
  # vmapped to 25 (stop_after), and from there to the end.
  T.train(states[1], step, data, key=keys[1], ckpt_dir=dirs[1], metrics_path=paths[1],
          stop_after=20, **kw)
  T.train_seeds(states, step, data, keys=keys, vmapped=True, ckpt_dirs=dirs, metrics_paths=paths,
                stop_after=25, **kw)
  assert [T.Checkpointer(d).latest_progress() for d in dirs] == [25, 25, 25]
  vmapped = T.train_seeds(states, step, data, keys=keys, vmapped=True, ckpt_dirs=dirs,
                          metrics_paths=paths, **kw)
  for a, b in zip(sequential, vmapped, strict=True):
    assert int(b.step) == 30
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=2e-5, atol=2e-6),
                 (a.params, a.model_state, a.opt_state), (b.params, b.model_state, b.opt_state))
  for path in paths:
    assert [r["step"] for r in io.read_jsonl(path)] == [10, 20, 25, 30]  # 25: the stop
  # Different seeds really are different runs inside the vmapped program.
  assert not np.allclose(vmapped[0].params["Dense_0"]["kernel"],
                         vmapped[2].params["Dense_0"]["kernel"])


def test_train_seeds_checks_its_lists():
  data = blobs()
  state0, step = _setup(TinyMLP(), data)
  with pytest.raises(ValueError, match="2 states but 1 keys"):
    T.train_seeds([state0, state0], step, data, keys=[jax.random.key(0)], batch_size=16,
                  num_steps=2)
  with pytest.raises(ValueError, match="ckpt_dirs has 1 entries for 2 runs"):
    T.train_seeds([state0, state0], step, data, keys=[jax.random.key(0)] * 2, batch_size=16,
                  num_steps=2, ckpt_dirs=["a"])


# ---------------------------------------------------------------- masked steps

def test_select_masks_equal_multiplied_masks_bit_for_bit():
  rng = np.random.default_rng(0)
  t = rng.normal(size=(40, 7)).astype(np.float32)
  t[0, :3] = [np.nan, np.inf, -np.inf]
  t[1, :2] = [0.0, -0.0]
  m = (rng.random((40, 7)) < 0.5).astype(np.float32)
  m[0, :3] = 0.0
  tree, masks = {"w": jnp.asarray(t), "b": jnp.ones(3)}, {"w": jnp.asarray(m), "b": None}
  want = T.apply_masks(tree, masks)
  got = jax.jit(masking.select_masks)(tree, masks)
  for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
    np.testing.assert_array_equal(np.asarray(a).view(np.uint32), np.asarray(b).view(np.uint32))


def test_masked_norm_is_the_norm_of_the_masked_tree():
  rng = np.random.default_rng(3)
  w, b = rng.normal(size=(30, 9)).astype(np.float32), rng.normal(size=9).astype(np.float32)
  m = (rng.random((30, 9)) < 0.3).astype(np.float32)
  tree, masks = {"w": jnp.asarray(w), "b": jnp.asarray(b)}, {"w": jnp.asarray(m), "b": None}
  want = np.sqrt(np.sum(w.astype(np.float64) ** 2 * m) + np.sum(b.astype(np.float64) ** 2))
  np.testing.assert_allclose(float(jax.jit(masking.masked_norm)(tree, masks)), want, rtol=1e-6)
  np.testing.assert_allclose(float(masking.masked_norm(tree, None)),
                             np.sqrt(np.sum(w.astype(np.float64) ** 2) + np.sum(b ** 2)), rtol=1e-6)
  w[m == 0] = np.inf  # a pruned entry does not count, whatever it holds
  np.testing.assert_allclose(float(masking.masked_norm({"w": jnp.asarray(w), "b": tree["b"]}, masks)),
                             want, rtol=1e-6)


def test_default_select_masks_keep_pruned_weights_zero_and_match_the_product_form():
  # make_train_step's default (fuse_masks=True) masks the gradient with a select, fuse_masks=False
  # with lipprune 0.1's product: same masked gradients, floats equal up to fused multiply-adds.
  data = blobs()
  model = Model(TinyMLP())
  tx = T.direction("sgd", momentum=0.9, weight_decay=0.1)
  sched = T.schedule("constant", base_lr=0.05, total_steps=10)
  params, ms = model.init(jax.random.key(0), data["x"][:1])
  rng = np.random.default_rng(1)
  masks = jax.tree.map(lambda p: jnp.asarray(rng.random(p.shape) > 0.5, jnp.float32)
                       if p.ndim == 2 else None, params)
  state = T.TrainState.create(T.apply_masks(params, masks), ms, tx, masks=masks)
  out, metrics = {}, {}
  for fuse in (False, True):
    kwargs = {} if fuse else {"fuse_masks": False}
    step = jax.jit(T.make_train_step(T.cross_entropy(model), tx, sched, **kwargs))
    out[fuse] = T.train(state, step, data, batch_size=16, num_steps=30, key=jax.random.key(2))
    batch = {k: v[:16] for k, v in data.items()}
    metrics[fuse] = step(state, batch, jax.random.key(5))[1]
  assert float(metrics[True]["loss"]) == float(metrics[False]["loss"])
  np.testing.assert_allclose(metrics[True]["grad_norm"], metrics[False]["grad_norm"], rtol=1e-6)
  # ... the norm of the masked gradient, not of the whole one.
  grads = jax.grad(lambda p: T.cross_entropy(model)(p, ms, batch, jax.random.key(5))[0])(
      state.params)
  assert float(metrics[True]["grad_norm"]) < 0.99 * float(optax.tree.norm(grads))
  for fuse in (False, True):
    for name, m in masks.items():
      if m["kernel"] is None:
        continue
      alive = np.asarray(m["kernel"]) == 1
      kernel = np.asarray(out[fuse].params[name]["kernel"])
      start = np.asarray(state.params[name]["kernel"])
      assert np.all(kernel[~alive] == 0)
      assert np.mean(kernel[alive] != start[alive]) > 0.9  # the surviving weights trained
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               out[False].params, out[True].params)
