"""launch/: every script's dry run prints the exact commands, and its real run executes those same
commands (checked with stand-ins for python, gcloud, git and sbatch that record what they get)."""
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch"
SHELL_SCRIPTS = ["local.sh", "multi_gpu.sh", "tpu_vm.sh", "slurm.sh", "slurm.sbatch"]
TRAIN_CFG = "experiments/configs/mnist5k_mlp.py"
PRUNE_CFG = "experiments/configs/prune_digits_mlp.py"
JOB = ["-m", "experiments.train", f"--config={TRAIN_CFG}"]


def _env(**extra):
  env = {k: v for k, v in os.environ.items()
         if not k.startswith(("JAX_", "SLURM", "XLA_", "CUDA_", "LIPPRUNE_"))
         and k not in ("DRY_RUN", "PYTHON")}
  env.update(extra)
  return env


def sh(script, *args, env=None, check=True):
  """Runs a launch script with bash from the repository root; returns the CompletedProcess."""
  proc = subprocess.run(["bash", str(LAUNCH / script), *args], cwd=REPO, capture_output=True,
                        text=True, env=env or _env(), timeout=60)
  if check:
    assert proc.returncode == 0, proc.stderr
  return proc


def lines(proc):
  return [shlex.split(line) for line in proc.stdout.splitlines()]


def sweep(*args, env=None, check=True):
  proc = subprocess.run([sys.executable, str(LAUNCH / "sweep.py"), *args], cwd=REPO,
                        capture_output=True, text=True, env=env or _env(), timeout=60)
  if check:
    assert proc.returncode == 0, proc.stderr
  return proc


def recorder(tmp_path, name, record):
  """An executable ``name`` that appends one shell line to ``record``, in a single write so that
  processes started in parallel cannot interleave: its JAX_*, XLA_*, CUDA_VISIBLE_DEVICES and
  SLURM_LOCALID environment (sorted), then its argv."""
  path = tmp_path / "bin" / name
  path.parent.mkdir(exist_ok=True)
  path.write_text(
      "#!/usr/bin/env bash\n"
      "line=''\n"
      "for v in $(compgen -e | grep -E '^(JAX_|XLA_|CUDA_VISIBLE_DEVICES$|SLURM_LOCALID$)' | sort); do\n"
      "  line+=$(printf '%q ' \"$v=${!v}\"); done\n"
      "line+=$(printf '%q ' \"$0\" \"$@\")\n"
      # One write per line: ranks started in parallel append concurrently.
      f"printf '%s\\n' \"$line\" >> {shlex.quote(str(record))}\n"
      "exit ${FAKE_STATUS:-0}\n")
  path.chmod(0o755)
  return path


def recorded(record):
  return [shlex.split(line) for line in Path(record).read_text().splitlines()]


# ---------------------------------------------------------------------------------------- syntax

@pytest.mark.parametrize("script", SHELL_SCRIPTS)
def test_bash_syntax_and_help(script):
  subprocess.run(["bash", "-n", str(LAUNCH / script)], check=True)
  assert os.access(LAUNCH / script, os.X_OK)
  if script != "slurm.sbatch":
    text = sh(script, "--help").stdout
    assert "--dry_run" in text and "set -euo" not in text, "help is the header comment only"
    assert text.splitlines()[0].strip(), "the help text starts with what the script does"


def test_sbatch_directives_precede_the_first_command():
  """Slurm stops reading #SBATCH lines at the first command of the script."""
  text = (LAUNCH / "slurm.sbatch").read_text().splitlines()
  first_cmd = next(i for i, l in enumerate(text[1:], 1) if l.strip() and not l.startswith("#"))
  directives = [i for i, l in enumerate(text) if l.startswith("#SBATCH")]
  assert directives and max(directives) < first_cmd


# ---------------------------------------------------------------------------------------- local

