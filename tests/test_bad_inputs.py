"""A table of bad inputs, through the jobs' entry points (in-process and on the command line) and the
library's API: each fails with an error naming the field, before compute, leaving the workdir as it
was (absent, or with exactly its old files)."""
import concurrent.futures
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from experiments import common
from experiments import prune as prune_job
from lipprune import data as data_lib
from lipprune import models, sparsity
from lipprune.data import tabular
from tests.conftest import REPO

INF, NAN = float("inf"), float("nan")


def _configs():
  from experiments.configs import (fairness_synthetic, joint_fair_compas, joint_robust_digits,
                                   mnist5k_mlp, prune_digits_mlp, robust_digits_mlp,
                                   separation_digits)
  train = mnist5k_mlp.get_config()
  train.dataset, train.num_epochs, train.model_kwargs.hidden = "digits", 1, (16,)
  prune = prune_digits_mlp.get_config()
  prune.num_seeds, prune.num_epochs, prune.retrain_epochs = 1, 1, 1.0
  prune.arms = ("global_magnitude:lr_rewind",)
  return {"train": train, "prune": prune, "robust": robust_digits_mlp.get_config(),
          "fairness": fairness_synthetic.get_config(), "separation": separation_digits.get_config(),
          "joint_robust": joint_robust_digits.get_config(),
          "joint_fair": joint_fair_compas.get_config()}


def _run(job, config, workdir):
  from experiments import fairness, joint, prune, robust, separation, train
  run = {"train": train.train_and_evaluate, "prune": prune.run, "robust": robust.run,
         "fairness": fairness.run, "separation": separation.run, "joint_robust": joint.run,
         "joint_fair": joint.run}[job]
  return run(config, workdir)


def _set(**fields):
  """A config edit: ``_set(**{'prune.fraction': 1.0})`` sets nested fields by dotted path."""

  def edit(config):
    for path, value in fields.items():
      *parents, leaf = path.split(".")
      node = config
      for p in parents:
        node = node[p]
      node[leaf] = value

  return edit


