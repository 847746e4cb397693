"""The workdir contract (experiments.common): read-only checks before data and compute, one writer
per workdir, config.json written only when the run starts; and the result files of
lipprune.train.io (mode, temporary files, column order, remote paths)."""
import errno
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from experiments import common
from lipprune.train import io
from tests.conftest import REPO
from tests.test_experiments_train import _small_config
from tests.test_prune import _tiny_config


def _env():
  return dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")


# The tiny runs of tests/test_experiments_train.py, with more frequent logs and checkpoints.
TRAIN = dict(num_epochs=1, batch_size=64, log_every=5, eval_every=10, checkpoint_every=10)


def _train_config(**over):
  return _small_config(**{**TRAIN, **over})


def _train_argv(workdir, **over):
  """The command line of ``_train_config(**over)``."""
  c = {"dataset": "digits", "model_kwargs.hidden": "(32,)", **TRAIN, **over}
  return ([sys.executable, "-m", "experiments.train", "--config=experiments/configs/mnist5k_mlp.py"]
          + [f"--config.{k}={v}" for k, v in c.items()] + [f"--workdir={workdir}"])


def _record_keys(path):
  """(phase, step, kind) of every metrics record; kind is 'train' or 'eval' (both at one step)."""
  return [(r["phase"], r["step"], "eval" if any(k.startswith("eval/") for k in r) else "train")
          for r in io.read_jsonl(path)]


# ---------------------------------------------------------------- config.json and its check

def test_bookkeeping_fields_may_change_computed_fields_may_not(tmp_path):
  wd = str(tmp_path / "w")
  c = _train_config()

  @common.workdir_job
  def start(config):
    common.open_workdir(wd, config)

  @common.workdir_job
  def start_twice(config):  # one process may reopen its own workdir (joint -> prune)
    common.open_workdir(wd, config)
    start(config)
    return json.loads(open(os.path.join(wd, common.LOCK_NAME)).read())

  holder = start_twice(c)
  assert holder["pid"] == os.getpid() and holder["host"] == common.socket.gethostname()
  assert not os.path.exists(os.path.join(wd, common.LOCK_NAME))
  assert io.read_json(os.path.join(wd, "config.json"))["learning_rate"] == c.learning_rate
  # Where the data come from and the logging cadence are not the experiment.
  common.check_workdir(wd, _train_config(data_dir="/elsewhere", log_every=7, checkpoint_every=3,
                                         eval_every=0, stop_after_steps=5, download=True))
  with pytest.raises(common.WorkdirError, match=r"different config \(fields \['learning_rate'\]\)"):
    common.check_workdir(wd, _train_config(learning_rate=0.5))
  c2 = _train_config()
  c2.model_kwargs.hidden = (8,)
  with pytest.raises(common.WorkdirError, match=r"\['model_kwargs.hidden'\]"):
    common.check_workdir(wd, c2)
  assert common.config_differences({"joint": {"data_dir": "a", "eta": 1}},
                                   {"joint": {"data_dir": "b", "eta": 1}}) == []


def test_workdir_from_before_an_added_field_resumes_only_with_its_old_value(tmp_path):
  # A pruning workdir written before config.fuse_masks existed ran lipprune 0.1's masking: resuming
  # it with the new default would mix two arithmetics in one study, so it is refused with the fix.
  wd = str(tmp_path / "old")
  os.makedirs(wd)
  old = io._jsonable(_train_config())  # pylint: disable=protected-access
  with open(os.path.join(wd, "config.json"), "w") as f:
    json.dump(old, f)
  new = _train_config()
  new.fuse_masks = True
  with pytest.raises(common.WorkdirError,
                     match=r"\['fuse_masks'\]\) \(config.fuse_masks is new in lipprune 0.2.*"
                           r"resume it with --config.fuse_masks=False\)"):
    common.check_workdir(wd, new)
  new.fuse_masks = False
  common.check_workdir(wd, new)
  # A config without the field (a job that does not mask) is not affected by it.
  common.check_workdir(wd, _train_config())
  # A workdir that records the field is compared as usual.
  with open(os.path.join(wd, "config.json"), "w") as f:
    json.dump({**old, "fuse_masks": True}, f)
  with pytest.raises(common.WorkdirError, match=r"fields \['fuse_masks'\]\); use a new"):
    common.check_workdir(wd, new)


@pytest.mark.parametrize("make,match", [
    (lambda p: "", "--workdir is required"),
    (lambda p: (p / "f").write_text("x") and str(p / "f"), "is a file, not a directory"),
    (lambda p: (p / "f").write_text("x") and str(p / "f" / "run"), "cannot be created: .* is a file"),
])
def test_workdir_problems_in_plain_words(tmp_path, make, match):
  wd = make(tmp_path)
  with pytest.raises(common.WorkdirError, match=match):
    common.check_workdir(wd, _train_config())


