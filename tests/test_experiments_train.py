"""End-to-end tests of `python -m experiments.train` on embedded data."""
import os
import subprocess
import sys
import time

import pytest

from experiments import train as train_job
from experiments.configs import mnist5k_mlp
from lipprune.train import io
from tests.conftest import REPO


def _small_config(**overrides):
  c = mnist5k_mlp.get_config()
  c.dataset = "digits"
  c.model_kwargs.hidden = (32,)
  c.num_epochs = 4
  c.batch_size = 32
  c.log_every = 20
  c.eval_every = 40
  c.checkpoint_every = 25
  for k, v in overrides.items():
    setattr(c, k, v)
  return c


def test_train_job_learns_digits_and_resumes(tmp_path):
  full = train_job.train_and_evaluate(_small_config(), str(tmp_path / "full"))
  assert full["test_accuracy"] > 0.85
  assert full["steps"] == 4 * (1437 // 32)
  # Interrupted at step 60, then the same command again: same final numbers, bit for bit.
  wd = str(tmp_path / "cut")
  assert train_job.train_and_evaluate(_small_config(stop_after_steps=60), wd) == {}
  with pytest.raises(ValueError, match="different config"):
    train_job.train_and_evaluate(_small_config(seed=3), wd)
  resumed = train_job.train_and_evaluate(_small_config(), wd)
  assert resumed == full
  steps = [r["step"] for r in io.read_jsonl(os.path.join(wd, "metrics.jsonl")) if "train/loss" in r]
  assert steps == sorted(set(steps)), "metrics after the checkpoint were logged twice"
  # A finished workdir is not retrained: results come back from results.json.
  t = time.time()
  assert train_job.train_and_evaluate(_small_config(), wd) == full
  assert time.time() - t < 5


@pytest.mark.parametrize("field,value,allowed", [
    ("model", "resnet21", "resnet20"), ("dataset", "mnist6k", "mnist5k"),
    ("optimizer", "sgdm", "adam"), ("lr_schedule", "linear", "cosine"),
    ("augment", "mixup", "crop_flip"), ("compute_dtype", "float16", "bfloat16")])
def test_bad_names_fail_before_compute(tmp_path, field, value, allowed):
  with pytest.raises(ValueError, match=rf"config\.{field}='{value}'.*{allowed}"):
    train_job.train_and_evaluate(_small_config(**{field: value}), str(tmp_path))
  assert not os.path.exists(tmp_path / "config.json")


@pytest.mark.parametrize("field,value", [("batch_size", 0), ("learning_rate", -0.1), ("momentum", 1.5)])
def test_bad_values_fail(tmp_path, field, value):
  with pytest.raises(ValueError, match=rf"config\.{field}"):
    train_job.train_and_evaluate(_small_config(**{field: value}), str(tmp_path))


def _run(*args, timeout=120):
  env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "experiments.train", *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=timeout)


def test_cli_bad_model_fails_fast_naming_allowed(tmp_path):
  t = time.time()
  proc = _run("--config=experiments/configs/mnist5k_mlp.py", "--config.model=resnet21",
              f"--workdir={tmp_path}")
  assert time.time() - t < 10
  assert proc.returncode != 0
  assert "config.model='resnet21'" in proc.stderr and "'resnet20'" in proc.stderr


def test_cli_helpfull_lists_flags():
  proc = _run("--helpfull")  # absl exits with status 1 after printing help
  assert "--config" in proc.stdout and "--workdir" in proc.stdout and "helpshort" in proc.stdout


def test_bfloat16_compute_trains(tmp_path):
  res = train_job.train_and_evaluate(_small_config(compute_dtype="bfloat16", num_epochs=2),
                                     str(tmp_path))
  assert res["test_accuracy"] > 0.8
