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
  c.num_seeds = 1
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


@pytest.mark.parametrize("field,value,match", [
    ("normalize", "zscore", r"prune\.normalize='zscore'.*'rms', 'lamp'"),
    ("min_density", 1.5, r"prune\.min_density=1\.5"),
    ("collapse_density", -0.1, r"prune\.collapse_density"),
    ("collapse_per_output", -1.0, r"prune\.collapse_per_output"),
    ("spare", ("[",), r"prune\.spare entry '\['"),
    ("spare", (r"^conv_0/",), r"prune\.spare entry '\^conv_0/' matches no prunable layer.*dense_0"),
])
def test_bad_layer_fields_fail_before_anything_is_written(tmp_path, field, value, match):
  from experiments import prune
  c = _tiny_config()
  c.prune[field] = value
  with pytest.raises(ValueError, match=match):
    prune.run(c, str(tmp_path / "w"))
  assert not os.path.exists(tmp_path / "w")
  c = _tiny_config(plot_band="boxplot")
  with pytest.raises(ValueError, match=r"plot_band='boxplot'.*'median_minmax', 'mean_std'"):
    prune.run(c, str(tmp_path / "w"))
  c = _tiny_config(compare=("global_magnitude:lr_rewind - global_magnitude:weight_rewind@2",))
  with pytest.raises(ValueError, match=r"config\.compare entry.*weight_rewind@2.*not one of"):
    prune.run(c, str(tmp_path / "w"))
  assert not os.path.exists(tmp_path / "w")


def test_run_interrupted_and_resumed_equals_uninterrupted(tmp_path):
  from experiments import prune
  full = prune.run(_tiny_config(), str(tmp_path / "full"))
  assert full["finished"]
  rows = full["rows"]
  assert len(rows) == 4 * 3  # 4 arms x (dense + 2 rounds)
  for r in rows:
    assert r["density"] == pytest.approx(0.8 ** r["round"], abs=1e-3)
    assert r["compression"] == pytest.approx(1 / r["density"], rel=1e-6)
    # Unstructured: every bias stays, the FLOPs are the alive weights (one position per layer).
    assert r["params"] == r["alive"] + 24 + 10 and r["flops"] == r["alive"]
    assert r["collapsed_layers"] == [] and set(r["layer_density"]) == {"dense_0/kernel",
                                                                       "head/kernel"}
    assert 0 <= r["val_accuracy"] <= 1
  for f in ("results.csv", "summary.csv", "matching.csv", "results.json",
            "accuracy_vs_compression.png", "layer_density_random_lr_rewind.png",
            "layer_density_global_magnitude_weight_rewind_t1.png"):
    assert os.path.exists(tmp_path / "full" / f)
  import csv
  with open(tmp_path / "full" / "results.csv") as f:
    header = next(csv.reader(f))
  assert {"layer_density/dense_0/kernel", "collapsed_layers", "flops", "params",
          "val_accuracy"} <= set(header)
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
    for f in ("density", "train_accuracy", "test_accuracy", "test_loss", "train_loss",
              "val_accuracy", "val_loss", "params", "flops", "layer_density", "collapsed_layers"):
      assert x[f] == y[f], (key(x), f)
  assert out["summary"] == full["summary"] and out["matching"] == full["matching"]
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
    assert len({a.retrain_epochs for a in arms}) == 10 and len(arms) == 30
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


# ---- paper-scale configs pinned to lottery-ticket/rewinding-iclr20-public ------------------------
# Each value is the one its config comments cite (vision/gpu-src/official/resnet/cifar10_main.py,
# resnet_model.py, resnet_run_loop.py, gpu-src/README.md; vgg/; tpu-src/.../configs/default.yaml,
# resnet_main.py, tpu-src/models/README.md; lottery/lottery/l1_filter_pruning.py). A later edit of a
# config that drifts from the official code fails here.

