"""Retraining transforms and the experiments.prune driver (end to end, interrupted and resumed)."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lipprune import sparsity, train
from lipprune.sparsity import retrain


def _states():
  params = {"dense_0": {"kernel": jnp.arange(1.0, 7.0).reshape(2, 3), "bias": jnp.ones(3)}}
  tx = train.direction("sgd", momentum=0.9)
  snap = train.TrainState.create(params, {}, tx).replace(step=jnp.asarray(30, jnp.int32))
  snap = snap.replace(opt_state=jax.tree.map(lambda z: z + 7.0, snap.opt_state))
  final = train.TrainState.create(jax.tree.map(lambda p: -2 * p, params), {}, tx)
  final = final.replace(step=jnp.asarray(100, jnp.int32),
                        opt_state=jax.tree.map(lambda z: z - 3.0, final.opt_state))
  masks = sparsity.global_magnitude(final.params, sparsity.init_masks(final.params), 0.5)
  sched = train.schedule("step", base_lr=0.1, total_steps=100, boundaries=(50, 75))
  return tx, snap, final, masks, sched


def test_fine_tune_constant_final_lr():
  tx, snap, final, masks, sched = _states()
  state, s, n = retrain.fine_tune(final, masks, sched, 100, 40)
  assert n == 40 and int(state.step) == 100
  for k in (0, 10, 1000):
    assert float(s(k)) == pytest.approx(0.001)  # 0.1 * 0.1^2, the last rate of the schedule
  np.testing.assert_array_equal(state.params["dense_0"]["kernel"],
                                [[0, 0, 0], [-8, -10, -12]])
  assert state.masks is masks


def test_weight_rewind_restores_snapshot():
  tx, snap, final, masks, sched = _states()
  state, s, n = retrain.weight_rewind(snap, masks, sched, 70)
  assert n == 70 and int(state.step) == 30 and s is sched
  np.testing.assert_array_equal(state.params["dense_0"]["kernel"], [[0, 0, 0], [4, 5, 6]])
  np.testing.assert_array_equal(jax.tree.leaves(state.opt_state)[0], np.full(3, 7.0))


def test_lr_rewind_keeps_weights_and_opt_state():
  tx, snap, final, masks, sched = _states()
  state, s, n = retrain.lr_rewind(final, masks, sched, 100, 60)
  assert n == 60 and int(state.step) == 40 and state.step.dtype == jnp.int32
  np.testing.assert_array_equal(state.params["dense_0"]["kernel"], [[0, 0, 0], [-8, -10, -12]])
  np.testing.assert_array_equal(jax.tree.leaves(state.opt_state)[0], np.full(3, -3.0))
  # The replayed schedule is the original one from T - t: 0.1 until 50, then 0.01, then 0.001.
  assert [float(s(state.step + i)) for i in (0, 10, 35, 59)] == pytest.approx([0.1, 0.01, 0.001, 0.001])
  reset, _, _ = retrain.lr_rewind(final, masks, sched, 100, 60, reset_opt_state=True, tx=tx)
  assert float(jnp.abs(jax.tree.leaves(reset.opt_state)[0]).sum()) == 0.0


def test_reinit_uses_fresh_weights_full_schedule():
  tx, snap, final, masks, sched = _states()
  state, s, n = retrain.reinit(snap.replace(step=jnp.asarray(0, jnp.int32)), masks, sched, 100)
  assert n == 100 and int(state.step) == 0
  assert float(state.params["dense_0"]["kernel"][0].sum()) == 0.0


# ---- the driver -------------------------------------------------------------------------------

def _tiny_config(**over):
  from experiments.configs import prune_digits_mlp
  c = prune_digits_mlp.get_config()
  c.seeds = (0,)
  c.model_kwargs.hidden = (24,)
  c.batch_size = 128
  c.num_epochs = 2  # 11 steps per epoch on the 1437 digits
  c.lr_boundaries_epochs = (1.0,)
  c.retrain_epochs = 2.0
  c.prune.rounds = 2
  c.arms = ("global_magnitude:fine_tune", "global_magnitude:weight_rewind@1",
            "global_magnitude:lr_rewind", "random:lr_rewind")
  c.log_every = 1000
  c.checkpoint_every = 5
  for k, v in over.items():
    c[k] = v
  return c


def test_bad_config_fails_before_compute(tmp_path):
  from experiments import prune
  with pytest.raises(ValueError, match="retrain.*fine_tune"):
    prune.run(_tiny_config(arms=("global_magnitude:finetune",)), str(tmp_path / "a"))
  with pytest.raises(ValueError, match="pruner.*global_magnitude"):
    prune.run(_tiny_config(arms=("magnitude:lr_rewind",)), str(tmp_path / "b"))
  c = _tiny_config()
  c.prune.mode = "sometimes"
  with pytest.raises(ValueError, match="prune.mode"):
    prune.run(c, str(tmp_path / "c"))
  assert not os.path.exists(tmp_path / "a")


def test_run_interrupted_and_resumed_equals_uninterrupted(tmp_path):
  from experiments import prune
  full = prune.run(_tiny_config(), str(tmp_path / "full"))
  assert full["finished"]
  rows = full["rows"]
  assert len(rows) == 4 * 3  # 4 arms x (dense + 2 rounds)
  for r in rows:
    assert r["density"] == pytest.approx(0.8 ** r["round"], abs=1e-3)
    assert r["compression"] == pytest.approx(1 / r["density"], rel=1e-6)
  for f in ("results.csv", "summary.csv", "results.json", "accuracy_vs_compression.png"):
    assert os.path.exists(tmp_path / "full" / f)
  # Stop every 17 steps (mid-round: rounds are 11-22 steps, checkpoints every 5) and resume.
  work = str(tmp_path / "sliced")
  calls = 0
  while True:
    out = prune.run(_tiny_config(stop_after_steps=17), work)
    calls += 1
    if out["finished"]:
      break
    assert calls < 40
  assert calls > 5
  key = lambda r: (r["arm"], r["round"])
  a = sorted(full["rows"], key=key)
  b = sorted(out["rows"], key=key)
  for x, y in zip(a, b):
    assert key(x) == key(y)
    for f in ("density", "train_accuracy", "test_accuracy", "test_loss", "train_loss"):
      assert x[f] == y[f], (key(x), f)
  # A finished workdir only reports its results again.
  again = prune.run(_tiny_config(), work)
  assert again["rows"] == out["rows"]


CONFIGS = [("prune_digits_mlp", None), ("prune_mnist5k_mlp", None), ("prune_digits_conv2", None),
           ("prune_mnist5k_conv4", None), ("prune_cifar10_resnet20", None),
           ("prune_cifar10_resnet56", None), ("prune_cifar10_resnet110", None),
           ("prune_cifar10_structured", "vgg16"), ("prune_cifar10_structured", "resnet56"),
           ("prune_cifar10_structured", "resnet110"), ("prune_recommended", None),
           ("prune_recommended", "cifar10_resnet20"), ("prune_t_sweep", None)]


@pytest.mark.parametrize("name,arg", CONFIGS, ids=[f"{n}:{a}" for n, a in CONFIGS])
def test_configs_validate(name, arg):
  import importlib
  from experiments import prune
  mod = importlib.import_module(f"experiments.configs.{name}")
  c = mod.get_config(arg) if arg else mod.get_config()
  arms = prune.validate_config(c)
  assert arms
  if name == "prune_digits_mlp":
    assert {a.retrain for a in arms} >= {"fine_tune", "weight_rewind", "lr_rewind"}
    assert any(a.pruner == "random" for a in arms) and c.prune.rounds == 14
  if name == "prune_recommended":
    assert [a.label for a in arms] == ["global_magnitude:lr_rewind"]
    assert c.retrain_epochs == c.num_epochs and c.prune.fraction == 0.2
  if name == "prune_t_sweep":
    assert len({a.retrain_epochs for a in arms}) == 4
  if name == "prune_cifar10_structured" and arg == "resnet56":
    rates = c.prune.layer_rates.to_dict()
    # 27 blocks, 6 sensitive layers skipped of which 16, 18, 20 (blocks 7, 8, 9) and 34, 38, 54.
    assert len(rates) - 1 == 27 - 6 and rates[r"^block_0/conv_0/"] == 0.6
    assert rates[r"^block_25/conv_0/"] == 0.1 and r"^block_7/conv_0/" not in rates
    assert r"^block_26/conv_0/" not in rates and r"^block_16/conv_0/" not in rates


def test_imagenet_config_fails_naming_the_dataset():
  from experiments import prune
  from experiments.configs import prune_imagenet_resnet50
  with pytest.raises(ValueError, match="dataset"):
    prune.validate_config(prune_imagenet_resnet50.get_config())


def test_structured_arm_end_to_end(tmp_path):
  import ml_collections
  from experiments import prune
  c = _tiny_config()
  c.model = "conv2"
  c.model_kwargs = ml_collections.ConfigDict({"widths": (4, 6), "hidden": (8, 8)})
  c.num_epochs = 1
  c.retrain_epochs = 1.0
  c.lr_boundaries_epochs = ()
  c.prune.rounds = 2
  c.prune.layer_rates = ml_collections.ConfigDict({"conv_0": 0.5, "dense_": 0.25, "default": 0.0})
  c.arms = ("filter_l1:lr_rewind",)
  out = prune.run(c, str(tmp_path / "s"))
  last = [r for r in out["rows"] if r["round"] == 2][0]
  # Two rounds on survivors: conv_0 4 -> 2 -> 1 filters; dense 8 -> 6 -> 4 (round(0.25 * 6) = 2).
  assert last["layer_density"]["conv_0/kernel"] == pytest.approx(1 / 4)
  assert last["layer_density"]["dense_0/kernel"] == pytest.approx(4 / 8)
  assert last["layer_density"]["conv_1/kernel"] == 1.0
  assert set(last["layer_density"]) == {"conv_0/kernel", "conv_1/kernel", "dense_0/kernel",
                                        "dense_1/kernel", "head/kernel"}


def test_dense_network_does_not_depend_on_the_snapshot_steps(tmp_path):
  """Weight rewinding splits the original run at T - t; the split must not change the run."""
  from experiments import prune
  one = prune.run(_tiny_config(arms=("global_magnitude:fine_tune",)), str(tmp_path / "one"))
  split = prune.run(_tiny_config(arms=("global_magnitude:weight_rewind@1",
                                       "global_magnitude:fine_tune")), str(tmp_path / "split"))
  dense = lambda res, arm: next(r for r in res["rows"] if r["arm"] == arm and r["round"] == 0)
  a, b = dense(one, "global_magnitude:fine_tune"), dense(split, "global_magnitude:fine_tune")
  for k in ("train_accuracy", "train_loss", "test_accuracy", "test_loss"):
    assert a[k] == b[k], k
  # ... and fine-tuning from it, round by round, is then identical too.
  rounds = lambda res: [r["test_loss"] for r in res["rows"] if r["arm"] == "global_magnitude:fine_tune"]
  assert rounds(one) == rounds(split)
