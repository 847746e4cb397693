"""bench/: timing helpers, and the train-step benchmark's models are lipprune's models.

Correctness checks only; no assertion is ever made on speed.
"""
import math

import jax
import numpy as np
import pytest

from bench import bench_train_step as bts
from bench import common


class FakeClock:
  """A clock that reads ``now``; the fake runs below advance it by their scripted cost."""

  def __init__(self):
    self.now = 0.0

  def __call__(self):
    return self.now


def test_time_calls_and_throughput_with_a_scripted_clock():
  clock = FakeClock()
  durations = iter([2.0, 1.0, 4.0])
  calls = []

  def run(n):
    calls.append(n)
    clock.now += next(durations)

  seconds = common.time_calls(run, steps=5, repeats=3, clock=clock)
  assert seconds == [2.0, 1.0, 4.0] and calls == [5, 5, 5]
  # Median repeat 2 s for 5 steps of 8 examples: 20 ex/s.
  assert common.throughput(8, 5, seconds) == pytest.approx(20.0)
  assert common.best_throughput(8, 5, seconds) == pytest.approx(40.0)
  with pytest.raises(ValueError, match="steps and repeats"):
    common.time_calls(run, steps=0, repeats=1)


def test_measure_interleaved_warms_up_then_alternates():
  clock = FakeClock()
  log = []

  def make(name, cost):
    def run(n):
      log.append((name, n))
      clock.now += cost * n
    return run

  seconds = common.measure_interleaved({"a": make("a", 1.0), "b": make("b", 3.0)}, steps=2,
                                       warmup=4, repeats=2, clock=clock)
  assert log == [("a", 4), ("b", 4), ("a", 2), ("b", 2), ("a", 2), ("b", 2)]
  assert seconds == {"a": [2.0, 2.0], "b": [6.0, 6.0]}
  assert common.ratio(common.throughput(1, 2, seconds["a"]),
                      common.throughput(1, 2, seconds["b"])) == pytest.approx(3.0)
  assert math.isnan(common.ratio(1.0, 0.0))


def test_format_table_aligns_columns():
  rows = [{"m": "mlp", "v": 1234.4}, {"m": "resnet20", "v": 7.0}]
  lines = common.format_table(rows, [("m", "model", ""), ("v", "ex/s", ",.0f")]).splitlines()
  assert lines[0] == "| model    |  ex/s |"
  assert lines[1] == "|----------|------:|"
  assert lines[2] == "| mlp      | 1,234 |"
  assert lines[3] == "| resnet20 |     7 |"
  assert len({len(line) for line in lines}) == 1


def test_optional_import_and_machine_info():
  assert common.optional_import("no_such_module_lipprune_bench") is None
  assert common.optional_import("math") is math
  info = common.machine_info()
  assert info["cpu_count"] >= 1 and info["date"].endswith("UTC")
  assert "pip install -r requirements-bench.txt" in common.missing_dependency_message("torch")


def test_main_without_torch_exits_cleanly(monkeypatch, capsys):
  monkeypatch.setattr(common, "optional_import", lambda name: None)
  assert bts.main(["--models=mlp"]) == 0
  assert "torch is not installed" in capsys.readouterr().err


@pytest.fixture
def torch():
  return pytest.importorskip("torch")


def _lipprune_variables(name, x, seed=0):
  from lipprune import models
  model = models.create(name, 10)
  params, model_state = model.init(jax.random.key(seed), x[:1])
  return model, params, model_state