CIFAR_RECIPE = {
    "dataset": "cifar10", "validation_size": 2000, "augment": "crop_flip", "batch_size": 128,
    "num_epochs": 182, "optimizer": "sgd", "momentum": 0.9, "nesterov": False,
    "learning_rate": 0.1, "lr_schedule": "step", "lr_boundaries_epochs": (91, 136),
    "lr_decay_factor": 0.1, "warmup_epochs": 0, "weight_decay": 2e-4, "label_smoothing": 0.0,
    "retrain_epochs": 170.0, "lr_rewind_reset_opt": False,
    "model_kwargs": {"shortcut": "stage_projection", "kernel_init": "tf_official",
                     "bn_momentum": 0.997},
    "prune.normalize": "", "prune.min_density": 0.0, "prune.spare": (), "prune.spare_first": False,
    "prune.spare_last": False,
}
UNSTRUCTURED = {**CIFAR_RECIPE, "prune.mode": "iterative", "prune.fraction": 0.2,
                "prune.rounds": 14,
                "arms": ("global_magnitude:fine_tune", "global_magnitude:weight_rewind",
                         "global_magnitude:lr_rewind", "random:lr_rewind")}
STRUCTURED_ARMS = ("filter_l1:fine_tune", "filter_l1:weight_rewind", "filter_l1:lr_rewind",
                   "random_filter:lr_rewind")


def _official_resnet_rates(depth, stage_rates, skip):
  """lottery/lottery/l1_filter_pruning.py resnet_<depth>_B, rewritten: conv layer k (1 = stem) of
  the first conv of block i is k = 2 + 2i; stage boundaries at layers 19/37 (56) or 37/73 (110)."""
  n = (depth - 2) // 6
  edges = (2 * n + 1, 4 * n + 1)
  rates = {}
  for k in range(2, depth, 2):
    if k in skip:
      continue
    rate = stage_rates[0] if k <= edges[0] else stage_rates[1] if k <= edges[1] else stage_rates[2]
    rates[rf"^block_{(k - 2) // 2}/conv_0/"] = rate
  return {**rates, "default": 0.0}


PINNED = {
    ("prune_cifar10_resnet20", None): {**UNSTRUCTURED, "model": "resnet20"},
    ("prune_cifar10_resnet56", None): {**UNSTRUCTURED, "model": "resnet56"},
    ("prune_cifar10_resnet110", None): {**UNSTRUCTURED, "model": "resnet110"},
    ("prune_cifar10_structured", "vgg16"): {
        **CIFAR_RECIPE, "model": "vgg16", "weight_decay": 5e-4, "prune.mode": "one_shot",
        "model_kwargs": {"classifier_width": 0, "kernel_init": "tf_official", "bn_momentum": 0.997},
        "prune.layer_rates": {r"^conv_(0|7|8|9|10|11|12)/": 0.5, "default": 0.0},
        "arms": STRUCTURED_ARMS},
    ("prune_cifar10_structured", "resnet56"): {
        **CIFAR_RECIPE, "model": "resnet56", "prune.mode": "one_shot", "arms": STRUCTURED_ARMS,
        "prune.layer_rates": _official_resnet_rates(56, (0.6, 0.3, 0.1), {16, 18, 20, 34, 38, 54})},
    ("prune_cifar10_structured", "resnet110"): {
        **CIFAR_RECIPE, "model": "resnet110", "prune.mode": "one_shot", "arms": STRUCTURED_ARMS,
        "prune.layer_rates": _official_resnet_rates(110, (0.5, 0.4, 0.3), {36, 38, 74})},
    ("prune_imagenet_resnet50", None): {
        "dataset": "imagenet2012", "validation_size": 10000, "model": "resnet50",
        "batch_size": 1024, "num_epochs": 90, "optimizer": "sgd", "momentum": 0.9,
        "nesterov": True, "learning_rate": 0.4, "lr_schedule": "step", "warmup_epochs": 5,
        "lr_boundaries_epochs": (30, 60, 80), "lr_decay_factor": 0.1, "weight_decay": 1e-4,
        "label_smoothing": 0.0, "retrain_epochs": 81.0, "prune.mode": "iterative",
        "prune.fraction": 0.2, "prune.normalize": "", "arms": UNSTRUCTURED["arms"]},
    ("prune_recommended", "cifar10_resnet20"): {
        **CIFAR_RECIPE, "model": "resnet20", "prune.mode": "iterative", "prune.fraction": 0.2,
        "prune.rounds": 14, "retrain_epochs": 182.0, "arms": ("global_magnitude:lr_rewind",)},
    ("prune_t_sweep", "cifar10_resnet20"): {
        **CIFAR_RECIPE, "model": "resnet20", "prune.mode": "one_shot",
        "prune.target_sparsity": 0.8,
        # T - k epochs for the official checkpoint iterations k of T = 71108 steps.
        "arms": tuple(f"global_magnitude:{m}@{t}" for m in ("fine_tune", "weight_rewind",
                                                            "lr_rewind")
                      for t in ("182", "169.97", "149.97", "129.98", "109.98", "89.98", "69.99",
                                "49.99", "29.99", "10"))},
}


