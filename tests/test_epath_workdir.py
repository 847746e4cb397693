"""Workdirs on a non-local etils.epath file system: ``gs://`` paths served by the offline fakes of
tests/fake_gcs.py (in memory, or a folder shared by processes).

Orbax cannot checkpoint to these fakes: it writes arrays through TensorStore's own GCS driver
(HTTP to storage.googleapis.com), not through epath/fsspec. The runs here therefore set
``$LIPPRUNE_CHECKPOINT_ROOT`` (the documented option, `lipprune.train.io.checkpoint_dir`) to put
checkpoints on a local folder; everything else lives on the fake bucket.
"""
import importlib.util
import json
import os
import subprocess
import sys
import time

import pytest

from experiments import common
from experiments import train as train_job
from lipprune.train import io
from tests import fake_gcs
from tests.test_prune import _tiny_config
from tests.test_workdir import (_record_keys, _train_argv, _train_config,
                                two_starts_then_kill_the_winner)


@pytest.fixture
def memory_gcs(tmp_path, monkeypatch):
  """``gs://`` in memory; checkpoints under tmp_path/ckpt; the cwd must stay empty (a path
  mistaken for a local one would land there, e.g. as ``gs:/bucket/...``)."""
  fake_gcs.install(fake_gcs.MemoryGCS)
  monkeypatch.setenv(io.CHECKPOINT_ROOT_ENV, str(tmp_path / "ckpt"))
  monkeypatch.chdir((tmp_path / "cwd").mkdir() or tmp_path / "cwd")
  yield
  fake_gcs.uninstall()
  assert not os.listdir(tmp_path / "cwd")


@pytest.fixture
def dir_gcs(tmp_path, monkeypatch):
  """``gs://`` objects as files under tmp_path/gcs, here and in child processes."""
  monkeypatch.setenv(fake_gcs.ROOT_ENV, str(tmp_path / "gcs"))
  monkeypatch.setenv(io.CHECKPOINT_ROOT_ENV, str(tmp_path / "ckpt"))
  fake_gcs.install(fake_gcs.DirGCS)
  yield tmp_path / "gcs"
  fake_gcs.uninstall()


def test_io_round_trips_on_the_bucket(memory_gcs):
  io.write_json("gs://bucket/run/r.json", {"b": 1, "a": 2.5})
  assert io.read_json("gs://bucket/run/r.json") == {"b": 1, "a": 2.5}
  stored = fake_gcs.MemoryGCS.store["/bucket/run/r.json"].getvalue()
  assert stored == b'{\n  "b": 1,\n  "a": 2.5\n}\n'
  for s in range(3):
    io.append_jsonl("gs://bucket/run/m.jsonl", {"step": s})
  io.truncate_jsonl("gs://bucket/run/m.jsonl", 1)
  assert [r["step"] for r in io.read_jsonl("gs://bucket/run/m.jsonl")] == [0, 1]
  assert io.create_exclusive("gs://bucket/run/x", "first")
  assert not io.create_exclusive("gs://bucket/run/x", "second")
  assert io.read_text("gs://bucket/run/x") == "first"
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots()
  ax.plot([0, 1], [1, 0])
  io.save_figure(fig, "gs://bucket/run/fig.png")
  plt.close(fig)
  assert fake_gcs.MemoryGCS.store["/bucket/run/fig.png"].getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
  io.remove("gs://bucket/run/x")
  assert not io.exists("gs://bucket/run/x") and io.is_dir("gs://bucket/run")