def test_unwritable_workdir_named(tmp_path):
  @common.workdir_job
  def start():
    common.open_workdir("/sys/lipprune_cannot_exist/run", _train_config())

  with pytest.raises(common.WorkdirError, match="--workdir=/sys/lipprune_cannot_exist/run"):
    start()


def test_failed_run_leaves_no_workdir_and_its_fix_runs(tmp_path):
  from experiments import train as train_job
  wd = str(tmp_path / "w")
  with pytest.raises(ValueError, match="config.batch_size=5000 exceeds the 1437 examples"):
    train_job.train_and_evaluate(_train_config(batch_size=5000), wd)
  with pytest.raises(ValueError, match="config.validation_size=400 leaves no test examples"):
    train_job.train_and_evaluate(_train_config(validation_size=400), wd)
  assert not os.path.exists(wd)
  res = train_job.train_and_evaluate(_train_config(stop_after_steps=10), wd)
  assert res == {} and os.path.exists(os.path.join(wd, "config.json"))
  assert not os.path.exists(os.path.join(wd, common.LOCK_NAME)), "the lock outlives its job"


# ---------------------------------------------------------------- one writer per workdir

def two_starts_then_kill_the_winner(argv, lock, checkpoints, timeout=300):
  """Starts ``argv`` twice at once; once the process still running has written a checkpoint into
  the folder ``checkpoints``, kills it with SIGKILL. Returns the winner's pid, the other's exit status and stderr, and the
  seconds from the ``lock`` file's appearance to the other's exit."""
  procs = [subprocess.Popen(argv, cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True) for _ in range(2)]
  try:
    deadline, locked_at = time.time() + timeout, None
    while all(p.poll() is None for p in procs):
      assert time.time() < deadline, "neither process gave way"
      if locked_at is None and os.path.exists(lock):
        locked_at = time.time()
      time.sleep(0.05)
    failed_after = time.time() - (locked_at or 0)
    loser = next(p for p in procs if p.poll() is not None)
    winner = next(p for p in procs if p is not loser)
    err = loser.communicate()[1]
    # The winner does run (orbax keeps the latest two steps: poll for any).
    while not (os.path.isdir(checkpoints) and any(n.isdigit() for n in os.listdir(checkpoints))):
      assert winner.poll() is None and time.time() < deadline, winner.communicate()[1][-2000:]
      time.sleep(0.1)
    winner.send_signal(signal.SIGKILL)
    winner.wait()
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  return winner.pid, loser.returncode, err, failed_after


def test_concurrent_starts_one_runs_and_a_killed_holder_is_taken_over(tmp_path):
  wd = tmp_path / "w"
  argv = _train_argv(wd, num_epochs=1000, checkpoint_every=20)
  winner, status, err, failed_after = two_starts_then_kill_the_winner(
      argv, wd / common.LOCK_NAME, wd / "checkpoints")
  assert status != 0 and f"is in use by pid {winner} on host" in err, err[-2000:]
  assert failed_after < 30, "the second process did not fail at once"
  assert json.loads((wd / common.LOCK_NAME).read_text())["pid"] == winner  # left behind
  keys = _record_keys(wd / "metrics.jsonl")
  assert len(keys) == len(set(keys)), "two writers interleaved"
  from experiments import train as train_job
  with pytest.raises(common.WorkdirError):  # the killed run's config: num_epochs=1000
    train_job.train_and_evaluate(_train_config(), str(wd))
  c = _train_config(num_epochs=1000, checkpoint_every=20, stop_after_steps=25)
  assert train_job.train_and_evaluate(c, str(wd)) == {}  # takes the dead holder's lock over
  assert not (wd / common.LOCK_NAME).exists()


def test_without_flock_the_record_decides(tmp_path, monkeypatch):
  def no_flock(fd, op):
    raise OSError(errno.ENOLCK, "No locks available")

  monkeypatch.setattr(common.fcntl, "flock", no_flock)
  wd = tmp_path / "w"
  wd.mkdir()
  sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
  try:
    record = {"pid": sleeper.pid, "host": common.socket.gethostname(), "started": "then"}
    (wd / common.LOCK_NAME).write_text(json.dumps(record))

    @common.workdir_job
    def start():
      common.open_workdir(str(wd), _train_config())

    with pytest.raises(common.WorkdirLockedError, match=f"pid {sleeper.pid}"):
      start()
    (wd / common.LOCK_NAME).write_text(json.dumps({**record, "host": "elsewhere"}))
    with pytest.raises(common.WorkdirLockedError, match="host elsewhere"):
      start()  # another host's process cannot be checked: taken as alive
  finally:
    sleeper.kill()
    sleeper.wait()
  (wd / common.LOCK_NAME).write_text(json.dumps(record))  # its pid is gone now
  start()
  assert (wd / "config.json").exists() and not (wd / common.LOCK_NAME).exists()