def _field(config, dotted):
  value = config
  for part in dotted.split("."):
    value = value[part]
  return value.to_dict() if hasattr(value, "to_dict") else value


@pytest.mark.parametrize("name,arg", list(PINNED), ids=[f"{n}:{a}" for n, a in PINNED])
def test_paper_scale_config_values_are_pinned(name, arg):
  import importlib
  mod = importlib.import_module(f"experiments.configs.{name}")
  c = mod.get_config(arg) if arg else mod.get_config()
  for field, expected in PINNED[(name, arg)].items():
    got = _field(c, field)
    if isinstance(expected, tuple):
      got = tuple(got)
    assert got == expected, field


def test_prune_t_sweep_grid_is_the_official_rewinding_points():
  from experiments.configs import prune_cifar10_resnet20 as r20
  from experiments.configs import prune_t_sweep
  grid = prune_t_sweep.t_grid(182)
  # Rewind iteration k of 71108 steps, converted to epochs (71108 / 182 steps per epoch).
  by_hand = [182 - k / (71108 / 182) for k in r20.OFFICIAL_REWIND_STEPS]
  np.testing.assert_allclose(grid, by_hand, atol=0.005)
  assert r20.OFFICIAL_REWIND_STEPS[1] == 4701
  assert 182 - 4701 / (71108 / 182) == pytest.approx(170, abs=0.05)


# ---- the paper's summary statistics on hand-made rows ------------------------------------------

def _rows(arm, accs_by_round, compressions):
  return [{"arm": arm, "seed": s, "round": r, "density": 1 / compressions[r],
           "compression": compressions[r], "test_accuracy": acc, "val_accuracy": acc}
          for r, accs in enumerate(accs_by_round) for s, acc in enumerate(accs)]


def test_matching_compression_by_mean_std_and_by_median_minmax():
  from experiments import study
  rows = _rows("a:lr_rewind", [[0.90, 0.92, 0.94], [0.91, 0.90, 0.92], [0.895, 0.90, 0.85],
                               [0.905, 0.91, 0.70]], [1.0, 2.0, 4.0, 8.0])
  rows += _rows("b:fine_tune", [[0.9], [0.95], [0.89]], [1.0, 2.0, 4.0])
  summary = study.aggregate(rows)
  first = {(s["arm"], s["round"]): s for s in summary}
  assert first[("a:lr_rewind", 0)]["test_accuracy_std"] == pytest.approx(0.02)
  assert first[("a:lr_rewind", 3)]["test_accuracy_median"] == 0.905
  assert first[("b:fine_tune", 0)]["test_accuracy_std"] is None  # one seed: n/a, never 0
  match = {m["arm"]: m for m in study.matching(summary)}
  a = match["a:lr_rewind"]
  # Dense: mean 0.92, std 0.02 -> threshold 0.90; min 0.90. Round 2: mean 0.8817, median 0.895
  # (both fail); round 3: mean 0.838 fails, median 0.905 >= 0.90 matches.
  assert (a["max_compression_mean_std"], a["round_mean_std"]) == (2.0, 1)
  assert (a["max_compression_median_minmax"], a["round_median_minmax"]) == (8.0, 3)
  assert a["test_accuracy_median_at_median_minmax"] == 0.905
  b = match["b:fine_tune"]
  assert b["max_compression_mean_std"] is None and b["max_compression_median_minmax"] == 2.0