def test_local_dry_run_prints_exact_command(tmp_path):
  wd = tmp_path / "wd"
  out = lines(sh("local.sh", "--dry_run", "--job=train", f"--config={TRAIN_CFG}", f"--workdir={wd}",
                 "--", "--config.seed=1", "--config.model_kwargs={'hidden': (3,)}"))
  assert out == [["python3", *JOB, f"--workdir={wd}", "--config.seed=1",
                  "--config.model_kwargs={'hidden': (3,)}"]]
  assert not wd.exists()


def test_local_cpu_devices_install_and_env_dry_run(tmp_path):
  out = lines(sh("local.sh", "--job=prune", f"--config={PRUNE_CFG}", "--workdir=w", "--cpu_devices=8",
                 "--install", "--python=/opt/py/bin/python", env=_env(DRY_RUN="1")))
  assert out == [
      ["/opt/py/bin/python", "-m", "pip", "install", "-e", "."],
      ["env", "XLA_FLAGS=--xla_force_host_platform_device_count=8", "JAX_PLATFORMS=cpu",
       "/opt/py/bin/python", "-m", "experiments.prune", f"--config={PRUNE_CFG}", "--workdir=w"]]


def test_local_real_run_executes_the_printed_command(tmp_path):
  record = tmp_path / "rec"
  py = recorder(tmp_path, "python", record)
  args = ["--job=train", f"--config={TRAIN_CFG}", "--workdir=w", "--cpu_devices=2", f"--python={py}",
          "--", "--config.seed=4"]
  dry = lines(sh("local.sh", "--dry_run", *args))[0]
  sh("local.sh", *args)
  env_part = [a for a in dry if a.startswith(("XLA_FLAGS=", "JAX_"))]
  assert recorded(record) == [sorted(env_part) + dry[dry.index(str(py)):]]


@pytest.mark.parametrize("args,needle", [
    (["--job=pretrain", f"--config={TRAIN_CFG}", "--workdir=w"], "--job='pretrain'"),
    (["--job=train", "--config=experiments/configs/nope.py", "--workdir=w"], "nope.py"),
    (["--job=train", f"--config={TRAIN_CFG}"], "--workdir"),
    (["--job=train", f"--config={TRAIN_CFG}", "--workdir=w", "--cpu_devices=two"], "--cpu_devices"),
    (["--job=train", f"--config={TRAIN_CFG}", "--workdir=w", "--gpus=1"], "--gpus=1"),
])
def test_local_bad_arguments(args, needle):
  proc = sh("local.sh", "--dry_run", *args, check=False)
  assert proc.returncode != 0 and needle in proc.stderr and not proc.stdout


# ------------------------------------------------------------------------------------ multi-GPU

def test_multi_gpu_single_process_dry_run():
  base = ["--job=train", f"--config={TRAIN_CFG}", "--workdir=w", "--dry_run"]
  assert lines(sh("multi_gpu.sh", *base)) == [["python3", *JOB, "--workdir=w"]]
  assert lines(sh("multi_gpu.sh", *base, "--gpus=0,2", "--mem_fraction=0.9")) == [
      ["env", "CUDA_VISIBLE_DEVICES=0,2", "XLA_PYTHON_CLIENT_MEM_FRACTION=0.9", "python3", *JOB,
       "--workdir=w"]]


def _jax_env(argv):
  return {k: v for k, v in (a.split("=", 1) for a in argv if re.match(r"^[A-Z_]+=", a))}