# (job, config edit, exception, text the message must contain: the field)
JOB_CASES = {
    "train lr=inf": ("train", _set(learning_rate=INF), ValueError, "config.learning_rate=inf"),
    "train lr=nan": ("train", _set(learning_rate=NAN), ValueError, "config.learning_rate=nan"),
    "train lr<0": ("train", _set(learning_rate=-0.1), ValueError, "config.learning_rate"),
    "train epochs=0": ("train", _set(num_epochs=0), ValueError, "config.num_epochs"),
    "train batch=0": ("train", _set(batch_size=0), ValueError, "config.batch_size"),
    "train batch>data": ("train", _set(batch_size=5000), ValueError, "config.batch_size=5000"),
    "train validation>test": ("train", _set(validation_size=360), ValueError,
                              "config.validation_size=360"),
    "train validation<0": ("train", _set(validation_size=-1), ValueError, "config.validation_size"),
    "train momentum=1.5": ("train", _set(momentum=1.5), ValueError, "config.momentum"),
    "train weight_decay<0": ("train", _set(weight_decay=-1e-4), ValueError, "config.weight_decay"),
    "train checkpoint_every<0": ("train", _set(checkpoint_every=-1), ValueError,
                                 "config.checkpoint_every"),
    "train log_every<0": ("train", _set(log_every=-5), ValueError, "config.log_every"),
    "train eval_every<0": ("train", _set(eval_every=-1), ValueError, "config.eval_every"),
    "train eval_batch=0": ("train", _set(eval_batch_size=0), ValueError, "config.eval_batch_size"),
    "train stop_after<0": ("train", _set(stop_after_steps=-1), ValueError,
                           "config.stop_after_steps"),
    "train smoothing=1": ("train", _set(label_smoothing=1.0), ValueError, "config.label_smoothing"),
    "train warmup<0": ("train", _set(warmup_epochs=-1), ValueError, "config.warmup_epochs"),
    "train decay=0": ("train", _set(lr_decay_factor=0.0), ValueError, "config.lr_decay_factor"),
    "train boundary<0": ("train", _set(lr_boundaries_epochs=(-5,)), ValueError,
                         "config.lr_boundaries_epochs"),
    "train seed<0": ("train", _set(seed=-1), ValueError, "config.seed"),
    "train dataset missing": ("train", _set(dataset="compas"), FileNotFoundError, "data_dir"),
    "prune one-shot target<0": ("prune", _set(**{"prune.mode": "one_shot", "prune.rounds": 0,
                                                 "prune.target_sparsity": -0.1}),
                                ValueError, "config.prune.target_sparsity"),
    "prune one-shot target>1": ("prune", _set(**{"prune.mode": "one_shot", "prune.rounds": 0,
                                                 "prune.target_sparsity": 1.5}),
                                ValueError, "config.prune.target_sparsity"),
    "prune one-shot nothing to prune": ("prune", _set(**{"prune.mode": "one_shot",
                                                         "prune.fraction": 0.0}),
                                        ValueError, "config.prune.target_sparsity"),
    "prune iterative target>1": ("prune", _set(**{"prune.rounds": 0, "prune.target_sparsity": 1.5}),
                                 ValueError, "config.prune.target_sparsity"),
    "prune rounds+target": ("prune", _set(**{"prune.target_sparsity": 0.9}), ValueError,
                            "config.prune.rounds=14 and config.prune.target_sparsity=0.9"),
    "prune fraction=1": ("prune", _set(**{"prune.fraction": 1.0}), ValueError,
                         "config.prune.fraction"),
    "prune fraction<0": ("prune", _set(**{"prune.fraction": -0.1}), ValueError,
                         "config.prune.fraction"),
    "prune rounds<0": ("prune", _set(**{"prune.rounds": -2}), ValueError, "config.prune.rounds"),
    "prune arm @abc": ("prune", _set(arms=("global_magnitude:lr_rewind@abc",)), ValueError,
                       "config.arms entry 'global_magnitude:lr_rewind@abc'"),
    "prune layer rate>1": ("prune", _set(**{"prune.layer_rates": {"default": 1.5}}), ValueError,
                           "config.prune.layer_rates['default']"),
    "prune seed<0": ("prune", _set(seed=-1), ValueError, "config.seed"),
    "prune num_seeds=0": ("prune", _set(num_seeds=0), ValueError, "config.num_seeds"),
    "prune data_seed<0": ("prune", _set(data_seed=-1), ValueError, "config.data_seed"),
    "prune lr=inf": ("prune", _set(learning_rate=INF), ValueError, "config.learning_rate"),
    "robust lr=inf": ("robust", _set(learning_rate=INF), ValueError, "config.learning_rate=inf"),
    "robust checkpoint_every<0": ("robust", _set(checkpoint_every=-1), ValueError,
                                  "config.checkpoint_every"),
    "robust num_seeds=0": ("robust", _set(num_seeds=0), ValueError, "config.num_seeds"),
    "robust batch>data": ("robust", _set(batch_size=2048), ValueError, "config.batch_size=2048"),
    "fairness lr=inf": ("fairness", _set(**{"train.learning_rate": INF}), ValueError,
                        "config.train.learning_rate"),
    "fairness momentum=1.5": ("fairness", _set(**{"train.momentum": 1.5}), ValueError,
                              "config.train.momentum"),
    "fairness num_seeds=0": ("fairness", _set(num_seeds=0), ValueError, "config.num_seeds"),
    "prune old field seeds": ("prune", _set(seeds=(0, 1)), ValueError,
                              "config.seeds was renamed: use config.seed (the first seed) and "
                              "config.num_seeds"),
    "joint old field seeds": ("joint_robust", _set(seeds=(0,)), ValueError,
                              "config.seeds was renamed"),
    "robust old field seeds": ("robust", _set(seeds=(0, 1, 2)), ValueError,
                               "config.seeds was renamed"),
    "fairness old field num_datasets": ("fairness", _set(num_datasets=3), ValueError,
                                        "config.num_datasets was renamed: use config.num_seeds"),
    "fairness compas without data": ("fairness", _set(dataset="compas"), ValueError,
                                     "config.data_dir"),
    "separation bins=0": ("separation", _set(bins=0), ValueError, "config.bins"),
    "separation max_train<0": ("separation", _set(max_train=-1), ValueError, "config.max_train"),
    "joint eta=inf": ("joint_fair", _set(**{"joint.eta": INF}), ValueError, "config.joint.eta"),
    "joint label_bias=1.5": ("joint_fair", _set(**{"joint.label_bias": 1.5}), ValueError,
                             "config.joint.label_bias"),
    "joint robust checkpoint_every<0": ("joint_robust", _set(checkpoint_every=-1), ValueError,
                                        "config.checkpoint_every"),
}