def test_paired_differences_with_student_t_interval():
  from experiments import study
  rows = _rows("a:lr_rewind", [[0.5, 0.5, 0.5], [0.93, 0.94, 0.95]], [1.0, 2.0])
  rows += _rows("b:fine_tune", [[0.5, 0.5, 0.5], [0.92, 0.92, 0.92]], [1.0, 2.0])
  got = study.paired_differences(rows, ["a:lr_rewind - b:fine_tune"])
  assert got[0]["test_accuracy_diff_mean"] == 0 and got[0]["ci95_low"] == got[0]["ci95_high"] == 0
  d = got[1]  # differences 0.01, 0.02, 0.03: mean 0.02, std 0.01, t_{0.975, 2} = 4.3027
  assert d["test_accuracy_diff_mean"] == pytest.approx(0.02)
  assert d["test_accuracy_diff_std"] == pytest.approx(0.01)
  half = 4.302652729749464 * 0.01 / np.sqrt(3)
  assert (d["ci95_low"], d["ci95_high"]) == pytest.approx((0.02 - half, 0.02 + half))
  with pytest.raises(ValueError, match="must look like"):
    study.paired_differences(rows, ["a:lr_rewind minus b:fine_tune"])


def _shrunk_size(name, kwargs, shape):
  """(params, kernel weights, multiply-adds) of a network built at its shrunk widths."""
  import jax.numpy as jnp
  from lipprune import models
  model = models.create(name, 10, **kwargs)
  x = jax.ShapeDtypeStruct(shape, jnp.float32)
  params, state = jax.eval_shape(model.init, jax.random.key(0), x)
  flat = sparsity.masks.flatten(params)
  macs = sparsity.multiply_adds(sparsity.output_positions(model, params, state, x), params)
  return (sum(int(np.prod(v.shape)) for v in flat.values()),
          sum(int(np.prod(v.shape)) for k, v in flat.items() if sparsity.default_prunable(k, v)),
          macs["dense"])


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
  c.arms = ("filter_l1:lr_rewind", "random_filter:lr_rewind")
  out = prune.run(c, str(tmp_path / "s"))
  for arm in c.arms:
    last = [r for r in out["rows"] if r["round"] == 2 and r["arm"] == arm][0]
    # Two rounds on survivors: conv_0 4 -> 2 -> 1 filters; dense 8 -> 6 -> 4 (round(0.25 * 6) = 2).
    # The consumers' input slices of removed filters are dead too: conv_1 reads 1 of 4 channels,
    # dense_1 keeps 4 of 8 rows and 4 of 8 units, the head 4 of 8 rows.
    assert last["layer_density"] == pytest.approx({
        "conv_0/kernel": 1 / 4, "conv_1/kernel": 1 / 4, "dense_0/kernel": 4 / 8,
        "dense_1/kernel": 1 / 4, "head/kernel": 4 / 8})
    # ... so the row reports the size and FLOPs of conv2(widths=(1, 6), hidden=(4, 4)).
    n_params, n_kernels, macs = _shrunk_size("conv2", {"widths": (1, 6), "hidden": (4, 4)},
                                             (1, 8, 8, 1))
    dense_params, dense_kernels, dense_macs = _shrunk_size("conv2", {"widths": (4, 6),
                                                                     "hidden": (8, 8)},
                                                           (1, 8, 8, 1))
    assert (last["params"], last["alive"], last["flops"]) == (n_params, n_kernels, macs)
    assert last["param_compression"] == dense_params / n_params
    assert last["compression"] == dense_kernels / n_kernels
    assert last["flops_ratio"] == dense_macs / macs
  a, b = ([r["pruned_test_accuracy"] for r in out["rows"] if r["arm"] == arm] for arm in c.arms)
  assert a != b  # L1 and random filters differ