def test_multi_gpu_processes_dry_run_sets_rank_env_per_process(tmp_path):
  proc = sh("multi_gpu.sh", "--processes=3", "--gpus=4,5,6", "--port=23456", "--job=train",
            f"--config={TRAIN_CFG}", f"--workdir={tmp_path}/wd", "--dry_run", "--", "--config.seed=2")
  text = proc.stdout.splitlines()
  assert text[0] == f"mkdir -p {tmp_path}/wd/logs" and text[-1] == "wait"
  procs = [shlex.split(t) for t in text[1:-1]]
  assert len(procs) == 3
  by_rank = {}
  for argv in procs:
    env = _jax_env(argv)
    rank = int(env["JAX_PROCESS_ID"])
    by_rank[rank] = argv
    assert env["JAX_COORDINATOR_ADDRESS"] == "localhost:23456"
    assert env["JAX_NUM_PROCESSES"] == "3"
    assert env["CUDA_VISIBLE_DEVICES"] == str(4 + rank)
    py = argv.index("python3")
    cmd = argv[py:]
    if rank > 0:  # background, logging to its own file
      assert cmd[-4:] == [">", f"{tmp_path}/wd/logs/process_{rank}.log", "2>&1", "&"]
      cmd = cmd[:-4]
    assert cmd == ["python3", *JOB, f"--workdir={tmp_path}/wd", "--config.seed=2"]
  assert sorted(by_rank) == [0, 1, 2]
  assert procs[-1] is by_rank[0], "process 0 runs last, in the foreground"
  assert not (tmp_path / "wd").exists()


def test_multi_gpu_processes_real_run_matches_dry_run(tmp_path):
  record = tmp_path / "rec"
  py = recorder(tmp_path, "python", record)
  args = ["--processes=2", "--cpu", "--job=train", f"--config={TRAIN_CFG}",
          f"--workdir={tmp_path}/wd", f"--python={py}"]
  dry = [shlex.split(t) for t in sh("multi_gpu.sh", "--dry_run", *args).stdout.splitlines()[1:-1]]
  sh("multi_gpu.sh", *args)
  want = []
  for argv in dry:
    argv = argv[:-4] if argv[-1] == "&" else argv  # the redirection and '&' of a background rank
    py_at = argv.index(str(py))
    want.append(sorted(argv[1:py_at]) + argv[py_at:])  # env words (sorted, as recorded), then argv
  assert sorted(recorded(record)) == sorted(want)
  assert (tmp_path / "wd" / "logs" / "process_1.log").exists()


def test_multi_gpu_failed_process_fails_the_launch(tmp_path):
  py = recorder(tmp_path, "python", tmp_path / "rec")
  proc = sh("multi_gpu.sh", "--processes=2", "--cpu", "--job=train", f"--config={TRAIN_CFG}",
            f"--workdir={tmp_path}/wd", f"--python={py}", env=_env(FAKE_STATUS="3"), check=False)
  assert proc.returncode == 3


@pytest.mark.parametrize("args,needle", [
    (["--processes=3", "--gpus=0,1"], "--gpus='0,1'"),
    (["--processes=x"], "--processes='x'"),
    (["--cpu"], "--cpu"),
    (["--mem_fraction=1.5"], "--mem_fraction"),
    (["--gpus=a,b"], "--gpus='a,b'"),
])
def test_multi_gpu_bad_arguments(args, needle):
  proc = sh("multi_gpu.sh", "--dry_run", "--job=train", f"--config={TRAIN_CFG}", "--workdir=w", *args,
            check=False)
  assert proc.returncode != 0 and needle in proc.stderr and not proc.stdout


# ---------------------------------------------------------------------------------- Cloud TPU VM

TPU = ["--name=lp-pod", "--zone=us-central2-b"]
GCLOUD = ["gcloud", "compute", "tpus", "tpu-vm"]


def test_tpu_create_delete_dry_run():
  create = lines(sh("tpu_vm.sh", "create", *TPU, "--accelerator=v4-32", "--project=my-proj",
                    "--dry_run"))
  assert create == [[*GCLOUD, "create", "lp-pod", "--zone=us-central2-b", "--project=my-proj",
                     "--accelerator-type=v4-32", "--version=tpu-ubuntu2204-base"]]
  spot = lines(sh("tpu_vm.sh", "create", *TPU, "--spot", "--version=v2-alpha-tpuv5-lite",
                  "--accelerator=v5litepod-8", "--dry_run"))[0]
  assert spot[-3:] == ["--accelerator-type=v5litepod-8", "--version=v2-alpha-tpuv5-lite", "--spot"]
  assert lines(sh("tpu_vm.sh", "delete", *TPU, "--dry_run")) == [
      [*GCLOUD, "delete", "lp-pod", "--zone=us-central2-b", "--quiet"]]