def _snapshot(path):
  """Every file under ``path`` with its bytes and mtime, or None if ``path`` does not exist."""
  if not os.path.exists(path):
    return None
  if os.path.isfile(path):
    return open(path, "rb").read(), os.stat(path).st_mtime_ns
  out = {}
  for root, _, files in os.walk(path):
    for f in files:
      p = os.path.join(root, f)
      out[os.path.relpath(p, path)] = (open(p, "rb").read(), os.stat(p).st_mtime_ns)
  return out


@pytest.fixture(autouse=True)
def _no_tabular_data(tmp_path, monkeypatch):
  """No COMPAS file anywhere the loader looks (the data_dir, the environment, the cache)."""
  monkeypatch.setenv("LIPPRUNE_DATA_DIR", str(tmp_path / "no_data"))


@pytest.mark.parametrize("case", list(JOB_CASES))
def test_job_rejects_before_compute_and_leaves_the_workdir(tmp_path, case):
  job, edit, exc, text = JOB_CASES[case]
  lived_in = tmp_path / "lived_in"
  (lived_in / "notes").mkdir(parents=True)
  (lived_in / "notes" / "mine.txt").write_text("not the job's")
  for workdir in (tmp_path / "fresh", lived_in):
    config = _configs()[job]
    edit(config)
    before = _snapshot(workdir)
    with pytest.raises(exc) as e:
      _run(job, config, str(workdir))
    assert text in str(e.value)
    assert _snapshot(workdir) == before


def _workdir_cases(tmp_path):
  """(workdir, text): workdir problems, and a workdir holding another experiment."""
  (tmp_path / "file").write_text("x")
  taken = tmp_path / "taken"

  @common.workdir_job
  def start():
    common.open_workdir(str(taken), _configs()["train"])

  start()
  return [("", "--workdir is required"), (str(tmp_path / "file"), "is a file, not a directory"),
          (str(tmp_path / "file" / "run"), "is a file"),
          ("/sys/lipprune_cannot_exist", "--workdir=/sys/lipprune_cannot_exist cannot be created"),
          (str(taken), "different config (fields ['learning_rate'])")]


def test_workdir_of_a_run_with_the_old_replicate_fields_names_the_new_ones(tmp_path):
  """A workdir written before the replicate fields were renamed (prune: ``seeds``) fails the
  config check with the fields' new names, and is left as it was."""
  from lipprune.train import io
  config = _configs()["prune"]
  old = io._jsonable(config)  # pylint: disable=protected-access
  del old["num_seeds"], old["data_seed"]
  old["seeds"] = [0]
  io.write_json(str(tmp_path / "config.json"), old)
  before = _snapshot(tmp_path)
  with pytest.raises(common.WorkdirError,
                     match=r"fields \['data_seed', 'num_seeds', 'seeds'\]\) \(config.seeds was "
                           r"renamed: use config.seed \(the first seed\) and config.num_seeds"):
    prune_job.run(config, str(tmp_path))
  assert _snapshot(tmp_path) == before