@pytest.mark.parametrize("name, expected", [
    # LeNet-300-100: (784 + 1) * 300 + (300 + 1) * 100 + (100 + 1) * 10.
    ("mlp", 785 * 300 + 301 * 100 + 101 * 10),
    # ResNet-20 option A, by hand: stem 3*3*3*16 + BN 2*16; per block 2 convs + 2 BNs;
    # stage widths 16, 32, 64 (the first conv of stages 2 and 3 reads the previous width); head.
    ("resnet20", (27 * 16 + 32)
     + 3 * 2 * (9 * 16 * 16 + 32)
     + (9 * 16 * 32 + 64) + 5 * (9 * 32 * 32 + 64)
     + (9 * 32 * 64 + 128) + 5 * (9 * 64 * 64 + 128)
     + 64 * 10 + 10),
])
def test_torch_twin_has_lipprune_parameter_count(torch, name, expected):
  x, _ = bts.random_batch(name, 2)
  _, params, _ = _lipprune_variables(name, x)
  lipprune_count = sum(leaf.size for leaf in jax.tree.leaves(params))
  torch_count = sum(p.numel() for p in bts.torch_model(name).parameters())
  assert lipprune_count == torch_count == expected


@pytest.mark.parametrize("name", ["mlp", "resnet20"])
def test_torch_twin_computes_the_same_function(torch, name):
  x, _ = bts.random_batch(name, 4, seed=1)
  model, params, model_state = _lipprune_variables(name, x, seed=3)
  net = bts.torch_model(name, same_padding=True)
  bts.load_lipprune_variables(net, params, model_state)
  xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
  for train in (False, True):  # running statistics, then batch statistics
    expected, _ = model.apply(params, model_state, x, train=train)
    net.train(train)
    with torch.no_grad():
      got = net(xt).numpy()
    np.testing.assert_allclose(got, np.asarray(expected), rtol=1e-4, atol=1e-4)
    # The benchmarked twin pads stride-2 convs symmetrically (torch's padding=1): same shapes and
    # FLOPs, shifted windows. Only the ResNet has such convs; the MLP twin is identical.
    bench_net = bts.torch_model(name)
    bts.load_lipprune_variables(bench_net, params, model_state)
    bench_net.train(train)
    with torch.no_grad():
      bench_got = bench_net(xt).numpy()
    gap = np.max(np.abs(bench_got - np.asarray(expected)))
    assert (gap > 1e-3) if name == "resnet20" else (gap < 1e-4)


def test_load_rejects_mismatched_variables(torch):
  x, _ = bts.random_batch("mlp", 2)
  _, params, _ = _lipprune_variables("mlp", x)
  params = {**params, "extra": {"kernel": np.zeros((3, 3), np.float32)}}
  with pytest.raises(KeyError, match="extra/kernel"):
    bts.load_lipprune_variables(bts.torch_model("mlp"), params)


def test_bench_model_mlp_smoke(torch):
  row = bts.bench_model("mlp", batch_size=16, steps=2, warmup=1, repeats=1)
  assert row["lipprune_ex_per_s"] > 0 and row["torch_ex_per_s"] > 0
  assert row["ratio"] == pytest.approx(row["lipprune_ex_per_s"] / row["torch_ex_per_s"])
  # One repeat: its median is its minimum.
  assert row["best_ratio"] == pytest.approx(row["ratio"])
  assert row["lipprune_params"] == row["torch_params"] == 266_610
  assert math.isfinite(row["lipprune_final_loss"]) and math.isfinite(row["torch_final_loss"])
  assert len(row["lipprune_seconds"]) == len(row["torch_seconds"]) == 1


def test_bench_rejects_bad_arguments(torch):
  with pytest.raises(ValueError, match="expected one of"):
    bts.bench_model("resnet21")
  with pytest.raises(SystemExit):
    bts.parse_args(["--models=mlp,resnet21"])
  args = bts.parse_args(["--batch_size=32", "--models=mlp", "--steps=4"])
  assert (args.batch_size, args.models, args.steps) == (32, ["mlp"], 4)


def test_main_prints_table(torch, capsys, monkeypatch):
  monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # main sets a default; keep the env restorable
  threads = torch.get_num_threads()
  try:
    assert bts.main(["--models=mlp", "--batch_size=8", "--steps=1", "--repeats=1",
                     "--warmup=0", "--torch_threads=1"]) == 0
  finally:
    torch.set_num_threads(threads)
  out = capsys.readouterr().out
  assert "ratio (lipprune/torch)" in out and "devices=" in out and "266,610" in out
  assert "OMP_WAIT_POLICY: PASSIVE" in out