def test_tpu_install_copies_the_repo_to_all_workers():
  archive, scp, ssh = lines(sh("tpu_vm.sh", "install", *TPU, "--dry_run"))
  assert archive[:4] == ["git", "archive", "--format=tar.gz", "-o"] and archive[-1] == "HEAD"
  assert scp == [*GCLOUD, "scp", archive[4], "lp-pod:lipprune.tar.gz", "--zone=us-central2-b",
                 "--worker=all"]
  assert ssh[:8] == [*GCLOUD, "ssh", "lp-pod", "--zone=us-central2-b", "--worker=all"]
  assert ssh[8] == "--command" and len(ssh) == 10
  remote = ssh[9]
  assert "tar -xzf ~/lipprune.tar.gz -C ~/lipprune" in remote
  assert 'pip install -q -e . "jax[tpu]"' in remote
  assert "rm -rf" not in remote, "reinstalling must not delete results under ~/lipprune"


def test_tpu_run_same_command_on_all_workers():
  ssh = lines(sh("tpu_vm.sh", "run", *TPU, "--bucket=my-bkt", "--job=prune", f"--config={PRUNE_CFG}",
                 "--dry_run", "--", "--config.seed=1", "--config.arms=global_magnitude:lr_rewind@5"))
  assert len(ssh) == 1 and len(ssh[0]) == 10
  assert ssh[0][:9] == [*GCLOUD, "ssh", "lp-pod", "--zone=us-central2-b", "--worker=all", "--command"]
  remote = shlex.split(ssh[0][-1])
  assert remote[:4] == ["cd", "~/lipprune", "&&", "LIPPRUNE_DISTRIBUTED=1"]
  assert remote[4:] == ["python3", "-m", "experiments.prune", f"--config={PRUNE_CFG}",
                        "--workdir=gs://my-bkt/lipprune/prune", "--config.seed=1",
                        "--config.arms=global_magnitude:lr_rewind@5"]
  fuse = lines(sh("tpu_vm.sh", "run", *TPU, "--bucket=my-bkt", "--fuse", "--job=prune",
                  f"--config={PRUNE_CFG}", "--dry_run"))
  assert "--workdir=/gcs/my-bkt/lipprune/prune" in shlex.split(fuse[0][-1])


def test_tpu_mount_and_fetch():
  mount = lines(sh("tpu_vm.sh", "mount", *TPU, "--bucket=my-bkt", "--dry_run"))
  assert len(mount) == 1 and "--worker=all" in mount[0]
  assert "gcsfuse --implicit-dirs --rename-dir-limit=1000000 my-bkt /gcs/my-bkt" in mount[0][-1]
  from_bucket = lines(sh("tpu_vm.sh", "fetch", *TPU, "--bucket=my-bkt", "--job=robust",
                         "--dest=out", "--dry_run"))
  assert from_bucket == [["mkdir", "-p", "out"],
                         ["gcloud", "storage", "rsync", "--recursive", "gs://my-bkt/lipprune/robust",
                          "out/robust"]]
  from_mount = lines(sh("tpu_vm.sh", "fetch", *TPU, "--bucket=my-bkt", "--fuse", "--job=robust",
                        "--dest=out", "--dry_run"))
  assert from_mount == from_bucket  # the mounted workdir is the same objects
  from_worker0 = lines(sh("tpu_vm.sh", "fetch", *TPU, "--job=robust", "--dry_run"))
  assert from_worker0[1] == [*GCLOUD, "scp", "--recurse", "lp-pod:lipprune/workdirs/robust",
                             "tpu_results/lp-pod", "--zone=us-central2-b", "--worker=0"]