def test_workdir_problems_named_and_nothing_written(tmp_path):
  for workdir, text in _workdir_cases(tmp_path):
    config = _configs()["train"]
    config.learning_rate = 0.05
    before = _snapshot(workdir) if workdir else None
    with pytest.raises(common.WorkdirError) as e:
      _run("train", config, workdir)
    assert text in str(e.value), workdir
    if workdir:
      assert _snapshot(workdir) == before


# ---------------------------------------------------------------- the Python API

def _params_and_masks():
  params = {"a": {"kernel": jax.numpy.arange(12.0).reshape(3, 4), "bias": jax.numpy.ones(4)},
            "conv": {"kernel": jax.numpy.ones((3, 3, 2, 4))}}
  return params, sparsity.init_masks(params)


def _dataset(y, num_classes=10):
  return data_lib.Dataset(x=np.zeros((len(y), 2), np.float32), y=np.asarray(y), num_classes=num_classes,
                          name="toy")


API_CASES = {
    "global_magnitude 1.5": (lambda: sparsity.global_magnitude(*_params_and_masks(), 1.5),
                             "fraction=1.5"),
    "global_magnitude -0.1": (lambda: sparsity.global_magnitude(*_params_and_masks(), -0.1),
                              "fraction=-0.1"),
    "global_magnitude 1.0": (lambda: sparsity.global_magnitude(*_params_and_masks(), 1.0),
                             "fraction=1.0"),
    "random_prune 1.5": (lambda: sparsity.random_prune(jax.random.key(0), _params_and_masks()[1],
                                                       1.5), "fraction=1.5"),
    "random_prune nan": (lambda: sparsity.random_prune(jax.random.key(0), _params_and_masks()[1],
                                                       NAN), "fraction=nan"),
    "layerwise -0.1": (lambda: sparsity.layerwise_magnitude(*_params_and_masks(),
                                                            {"default": -0.1}), "fraction for a/kernel"),
    "filter_l1 1.5": (lambda: sparsity.filter_l1(*_params_and_masks(), 1.5), "fraction for a/kernel"),
    "prune() -0.1": (lambda: sparsity.prune("global_magnitude", *_params_and_masks(), -0.1),
                     "fraction=-0.1"),
    "one_shot target -0.1": (lambda: sparsity.round_fractions("one_shot", target_sparsity=-0.1),
                             "target_sparsity=-0.1"),
    "one_shot target 1.5": (lambda: sparsity.round_fractions("one_shot", target_sparsity=1.5),
                            "target_sparsity=1.5"),
    "iterative target 1.5": (lambda: sparsity.round_fractions("iterative", target_sparsity=1.5),
                             "target_sparsity=1.5"),
    "iterative rounds+target": (lambda: sparsity.round_fractions("iterative", rounds=3,
                                                                 target_sparsity=0.9), "rounds=3"),
    "iterative rounds=0": (lambda: sparsity.round_fractions("iterative", rounds=0), "rounds=0"),
    "create num_classes=0": (lambda: models.create("mlp", 0), "num_classes=0"),
    "create num_classes=-3": (lambda: models.create("mlp", -3), "num_classes=-3"),
    "create num_classes=2.5": (lambda: models.create("mlp", 2.5), "num_classes=2.5"),
    "float labels": (lambda: _dataset(np.array([0.0, 1.0, 2.0], np.float32)), "labels"),
    "labels >= num_classes": (lambda: _dataset(np.array([1, 15, 3])), "labels outside [0, 10)"),
    "negative labels": (lambda: _dataset(np.array([1, -1, 3])), "labels outside [0, 10)"),
    "check_labels num_classes=0": (lambda: data_lib.check_labels(np.array([0]), 0), "num_classes=0"),
    "arm @abc": (lambda: prune_job.parse_arm("random:lr_rewind@abc"), "'random:lr_rewind@abc'"),
}