def test_resnet20_driver_spares_by_name_and_reports_the_shrunk_size(tmp_path):
  """Through the driver (params come out of a jitted init and training with sorted keys):
  spare_first/spare_last keep the stem and the head dense, and a structured round reports the
  shrunk ResNet-20's size to the parameter."""
  import ml_collections
  from experiments import prune
  c = _tiny_config(model="resnet20", num_epochs=1, retrain_epochs=1.0, lr_boundaries_epochs=())
  c.model_kwargs = ml_collections.ConfigDict({"shortcut": "stage_projection"})
  c.prune.rounds = 1
  c.prune.spare_first = c.prune.spare_last = True
  c.prune.layer_rates = ml_collections.ConfigDict({r"^block_\d+/conv_0/": 0.5, "default": 0.0})
  c.arms = ("global_magnitude:lr_rewind", "filter_l1:lr_rewind")
  out = prune.run(c, str(tmp_path / "r"))
  pruned = {r["arm"]: r for r in out["rows"] if r["round"] == 1}
  glob = pruned["global_magnitude:lr_rewind"]["layer_density"]
  assert glob["stem_conv/kernel"] == 1.0 and glob["head/kernel"] == 1.0
  assert all(v < 1.0 for k, v in glob.items() if k not in ("stem_conv/kernel", "head/kernel"))
  row = pruned["filter_l1:lr_rewind"]
  inner = tuple(8 if i < 3 else 16 if i < 6 else 32 for i in range(9))  # half of every block
  kw = {"shortcut": "stage_projection"}
  n_params, n_kernels, macs = _shrunk_size("resnet20", {**kw, "inner_widths": inner},
                                           (1, 8, 8, 1))
  dense_params, dense_kernels, _ = _shrunk_size("resnet20", kw, (1, 8, 8, 1))
  assert (row["params"], row["alive"], row["flops"]) == (n_params, n_kernels, macs)
  assert row["param_compression"] == dense_params / n_params
  assert row["compression"] == dense_kernels / n_kernels


def test_layer_collapse_is_reported_and_logged(tmp_path, caplog):
  """The old failure: He init (the 24x10 head's weights are the smallest) and one-shot global
  pruning to 0.5% density without a floor empties a layer; the row names it and a warning is
  logged. The per-layer floor of the default recipe prevents it."""
  from experiments import prune
  c = _tiny_config(arms=("global_magnitude:lr_rewind",))
  c.model_kwargs.kernel_init = "he_normal"
  c.prune.mode, c.prune.target_sparsity, c.prune.min_density = "one_shot", 0.995, 0.0
  with caplog.at_level("WARNING"):
    out = prune.run(c, str(tmp_path / "he"))
  row = out["rows"][-1]
  assert row["collapsed_layers"]
  for k in row["collapsed_layers"]:
    size = {"dense_0/kernel": 64 * 24, "head/kernel": 24 * 10}[k]
    outputs = {"dense_0/kernel": 24, "head/kernel": 10}[k]
    alive = round(row["layer_density"][k] * size)
    assert alive < 0.01 * size or alive < outputs
  assert "layer collapse in " + row["collapsed_layers"][0] in caplog.text
  with open(tmp_path / "he" / "results.csv") as f:
    assert row["collapsed_layers"][0] in f.read()
  c.prune.min_density = 0.05
  floored = prune.run(c, str(tmp_path / "floor"))["rows"][-1]
  assert floored["collapsed_layers"] == []
  assert min(floored["layer_density"].values()) >= 0.05 - 1e-9