def test_tpu_real_run_calls_gcloud_with_the_printed_argv(tmp_path):
  record = tmp_path / "rec"
  recorder(tmp_path, "gcloud", record)
  recorder(tmp_path, "git", record)
  env = _env(PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}", TMPDIR=str(tmp_path))
  for cmd in ("create", "install", "run", "delete"):
    args = [cmd, *TPU, "--job=train", f"--config={TRAIN_CFG}", "--", "--config.seed=1"]
    dry = lines(sh("tpu_vm.sh", cmd, "--dry_run", *args[1:], env=env))
    record.unlink(missing_ok=True)
    sh("tpu_vm.sh", *args, env=env)
    got = recorded(record)
    assert [g[1:] for g in got] == [d[1:] for d in dry]
    assert [Path(g[0]).name for g in got] == [d[0] for d in dry]


@pytest.mark.parametrize("args,needle", [
    (["boot", *TPU], "unknown subcommand 'boot'"),
    ([], "expected one of: create install mount run fetch delete"),
    (["create", "--name=x"], "--zone"),
    (["create", "--zone=z"], "--name"),
    (["create", *TPU, "--accelerator=big"], "--accelerator='big'"),
    (["run", *TPU, "--job=nope", f"--config={TRAIN_CFG}"], "--job='nope'"),
    (["run", *TPU, "--job=train"], "--config"),
    (["mount", *TPU], "--bucket"),
    (["fetch", *TPU, "--bucket=gs://b"], "--bucket='gs://b'"),
    (["create", *TPU, "--acelerator=v4-8"], "--acelerator=v4-8"),
])
def test_tpu_bad_arguments(args, needle):
  proc = sh("tpu_vm.sh", *args, "--dry_run", check=False)
  assert proc.returncode != 0 and needle in proc.stderr and not proc.stdout


# ----------------------------------------------------------------------------------------- Slurm

SLURM = ["--job=train", f"--config={TRAIN_CFG}", "--workdir=/scratch/r20"]


def test_slurm_sh_dry_run_prints_sbatch_line():
  out = lines(sh("slurm.sh", *SLURM, "--nodes=2", "--gpus_per_node=4", "--time=04:00:00",
                 "--partition=gpu", "--account=lab", "--cpus_per_task=8", "--mem=64G",
                 "--sbatch_arg=--qos=high", "--dry_run", "--", "--config.seed=3"))
  assert out == [
      ["mkdir", "-p", "/scratch/r20"],
      ["sbatch", "--job-name=lipprune-train", "--nodes=2", "--ntasks-per-node=4", "--gpus-per-node=4",
       "--time=04:00:00", "--partition=gpu", "--account=lab", "--cpus-per-task=8", "--mem=64G",
       "--output=/scratch/r20/slurm-%j.out", "--export=ALL,LIPPRUNE_TASKS=gpu,LIPPRUNE_PYTHON=python3",
       "--qos=high", str(LAUNCH / "slurm.sbatch"), "train", TRAIN_CFG, "/scratch/r20",
       "--config.seed=3"]]


def test_slurm_sh_per_node_and_cpu_modes():
  per_node = lines(sh("slurm.sh", *SLURM, "--nodes=3", "--gpus_per_node=8", "--tasks=node",
                      "--dry_run"))[1]
  assert "--ntasks-per-node=1" in per_node and "--gpus-per-node=8" in per_node
  assert "--export=ALL,LIPPRUNE_TASKS=node,LIPPRUNE_PYTHON=python3" in per_node
  cpu = lines(sh("slurm.sh", *SLURM, "--gpus_per_node=0", "--dry_run"))[1]
  assert "--ntasks-per-node=1" in cpu and not any(a.startswith("--gpus") for a in cpu)
  assert "--export=ALL,LIPPRUNE_TASKS=node,LIPPRUNE_PYTHON=python3" in cpu