@pytest.mark.parametrize("case", list(API_CASES))
def test_api_rejects_naming_the_argument(case):
  call, text = API_CASES[case]
  with pytest.raises(ValueError) as e:
    call()
  assert text in str(e.value)


def test_flipped_bytes_without_checksum_name_the_file(tmp_path):
  from tests.conftest import shared_data_dir
  src = shared_data_dir()
  if src is None or not (src / "german.data").exists():
    pytest.skip("needs the shared german.data")
  data = bytearray((src / "german.data").read_bytes())
  data[100] ^= 0xC0  # an ASCII byte becomes an invalid UTF-8 lead byte
  (tmp_path / "german.data").write_bytes(bytes(data))
  with pytest.raises(tabular.DataFileError, match=str(tmp_path / "german.data")):
    tabular.load("german", data_dir=str(tmp_path), verify=False)
  with pytest.raises(tabular.DataFileError, match="verify=False, --config.verify=False"):
    tabular.load("german", data_dir=str(tmp_path))


def test_failed_download_leaves_no_part_file(tmp_path, monkeypatch):
  class Broken:
    def __enter__(self):
      return self

    def __exit__(self, *exc):
      return False

    def read(self):
      raise ConnectionResetError("connection reset by peer")

  monkeypatch.setattr(tabular, "_network_available", lambda url, timeout: True)
  monkeypatch.setattr(tabular.urllib.request, "urlopen", lambda url, timeout: Broken())
  with pytest.raises(ConnectionError, match="german.data"):
    tabular.locate("german.data", data_dir=str(tmp_path), download=True)
  assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- the command line

CLI_CASES = {
    "unknown field": ("train", ["--config.no_such_field=1"],
                      ["--config.no_such_field: the config has no field 'no_such_field'",
                       "'learning_rate'"]),
    "unknown nested field": ("prune", ["--config.prune.no_such=1"],
                             ["config.prune has no field 'no_such'", "'target_sparsity'"]),
    "lr=inf": ("train", ["--config.learning_rate=inf"], ["config.learning_rate=inf"]),
    "batch=2.5": ("train", ["--config.batch_size=2.5"], ["config.batch_size"]),
    "one-shot target 1.5": ("prune", ["--config.prune.mode=one_shot", "--config.prune.rounds=0",
                                      "--config.prune.target_sparsity=1.5"],
                            ["config.prune.target_sparsity=1.5"]),
    "workdir is a file": ("train", [], ["is a file, not a directory"]),
    "renamed field seeds": ("prune", ["--config.seeds=0"],
                            ["--config.seeds: the config has no field 'seeds' (config.seeds was "
                             "renamed: use config.seed (the first seed) and config.num_seeds",
                             "'num_seeds'"]),
}
CLI_CONFIGS = {"train": "mnist5k_mlp", "prune": "prune_digits_mlp"}


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory):
  """Every CLI case, run at once (each is a fresh interpreter importing jax)."""
  root = tmp_path_factory.mktemp("cli")
  (root / "a_file").write_text("x")
  env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")

  def run(case):
    job, args, _ = CLI_CASES[case]
    workdir = root / "a_file" if case == "workdir is a file" else root / case.replace(" ", "_")
    argv = [sys.executable, "-m", f"experiments.{job}",
            f"--config=experiments/configs/{CLI_CONFIGS[job]}.py", *args, f"--workdir={workdir}"]
    before = _snapshot(workdir)
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    return proc, before, _snapshot(workdir)

  with concurrent.futures.ThreadPoolExecutor(3) as pool:
    return dict(zip(CLI_CASES, pool.map(run, CLI_CASES)))


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_cli_rejects_with_nonzero_exit(cli_results, case):
  proc, before, after = cli_results[case]
  assert proc.returncode != 0
  for text in CLI_CASES[case][2]:
    assert text in proc.stderr, proc.stderr[-3000:]
  assert after == before
