"""The speed benchmarks' own logic: which dispatch mode the table may record, the table file they
write, the whole-study comparison of result files, the FLOP count of the LeNet step."""
import importlib.util
import json

import pytest

from bench import bench_loop, bench_step_costs, bench_study

INFO = {"date": "2026-01-01 00:00 UTC", "loadavg_1_5_15": (1.0, 1.0, 1.0)}


def _row(contender, rate, identical, family="dense", ratio=1.0):
  return {"model": "mlp", "family": family, "contender": contender, "steps_per_s": rate,
          "ratio": ratio, "identical": identical}


def test_table_takes_the_fastest_bit_identical_mode_only():
  rows = [_row("old", 100, True), _row("step", 150, True, ratio=1.5),
          _row("scan-64", 400, True, ratio=4.0), _row("unroll-4", 900, False, ratio=9.0),
          _row("step", 50, True, "conv"), _row("unroll-4", 80, False, "conv")]
  attacks = [{"family": "conv", "identical": True, "ratio": 1.4},
             {"family": "dense", "identical": True, "ratio": 0.5}]
  seeds = [{"family": "dense", "ratio": 0.8}]
  tables = bench_loop.choose(rows, attacks, seeds, "cpu", INFO)
  dense, conv = tables["TRAIN_LOOP"][("cpu", "dense")], tables["TRAIN_LOOP"][("cpu", "conv")]
  assert (dense["mode"], dense["k"], dense["vs_old"]) == ("scan", 64, 4.0)
  assert dense["vs_step"] == pytest.approx(400 / 150, abs=0.01)
  assert (conv["mode"], conv["k"]) == ("step", 1)  # the faster unroll changes bits: never chosen
  assert tables["ATTACK_UNROLL"] == {("cpu", "conv"): True, ("cpu", "dense"): False}
  assert tables["SEEDS_VMAP"] == {("cpu", "dense"): False}


def test_write_table_keeps_other_backends(tmp_path, monkeypatch):
  from lipprune.train import loop_modes
  monkeypatch.setattr(loop_modes, "TRAIN_LOOP", {("gpu", "conv"): {"mode": "scan", "k": 16}})
  path = tmp_path / "modes.py"
  bench_loop.write_table({"TRAIN_LOOP": {("cpu", "dense"): {"mode": "scan", "k": 256}}},
                         str(path))
  spec = importlib.util.spec_from_file_location("modes", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  assert module.TRAIN_LOOP == {("gpu", "conv"): {"mode": "scan", "k": 16},
                               ("cpu", "dense"): {"mode": "scan", "k": 256}}
  assert module.ATTACK_UNROLL == loop_modes.ATTACK_UNROLL
  assert module.SEEDS_VMAP == loop_modes.SEEDS_VMAP
  assert "bench_loop --write_table" in module.__doc__


def test_bench_args_are_checked():
  with pytest.raises(SystemExit):
    bench_loop.parse_args(["--part=loop,fast"])
  with pytest.raises(SystemExit):
    bench_loop.parse_args(["--modes=scan"])  # a rolled loop needs its k
  assert bench_loop.parse_args(["--modes=step,scan-8"]).modes == ["step", "scan-8"]
  with pytest.raises(SystemExit):
    bench_study.parse_args(["--studies=prune_cifar"])
  with pytest.raises(SystemExit):
    bench_step_costs.parse_args(["--models=vgg"])


def _workdir(root, results, records):
  root.mkdir()
  (root / "results.json").write_text(json.dumps(results))
  (root / "run").mkdir()
  (root / "run" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
  return str(root)


def test_study_comparison_names_what_differs(tmp_path):
  rec = [{"step": 10, "train/loss": 0.5, "train/lr": 0.1, "steps_per_sec": 3.0}]
  a = _workdir(tmp_path / "a", {"acc": 0.9}, rec)
  b = _workdir(tmp_path / "b", {"acc": 0.9}, [dict(rec[0], steps_per_sec=9.0)])
  assert bench_study.compare("prune_digits_mlp", a, b) == ([], [])  # timings do not count
  c = _workdir(tmp_path / "c", {"acc": 0.9000001}, [dict(rec[0], **{"train/lr": 0.1000001})])
  assert bench_study.compare("prune_digits_mlp", a, c) == (["results.json"], ["train/lr"])


def test_lenet_step_flops_by_hand():
  b = 128
  forward = 2 * b * (784 * 300 + 300 * 100 + 100 * 10)
  assert bench_step_costs.lenet_step_flops(b) == 2 * forward + 2 * b * (300 * 100 + 100 * 10)


def test_paired_ratio_cancels_a_load_drift_shared_by_each_round():
  import numpy as np
  from bench import common
  rng = np.random.default_rng(0)
  load = 1 + 0.8 * np.sin(np.linspace(0, 6, 60)) ** 2  # the machine slows down and recovers
  base = 0.1 * load * (1 + 0.01 * rng.standard_normal(60))
  slower = 0.1 * 1.05 * load * (1 + 0.01 * rng.standard_normal(60))
  median, low, high = common.paired_ratio(slower, base)
  assert abs(median - 1.05) < 0.005 and low < 1.05 < high and high - low < 0.02
  assert common.paired_ratio(slower, base) == (median, low, high)  # seeded resampling
  with pytest.raises(ValueError, match="paired rounds"):
    common.paired_ratio([1.0], [1.0])


def test_shuffled_rounds_run_every_contender_once_per_round_in_varying_orders():
  from bench import common
  calls = []
  runs = {name: (lambda n, name=name: calls.append((name, n))) for name in ("a", "b", "c")}
  seconds = common.measure_interleaved(runs, steps=3, warmup=1, repeats=8, shuffle_seed=0)
  assert {k: len(v) for k, v in seconds.items()} == {"a": 8, "b": 8, "c": 8}
  assert calls[:3] == [("a", 1), ("b", 1), ("c", 1)]  # warmup
  rounds = [tuple(name for name, _ in calls[3 + 3 * r:6 + 3 * r]) for r in range(8)]
  assert all(sorted(r) == ["a", "b", "c"] for r in rounds) and len(set(rounds)) > 1
  assert all(n == 3 for _, n in calls[3:])
  with pytest.raises(SystemExit):
    bench_step_costs.parse_args(["--models=mlp,resnet20", "--rounds=5,6,7"])
  assert bench_step_costs.parse_args(["--rounds=30"]).rounds == {"mlp": 30, "resnet20": 30}


def test_step_cost_bench_times_the_loops_chunk_for_each_contender():
  import math
  row = bench_step_costs.bench_masks("mlp", rounds=2)
  assert row["plan"] == "scan-16" and row["rounds"] == 2  # the loop's plan for dense nets on CPU
  assert set(row["seconds"]) == set(bench_step_costs.CONTENDERS)
  assert all(len(v) == 2 and min(v) > 0 for v in row["seconds"].values())
  assert math.isfinite(row["masked_overhead"]) and row["masked_ci"].startswith("[")