def test_checkpoint_dir_is_what_orbax_takes(tmp_path, monkeypatch):
  monkeypatch.delenv(io.CHECKPOINT_ROOT_ENV, raising=False)
  monkeypatch.chdir(tmp_path)
  assert io.checkpoint_dir("gs://b/run/ckpt/") == "gs://b/run/ckpt"
  assert io.checkpoint_dir("rel/ckpt") == str(tmp_path / "rel" / "ckpt")
  with pytest.raises(ValueError, match=r"az://b/run.*TensorStore.*LIPPRUNE_CHECKPOINT_ROOT"):
    io.checkpoint_dir("az://b/run")
  monkeypatch.setenv(io.CHECKPOINT_ROOT_ENV, "roots")
  assert io.checkpoint_dir("az://b/run/ckpt") == str(tmp_path / "roots/az/b/run/ckpt")
  assert io.checkpoint_dir("local") == str(tmp_path / "local")  # local workdirs keep theirs


def test_workdir_schemes_fail_before_compute(tmp_path, monkeypatch):
  monkeypatch.delenv(io.CHECKPOINT_ROOT_ENV, raising=False)
  cases = [("az://b/run", "TensorStore"), ("memory://b/run", "no file system")]
  if importlib.util.find_spec("gcsfs") is None:  # no fake installed: fsspec's own gs://
    cases.append(("gs://b/run", "install gcsfs"))
  for workdir, match in cases:
    with pytest.raises(common.WorkdirError, match=f"--workdir={workdir}.*{match}"):
      train_job.train_and_evaluate(_train_config(), workdir)


def test_train_on_the_bucket_equals_local_and_resumes(tmp_path, memory_gcs, monkeypatch):
  """A bucket workdir stopped at step 12 and resumed from its checkpoint there ends with the
  results.json of an uninterrupted local run, byte for byte; then the finished-run check answers
  from results.json."""
  local = train_job.train_and_evaluate(_train_config(), str(tmp_path / "local"))
  wd = "gs://bucket/runs/train"
  assert train_job.train_and_evaluate(_train_config(stop_after_steps=12), wd) == {}
  ckpts = tmp_path / "ckpt" / "gs" / "bucket" / "runs" / "train" / "checkpoints"
  assert sorted(os.listdir(ckpts)) == ["10", "12"]
  assert not io.exists(f"{wd}/results.json") and not io.exists(f"{wd}/{common.LOCK_NAME}")
  with pytest.raises(common.WorkdirError, match="different config"):  # config.json is read there
    train_job.train_and_evaluate(_train_config(seed=3), wd)
  assert train_job.train_and_evaluate(_train_config(), wd) == local
  assert io.read_text(f"{wd}/results.json") == (tmp_path / "local" / "results.json").read_text()
  keys = _record_keys(f"{wd}/metrics.jsonl")
  assert len(keys) == len(set(keys)) and keys[-1] == ("train", 22, "eval")  # trimmed on resume
  assert not [k for k in fake_gcs.MemoryGCS.store if "checkpoints" in k]

  def retrain(*args, **kwargs):
    raise AssertionError("a finished workdir was trained again")

  monkeypatch.setattr(train_job, "_train_and_evaluate", retrain)
  assert train_job.train_and_evaluate(_train_config(), wd) == local


def test_pruning_study_on_the_bucket_equals_local(tmp_path, memory_gcs):
  from experiments import prune
  def cfg(**over):
    c = _tiny_config(arms=("global_magnitude:lr_rewind",), **over)
    c.prune.rounds = 1
    return c

  local = prune.run(cfg(), str(tmp_path / "local"))
  wd = "gs://bucket/runs/prune"
  assert not prune.run(cfg(stop_after_steps=17), wd)["finished"]  # mid dense run, resumed below
  assert prune.run(cfg(), wd) == local
  for name in ("summary.csv", "results.csv", "results.json"):
    assert io.read_text(f"{wd}/{name}") == (tmp_path / "local" / name).read_text(), name
  assert io.exists(f"{wd}/accuracy_vs_compression.png")


def _holder(pid, host=None, heartbeat=None):
  return json.dumps({"pid": pid, "host": host or common.socket.gethostname(), "started": "then",
                     "command": "x", "token": "theirs", "heartbeat": heartbeat or time.time()})