def test_slurm_sh_real_run_submits_the_printed_line(tmp_path):
  record = tmp_path / "rec"
  recorder(tmp_path, "sbatch", record)
  env = _env(PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}")
  args = ["--job=train", f"--config={TRAIN_CFG}", f"--workdir={tmp_path}/wd", "--nodes=2"]
  dry = lines(sh("slurm.sh", *args, "--dry_run", env=env))[1]
  sh("slurm.sh", *args, env=env)
  (got,) = recorded(record)
  assert got[1:] == dry[1:] and (tmp_path / "wd").is_dir()


def test_sbatch_script_srun_per_gpu():
  env = _env(DRY_RUN="1", SLURM_JOB_ID="1234", SLURM_JOB_NUM_NODES="2", SLURM_NTASKS="8")
  out = lines(sh("slurm.sbatch", "train", TRAIN_CFG, "/scratch/r20", "--config.seed=3", env=env))
  assert out == [["srun", "--kill-on-bad-exit=1", "python3", *JOB, "--workdir=/scratch/r20",
                  "--config.seed=3"]]


def test_sbatch_script_srun_per_node_sets_coordinator():
  env = _env(DRY_RUN="1", LIPPRUNE_TASKS="node", LIPPRUNE_PYTHON="/venv/bin/python",
             SLURMD_NODENAME="node007", SLURM_JOB_ID="1234", SLURM_JOB_NUM_NODES="2",
             SLURM_NTASKS="2")
  export, srun = lines(sh("slurm.sbatch", "train", TRAIN_CFG, "/scratch/r20", env=env))
  port = 1234 % 4096 + 61440  # jax's own choice of port for a Slurm job
  assert export == ["export", f"JAX_COORDINATOR_ADDRESS=node007:{port}", "JAX_NUM_PROCESSES=2"]
  assert srun[:4] == ["srun", "--kill-on-bad-exit=1", "--ntasks-per-node=1", "bash"]
  assert srun[4] == "-c" and "JAX_PROCESS_ID=$SLURM_PROCID" in srun[5]
  assert "env -u SLURM_LOCALID" in srun[5]
  assert srun[6:] == ["bash", "/venv/bin/python", *JOB, "--workdir=/scratch/r20"]


def test_sbatch_per_node_wrapper_really_sets_the_process_id(tmp_path):
  """Runs the exact bash -c wrapper of per-node mode with a recorder in place of python."""
  record = tmp_path / "rec"
  py = recorder(tmp_path, "python", record)
  env = _env(DRY_RUN="1", LIPPRUNE_TASKS="node", SLURMD_NODENAME="n1", SLURM_JOB_ID="7",
             SLURM_JOB_NUM_NODES="2", SLURM_NTASKS="2", LIPPRUNE_PYTHON=str(py))
  export, srun = lines(sh("slurm.sbatch", "train", TRAIN_CFG, "wd", env=env))
  task_env = _env(SLURM_PROCID="1", SLURM_LOCALID="0", **dict(a.split("=", 1) for a in export[1:]))
  subprocess.run(srun[3:], env=task_env, check=True)
  (got,) = recorded(record)
  assert got[:3] == [f"JAX_COORDINATOR_ADDRESS=n1:{7 + 61440}", "JAX_NUM_PROCESSES=2",
                     "JAX_PROCESS_ID=1"]
  assert got[3:] == [str(py), *JOB, "--workdir=wd"], "SLURM_LOCALID is hidden from the process"


@pytest.mark.parametrize("args,needle", [
    (["--tasks=all"], "--tasks='all'"),
    (["--nodes=0"], "--nodes='0'"),
    (["--time=4h"], "--time='4h'"),
    (["--gpus_per_node=-1"], "--gpus_per_node='-1'"),
    (["--partiton=gpu"], "--partiton=gpu"),
])
def test_slurm_bad_arguments(args, needle):
  proc = sh("slurm.sh", *SLURM, *args, "--dry_run", check=False)
  assert proc.returncode != 0 and needle in proc.stderr and not proc.stdout