def test_t_selected_per_round_on_the_validation_split(tmp_path):
  from experiments import prune
  c = _tiny_config(arms=("global_magnitude:lr_rewind@1", "global_magnitude:lr_rewind@2",
                         "global_magnitude:fine_tune"),
                   compare=("global_magnitude:lr_rewind@2.0 - global_magnitude:fine_tune",))
  out = prune.run(c, str(tmp_path / "t"))
  paired = out["paired"]
  assert [p["round"] for p in paired] == [0, 1, 2] and paired[0]["test_accuracy_diff_mean"] == 0
  assert paired[0]["comparison"] == "global_magnitude:lr_rewind@2 - global_magnitude:fine_tune"
  assert paired[2]["ci95_low"] is None  # one seed: no interval
  assert (tmp_path / "t" / "paired.csv").exists()
  chosen = [s for s in out["summary"] if s["arm"] == "global_magnitude:lr_rewind@val"]
  assert [s["round"] for s in chosen] == [0, 1, 2]
  by_arm = {(s["arm"], s["round"]): s for s in out["summary"]}
  for s in chosen:
    cands = [by_arm[(a, s["round"])] for a in c.arms[:2]]
    best = max(cands, key=lambda x: x["val_accuracy_median"])
    assert s["selected_arm"] == best["arm"]
    assert s["test_accuracy_median"] == best["test_accuracy_median"]
  assert {m["arm"] for m in out["matching"]} == set(c.arms) | {"global_magnitude:lr_rewind@val"}
  assert not any(s["arm"] == "global_magnitude:fine_tune@val" for s in out["summary"])


def test_fuse_masks_is_validated_reaches_every_masked_step_and_changes_only_last_bits(
    tmp_path, monkeypatch):
  from experiments import prune
  with pytest.raises(ValueError, match=r"config\.fuse_masks='no' is not valid.*\[False, True\]"):
    bad = _tiny_config()
    del bad["fuse_masks"]  # a config of the user's own, with a string where a bool belongs
    bad.fuse_masks = "no"
    prune.run(bad, str(tmp_path / "bad"))
  assert not os.path.exists(tmp_path / "bad")
  seen = []
  make = prune.train_lib.make_train_step

  def recording(*args, **kwargs):
    seen.append(kwargs.get("fuse_masks"))
    return make(*args, **kwargs)

  monkeypatch.setattr(prune.train_lib, "make_train_step", recording)
  arms = ("global_magnitude:lr_rewind",)
  rows = {}
  for fuse in (True, False):
    seen.clear()
    res = prune.run(_tiny_config(arms=arms, fuse_masks=fuse), str(tmp_path / f"f{fuse}"))
    assert seen and set(seen) == {fuse}
    rows[fuse] = [r for r in res["rows"] if r["round"] > 0]
  # lipprune 0.1's product and the default select mask the same gradients; the two runs differ
  # only by fused multiply-adds, far below what changes a pruning decision or a metric's digits.
  assert [r["density"] for r in rows[True]] == [r["density"] for r in rows[False]]
  for a, b in zip(rows[True], rows[False]):
    assert abs(a["test_loss"] - b["test_loss"]) < 1e-3 * abs(b["test_loss"])
    assert abs(a["test_accuracy"] - b["test_accuracy"]) <= 1 / 288 + 1e-9


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


def test_a_study_of_one_seed_repeats_that_seed_of_a_larger_study(tmp_path):
  """Seeds are ``seed .. seed + num_seeds - 1`` (workdir ``seed_<s>``), and the data (validation
  holdout) follow ``data_seed``, not the first seed: seed 1 alone (as a sweep runs it) gives seed
  1's rows of the study of seeds 0 and 1."""
  from experiments import prune
  arms = ("global_magnitude:lr_rewind",)
  both = prune.run(_tiny_config(arms=arms, num_seeds=2), str(tmp_path / "both"))
  alone = prune.run(_tiny_config(arms=arms, seed=1), str(tmp_path / "alone"))
  assert sorted(p.name for p in (tmp_path / "both").glob("seed_*")) == ["seed_0", "seed_1"]
  assert [p.name for p in (tmp_path / "alone").glob("seed_*")] == ["seed_1"]
  assert {r["seed"] for r in both["rows"]} == {0, 1}
  assert alone["rows"] == [r for r in both["rows"] if r["seed"] == 1]
  assert [r for r in both["rows"] if r["seed"] == 0] != [
      dict(r, seed=0) for r in alone["rows"]]  # the seeds are different runs
