"""bench.bench_step_times builds the paper-scale configs' real train steps and converts step times to
device-hours; checked on ResNet-20 (the cheapest) for the arithmetic, never for speed."""
import pytest

from bench import bench_step_times


def test_resnet20_cost_arithmetic():
  r = bench_step_times.measure("resnet20", steps=1)
  assert r["batch"] == 128
  assert r["total_steps"] == 182 * (50_000 // 128)
  assert r["step_s"] > 0
  assert r["device_hours"] == pytest.approx(r["total_steps"] * r["step_s"] / 3600 * r["devices"])


def test_unknown_config_is_named(capsys, monkeypatch):
  monkeypatch.setattr("sys.argv", ["bench_step_times", "--only=resnet21"])
  with pytest.raises(SystemExit, match="unknown config 'resnet21'"):
    bench_step_times.main()