def test_sbatch_bad_mode_and_missing_args():
  proc = sh("slurm.sbatch", "train", env=_env(DRY_RUN="1"), check=False)
  assert proc.returncode != 0 and "usage" in proc.stderr
  proc = sh("slurm.sbatch", "train", TRAIN_CFG, "wd", env=_env(DRY_RUN="1", LIPPRUNE_TASKS="core"),
            check=False)
  assert proc.returncode != 0 and "LIPPRUNE_TASKS='core'" in proc.stderr


# ----------------------------------------------------------------------------------------- sweep

def _sweep_module():
  spec = importlib.util.spec_from_file_location("launch_sweep", LAUNCH / "sweep.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


ARMS = "config.arms=global_magnitude:fine_tune,global_magnitude:weight_rewind@22.5,global_magnitude:lr_rewind"
SEEDS = "config.seed=0,1,2"


def test_sweep_expands_3x3_with_unique_safe_workdirs(tmp_path):
  proc = sweep("--job=prune", f"--config={PRUNE_CFG}", "--grid", ARMS, "--grid", SEEDS,
               f"--workdir_root={tmp_path}", "--launcher=print", "--", "--config.num_seeds=1",
               "--config.prune.rounds=2")
  runs = lines(proc)
  assert len(runs) == 9 and "9 runs" in proc.stderr
  arms = ARMS.split("=", 1)[1].split(",")
  expected_points = [(a, s) for a in arms for s in "012"]
  workdirs = []
  for argv, (arm, seed) in zip(runs, expected_points):
    assert argv[:4] == ["python3", "-m", "experiments.prune", f"--config={PRUNE_CFG}"]
    assert argv[5:] == [f"--config.arms={arm}", f"--config.seed={seed}", "--config.num_seeds=1",
                        "--config.prune.rounds=2"]
    workdir = argv[4].removeprefix("--workdir=")
    assert Path(workdir).parent == tmp_path
    workdirs.append(Path(workdir).name)
  assert len(set(workdirs)) == 9
  assert all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", w) for w in workdirs)
  assert workdirs[0].startswith("arms-global_magnitude_fine_tune-") and workdirs[0].endswith("__seed-0")
  assert not list(tmp_path.iterdir()), "print creates nothing"


def test_sweep_names_are_stable_when_the_grid_grows(tmp_path):
  def names(*grids):
    args = ["--job=prune", f"--config={PRUNE_CFG}", f"--workdir_root={tmp_path}", "--launcher=print"]
    for g in grids:
      args += ["--grid", g]
    args += ["--", "--config.num_seeds=1"]
    return [Path(a[4].removeprefix("--workdir=")).name for a in lines(sweep(*args))]
  small = names("config.prune.fraction=0.2,0.5", "config.seed=0")
  large = names("config.prune.fraction=0.2,0.5,0.9", "config.seed=0")
  assert small == ["prune.fraction-0.2__seed-0", "prune.fraction-0.5__seed-0"]
  assert large[:2] == small and len(large) == 3


def test_sweep_name_sanitizing_keeps_distinct_values_distinct():
  mod = _sweep_module()
  values = ["a/b", "a_b", "a b", "-x", ".hidden", "(1,2)", "(1;2)", "x" * 400]
  names = [mod.run_name([("v", v)]) for v in values]
  assert len(set(names)) == len(values)
  assert names[1] == "v-a_b"  # already safe: unchanged
  for n in names:
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", n) and len(n) <= 200
  assert mod.run_name([("v", "a/b")]) == names[0]  # a pure function of the point


def test_sweep_semicolon_separates_values_with_commas():
  mod = _sweep_module()
  assert mod.parse_grid(["config.lr_boundaries_epochs=(1,2);(3,4)", "seed=7"]) == [
      ("lr_boundaries_epochs", ["(1,2)", "(3,4)"]), ("seed", ["7"])]


def test_sweep_over_seeds_spaced_by_num_seeds_is_accepted(tmp_path):
  runs = lines(sweep("--job=prune", f"--config={PRUNE_CFG}", "--grid", "config.seed=0,3,6",
                     f"--workdir_root={tmp_path}", "--launcher=print"))
  assert [argv[5:] for argv in runs] == [[f"--config.seed={s}"] for s in (0, 3, 6)]


def test_sweep_slurm_launcher_dry_run(tmp_path):
  runs = lines(sweep("--job=prune", f"--config={PRUNE_CFG}", "--grid", "config.seed=0,1",
                     f"--workdir_root={tmp_path}", "--launcher=slurm", "--launcher_arg=--nodes=2",
                     "--launcher_arg=--time=02:00:00", "--dry_run", "--", "--config.num_seeds=1"))
  assert len(runs) == 2
  for seed, argv in zip("01", runs):
    assert argv == ["bash", "launch/slurm.sh", "--job=prune", f"--config={PRUNE_CFG}",
                    f"--workdir={tmp_path}/seed-{seed}", "--nodes=2", "--time=02:00:00", "--",
                    f"--config.seed={seed}", "--config.num_seeds=1"]
    assert sh("slurm.sh", "--dry_run", *argv[2:]).returncode == 0  # slurm.sh accepts it
  assert not list(tmp_path.iterdir())


def test_sweep_local_runs_every_point_and_reports_failures(tmp_path):
  record = tmp_path / "rec"
  py = recorder(tmp_path, "python", record)
  args = ["--job=train", f"--config={TRAIN_CFG}", "--grid", "config.seed=0,1,2", "--grid",
          "config.batch_size=32,64,128", f"--workdir_root={tmp_path}/runs", f"--python={py}"]
  dry = lines(sweep(*args, "--dry_run"))
  assert not record.exists()
  sweep(*args)
  assert recorded(record) == dry and len(dry) == 9
  record.unlink()
  proc = sweep(*args, env=_env(FAKE_STATUS="1"), check=False)
  assert proc.returncode == 1 and len(recorded(record)) == 9
  assert proc.stderr.count("FAILED") == 9


@pytest.mark.parametrize("grid,needle", [
    ("config.seed", "malformed --grid 'config.seed'"),
    ("config.seed=", "malformed --grid 'config.seed='"),
    ("config.seed=1,,2", "malformed --grid 'config.seed=1,,2'"),
    ("=1,2", "malformed --grid '=1,2'"),
    ("config.bad key=1", "malformed --grid 'config.bad key=1'"),
    ("config.seed=1,1", "repeated"),
    ("config.method=a,b", "config.method is not a field"),
    ("config.prune.nope=1", "config.prune.nope is not a field"),
    ("config.seed=1,0", "--grid config.seed=0,1: each run does config.num_seeds=3 seeds"),
    ("config.seed=0,3,5", "--grid config.seed=0,3,5: each run does config.num_seeds=3 seeds"),
    ("config.seed=0,a", "--grid config.seed and --config.num_seeds take integers"),
])
def test_sweep_malformed_grid_fails_naming_it(tmp_path, grid, needle):
  proc = sweep("--job=prune", f"--config={PRUNE_CFG}", "--grid", grid, f"--workdir_root={tmp_path}",
               "--dry_run", check=False)
  assert proc.returncode == 2 and needle in proc.stderr and not proc.stdout


@pytest.mark.parametrize("args,needle", [
    (["--job=pretrain"], "--job"),
    (["--job=prune", "--launcher=tpu"], "--launcher"),
    (["--job=prune", "--grid", "config.seed=0,0x", "--grid", "seed=1"], "two --grid"),
    (["--job=prune", "--config=experiments/configs/nope.py", "--grid", "config.seed=1"], "nope.py"),
    (["--job=prune"], "at least one --grid"),
])
def test_sweep_bad_arguments(tmp_path, args, needle):
  base = [] if any(a.startswith("--config") for a in args) else [f"--config={PRUNE_CFG}"]
  proc = sweep(*args, *base, f"--workdir_root={tmp_path}", "--dry_run", check=False)
  assert proc.returncode == 2 and needle in proc.stderr and not proc.stdout