def test_object_lock_takeover_rule(memory_gcs, monkeypatch):
  monkeypatch.setattr(common, "LOCK_SETTLE_S", 0.0)
  wd = "gs://bucket/locked"
  lock = f"{wd}/{common.LOCK_NAME}"

  @common.workdir_job
  def start():
    common.open_workdir(wd, _train_config())
    return json.loads(io.read_text(lock))

  sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
  try:
    io.write_text(lock, _holder(sleeper.pid))
    with pytest.raises(common.WorkdirLockedError, match=f"pid {sleeper.pid} on host"):
      start()
    io.write_text(lock, _holder(sleeper.pid, host="elsewhere"))
    with pytest.raises(common.WorkdirLockedError, match="host elsewhere"):
      start()  # another host's holder with a fresh heartbeat
    assert not io.exists(f"{wd}/config.json"), "a refused start wrote to the workdir"
  finally:
    sleeper.kill()
    sleeper.wait()
  io.write_text(lock, _holder(sleeper.pid))  # its pid is gone now
  mine = start()
  assert mine["pid"] == os.getpid() and mine["token"] != "theirs"
  assert io.exists(f"{wd}/config.json") and not io.exists(lock)
  monkeypatch.setenv(common.LOCK_STALE_ENV, "100")
  io.write_text(lock, _holder(1, host="elsewhere", heartbeat=time.time() - 50))
  with pytest.raises(common.WorkdirLockedError, match="host elsewhere"):
    start()
  io.write_text(lock, _holder(1, host="elsewhere", heartbeat=time.time() - 150))
  assert start()["pid"] == os.getpid() and not io.exists(lock)


def test_object_lock_heartbeat_and_yield(memory_gcs, monkeypatch):
  monkeypatch.setattr(common, "LOCK_SETTLE_S", 0.0)
  monkeypatch.setattr(common, "LOCK_HEARTBEAT_S", 0.05)
  wd = "gs://bucket/beat"
  lock = f"{wd}/{common.LOCK_NAME}"

  @common.workdir_job
  def hold(seconds):
    common.open_workdir(wd, _train_config())
    first = json.loads(io.read_text(lock))["heartbeat"]
    time.sleep(seconds)
    return first, json.loads(io.read_text(lock))

  first, later = hold(0.5)
  assert later["heartbeat"] > first and later["pid"] == os.getpid()
  # A taker racing us: its record replaces ours between our create and our re-read.
  real_create = io.create_exclusive

  def racing_create(path, text):
    created = real_create(path, text)
    io.write_text(path, _holder(os.getpid() + 1, host="racer"))
    return created

  monkeypatch.setattr(io, "create_exclusive", racing_create)
  with pytest.raises(common.WorkdirLockedError, match="host racer.*at the same time"):
    hold(0)


def test_concurrent_starts_on_the_bucket(tmp_path, dir_gcs):
  """Two processes start on one ``gs://`` workdir: one runs, the other exits naming it; the lock
  of the first, killed with SIGKILL, is taken over by the next start."""
  wd = "gs://bucket/w"
  lock = dir_gcs / "bucket" / "w" / common.LOCK_NAME
  argv = _train_argv(wd, num_epochs=1000, checkpoint_every=20)
  argv[1:3] = ["-m", "tests.fake_gcs", "experiments.train"]
  ckpt = tmp_path / "ckpt" / "gs" / "bucket" / "w" / "checkpoints"
  winner, status, err, failed_after = two_starts_then_kill_the_winner(argv, lock, ckpt)
  assert status != 0 and f"is in use by pid {winner} on host" in err, err[-2000:]
  assert failed_after < 30, "the second process did not fail at once"
  assert json.loads(lock.read_text())["pid"] == winner  # left behind
  keys = _record_keys(f"{wd}/metrics.jsonl")
  assert keys and len(keys) == len(set(keys)), "two writers interleaved"
  c = _train_config(num_epochs=1000, checkpoint_every=20, stop_after_steps=25)
  assert train_job.train_and_evaluate(c, wd) == {}  # takes the dead holder's lock over
  assert not lock.exists()