# ---------------------------------------------------------------- io

def test_files_honour_the_umask(tmp_path):
  old = os.umask(0o022)
  try:
    io.write_json(tmp_path / "a.json", {"x": 1})
    io.write_csv(tmp_path / "a.csv", [{"x": 1}])
    io.append_jsonl(tmp_path / "a.jsonl", {"x": 1})
    os.umask(0o077)
    io.write_text(tmp_path / "private.txt", "x")
  finally:
    os.umask(old)
  modes = {f: os.stat(tmp_path / f).st_mode & 0o777 for f in os.listdir(tmp_path)}
  assert modes == {"a.json": 0o644, "a.csv": 0o644, "a.jsonl": 0o644, "private.txt": 0o600}


def test_orphaned_temp_files_are_swept_when_a_job_starts(tmp_path):
  wd = tmp_path / "w"
  (wd / "runs" / "a").mkdir(parents=True)
  orphans = [wd / ".tmp-results.json.123.abcd", wd / "runs" / "a" / ".tmp-table.csv.9.ff"]
  for p in orphans:
    p.write_text("half")
  (wd / "keep.json").write_text("{}")

  @common.workdir_job
  def start():
    common.open_workdir(str(wd), _train_config())

  start()
  assert not any(p.exists() for p in orphans)
  assert sorted(os.listdir(wd)) == ["config.json", "keep.json", "runs"]


def test_csv_columns_keep_their_order_across_a_resume(tmp_path):
  fresh = [{"arm": "a", "seed": 0, "round": r, "density": 0.8 ** r, "test_accuracy": 0.9}
           for r in range(3)]
  for r in fresh:  # what a finished round leaves behind, read back by a resumed run
    io.write_json(tmp_path / f"round_{r['round']}.json", r)
  read_back = [io.read_json(tmp_path / f"round_{r}.json") for r in range(3)]
  io.write_csv(tmp_path / "fresh.csv", fresh)
  io.write_csv(tmp_path / "resumed.csv", read_back[:2] + fresh[2:])
  header = (tmp_path / "fresh.csv").read_text().splitlines()[0]
  assert header == "arm,seed,round,density,test_accuracy"
  assert (tmp_path / "resumed.csv").read_text() == (tmp_path / "fresh.csv").read_text()


def test_a_record_after_a_torn_line_is_kept(tmp_path):
  j = tmp_path / "m.jsonl"
  io.append_jsonl(j, {"step": 1})
  with open(j, "a") as f:
    f.write('{"step": 2, "lo')  # killed mid-line
  io.append_jsonl(j, {"step": 3})
  assert [r["step"] for r in io.read_jsonl(j)] == [1, 3]


def test_remote_paths_go_through_epath(tmp_path):
  """``gs://`` paths take the epath branch; here a mock backend maps the bucket to a folder."""
  from etils import epath
  from etils.epath import testing as epath_testing

  def local(path):
    return str(tmp_path / "bucket" / os.fspath(path).split("gs://bucket/", 1)[1])

  def redirect(original, path, *args, **kwargs):
    return original(local(path), *args, **kwargs)

  with epath_testing.mock_epath(**{f: redirect for f in ("open", "exists", "makedirs", "mkdir",
                                                         "isdir", "stat")}):
    assert not io.is_local("gs://bucket/run/r.json") and io.is_local(tmp_path / "x")
    io.write_json("gs://bucket/run/r.json", {"b": 1, "a": np.float32(2.5)})
    assert io.read_json("gs://bucket/run/r.json") == {"b": 1, "a": 2.5}
    for s in range(3):
      io.append_jsonl("gs://bucket/run/m.jsonl", {"step": s})
    io.truncate_jsonl("gs://bucket/run/m.jsonl", 1)
    assert [r["step"] for r in io.read_jsonl("gs://bucket/run/m.jsonl")] == [0, 1]
    assert io.sweep_temp_files("gs://bucket/run") == []
    assert epath.Path("gs://bucket/run/r.json").exists()
  assert json.loads((tmp_path / "bucket" / "run" / "r.json").read_text()) == {"b": 1, "a": 2.5}
  assert not [f for f in os.listdir(tmp_path / "bucket" / "run") if f.startswith(".tmp")]


# ---------------------------------------------------------------- SIGKILL at random moments

