"""A real two-process `jax.distributed` job on localhost (CPU, 2 simulated devices per process):
its results equal the single-process run, it resumes after being stopped, and only process 0
writes results and metrics."""
import os
import socket
import subprocess
import sys

import pytest

from lipprune.train import io
from tests.conftest import REPO

ARGS = ["--config=experiments/configs/mnist5k_mlp.py", "--config.dataset=digits",
        "--config.num_epochs=2", "--config.batch_size=32", "--config.checkpoint_every=20",
        "--config.log_every=10", "--config.model_kwargs.hidden=(64,)"]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _env(**extra):
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  return dict(env, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO), **extra)


def _run_two_processes(workdir, *extra):
  port = _free_port()
  procs = [subprocess.Popen(
      [sys.executable, "-m", "experiments.train", *ARGS, *extra, f"--workdir={workdir}"], cwd=REPO,
      env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2",
               JAX_PROCESS_ID=str(i)),
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
  outs = [p.communicate(timeout=400)[0] for p in procs]
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-4000:]
  return outs


def test_two_process_run_equals_single_process(tmp_path):
  multi, single = tmp_path / "multi", tmp_path / "single"
  outs = _run_two_processes(multi, "--config.stop_after_steps=30")
  assert "process 1 of 2, 4 global devices" in outs[1]
  assert not (multi / "results.json").exists()
  _run_two_processes(multi)  # the same command again resumes at step 20's checkpoint... and ends
  proc = subprocess.run([sys.executable, "-m", "experiments.train", *ARGS, f"--workdir={single}"],
                        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=400)
  assert proc.returncode == 0, proc.stderr[-4000:]
  got, want = io.read_json(multi / "results.json"), io.read_json(single / "results.json")
  assert got["steps"] == want["steps"] == 2 * (1437 // 32)
  for k in ("train_accuracy", "test_accuracy"):
    assert got[k] == pytest.approx(want[k], abs=1.5 / 360), k
  for k in ("train_loss", "test_loss"):
    assert got[k] == pytest.approx(want[k], rel=1e-4), k
  # One writer: every logged step appears exactly once in the metrics file.
  steps = [r["step"] for r in io.read_jsonl(multi / "metrics.jsonl") if "train/loss" in r]
  assert steps == list(range(10, 81, 10)) + [88]