def _kill_when(argv, ready, delay=0.0, timeout=300):
  """Starts ``argv``, waits until ``ready()`` (then ``delay`` seconds more) and SIGKILLs it; returns
  False if the process ended first (it then finished or failed on its own)."""
  proc = subprocess.Popen(argv, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
  deadline = time.time() + timeout
  try:
    while not ready():
      if proc.poll() is not None:
        assert proc.returncode == 0, proc.stderr.read()[-3000:]
        return False
      assert time.time() < deadline
      time.sleep(0.01)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True
  finally:
    if proc.poll() is None:
      proc.kill()
    proc.stderr.close()


def _metrics_problems(path, phase, final_step, final_kind):
  keys = _record_keys(path)
  problems = [f"duplicate record {k}" for k in sorted(set(keys)) if keys.count(k) > 1]
  if (phase, final_step, final_kind) not in keys:
    problems.append(f"no final {final_kind} record at step {final_step}")
  return problems


def _final_state(config, workdir):
  import jax
  from experiments import train as train_job
  from lipprune.train.checkpoint import Checkpointer
  train_ds, _ = train_job.load_data(config)
  _, template, *_ = train_job.build(config, train_ds, jax.random.key(0))
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
  progress, state = ckpt.restore(template)
  ckpt.close()
  return progress, jax.device_get(state)


def test_killed_train_resumes_bit_identical(tmp_path):
  """``python -m experiments.train`` SIGKILLed before its first checkpoint and again at a random
  later moment, then rerun: the same results and final state as one uninterrupted run."""
  import jax
  from experiments import train as train_job
  over = dict(num_epochs=2, log_every=2, checkpoint_every=6, eval_every=10)
  ref = train_job.train_and_evaluate(_train_config(**over), str(tmp_path / "ref"))
  wd = tmp_path / "killed"
  metrics = wd / "metrics.jsonl"
  n_records = lambda: len(io.read_jsonl(metrics))  # noqa: E731
  rng = np.random.default_rng(12)
  first = _kill_when(_train_argv(wd, **over), lambda: n_records() >= 1)
  later = int(rng.integers(n_records() + 3, n_records() + 12))
  second = _kill_when(_train_argv(wd, **over), lambda: n_records() >= later,
                      delay=float(rng.uniform(0, 0.05)))
  assert first and second, "the runs ended before they could be killed"
  assert (wd / common.LOCK_NAME).exists()  # the killed holder's, taken over below
  got = train_job.train_and_evaluate(_train_config(**over), str(wd))
  assert got == ref
  (p_ref, s_ref), (p_got, s_got) = (_final_state(_train_config(**over), str(tmp_path / d))
                                    for d in ("ref", "killed"))
  assert p_ref == p_got == ref["steps"]
  for a, b in zip(jax.tree.leaves(s_ref), jax.tree.leaves(s_got)):
    np.testing.assert_array_equal(a, b)
  problems = _metrics_problems(metrics, "train", ref["steps"], "eval")
  assert not problems, problems


def _prune_config():
  return _tiny_config(arms=("global_magnitude:lr_rewind",), log_every=2)


def test_killed_prune_resumes_bit_identical(tmp_path):
  from experiments import prune as prune_job
  ref = prune_job.run(_prune_config(), str(tmp_path / "ref"))
  wd = tmp_path / "killed"
  argv = [sys.executable, "-m", "experiments.prune",
          "--config=experiments/configs/prune_digits_mlp.py", "--config.num_seeds=1",
          "--config.model_kwargs.hidden=24", "--config.batch_size=128", "--config.num_epochs=2",
          "--config.lr_boundaries_epochs=(1.0,)", "--config.retrain_epochs=2.0",
          "--config.prune.rounds=2", "--config.arms=global_magnitude:lr_rewind",
          "--config.log_every=2", "--config.checkpoint_every=5", f"--workdir={wd}"]
  round_1 = wd / "seed_0" / "global_magnitude_lr_rewind" / "round_1"
  records = int(np.random.default_rng(12).integers(1, 5))  # a random moment inside round 1
  assert _kill_when(argv, lambda: len(io.read_jsonl(round_1 / "metrics.jsonl")) >= records)
  got = prune_job.run(_prune_config(), str(wd))
  assert got["rows"] == ref["rows"]
  for f in ("results.csv", "summary.csv"):
    assert (wd / f).read_text() == (tmp_path / "ref" / f).read_text(), f
  for r in (1, 2):
    rdir = round_1.parent / f"round_{r}"
    steps = io.read_json(rdir / "result.json")["retrain_steps"]
    problems = _metrics_problems(rdir / "metrics.jsonl", f"seed0/global_magnitude:lr_rewind/round{r}",
                                 steps, "train")
    assert not problems, (r, problems)
