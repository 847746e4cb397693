"""experiments.reproduce: the registry matches the configs and the docs, blocks are replaced in
place, finished runs are not started again, and ``--check`` passes on the committed separation table
and fails on a tampered one."""
import ast
import csv
import glob
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from absl import app

from experiments import reproduce

ROOT = reproduce.REPO_ROOT
DOCS = ["README.md"] + sorted(os.path.relpath(p, ROOT) for p in glob.glob(f"{ROOT}/docs/*.md"))
CHECKED = "robust_separation_digits"


def _field(config, path):
  for part in path.split("."):
    config = config[part]
  return config


def _expected(text):
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


@pytest.mark.parametrize("name", sorted(reproduce.RUNS))
def test_every_run_config_exists_and_its_overrides_parse(name):
  run = reproduce.RUNS[name]
  assert os.path.isfile(os.path.join(ROOT, run.config_path.split(":")[0])), run.config_path
  assert os.path.isfile(os.path.join(ROOT, "experiments", run.job + ".py")), run.job
  config = reproduce.load_config(run)
  for path, text in run.overrides:
    value = _field(config, path)
    expected = _expected(text)
    assert (tuple(value) if isinstance(value, (list, tuple)) else value) == expected, (path, value)


def test_a_misspelled_override_is_refused_naming_the_field():
  bad = reproduce.Run(job="prune", config="prune_digits_mlp.py", overrides=(("prune.mdoe", "x"),))
  with pytest.raises(ValueError, match=r"config\.prune has no field 'mdoe'.*'mode'"):
    reproduce.load_config(bad)


def test_bad_requests_fail_before_anything_runs(monkeypatch):
  monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("a job was started"))
  with pytest.raises(app.UsageError, match="no artifact matches"):
    reproduce.expand(["no_such_table"])
  with pytest.raises(app.UsageError, match="--data_dir"):
    reproduce.validate_request(["fairness_court_report"], "", False)
  with pytest.raises(app.UsageError, match="states no tolerance"):
    reproduce.validate_request(["pruning_digits_mlp"], "", True)


def test_every_docs_figure_is_registered_and_every_registered_figure_exists():
  on_disk = {os.path.basename(p)[:-4] for p in glob.glob(f"{ROOT}/docs/img/*.png")}
  figures = {n for n, a in reproduce.ARTIFACTS.items() if isinstance(a, reproduce.Figure)}
  assert on_disk == figures
  for name in figures:
    assert reproduce.ARTIFACTS[name].run in reproduce.RUNS


def _command(name):
  data = any(reproduce.RUNS[r].data_dir for r in reproduce.ARTIFACTS[name].runs)
  return f"`python -m experiments.reproduce {name}{' --data_dir=DIR' if data else ''}`"


@pytest.mark.parametrize("doc", DOCS)
def test_every_marker_has_an_entry_and_the_command_under_it(doc):
  with open(os.path.join(ROOT, doc)) as f:
    text = f.read()
  lines = text.split("\n")
  for name in reproduce.MARKER_RE.findall(text):
    artifact = reproduce.ARTIFACTS.get(name)
    assert isinstance(artifact, reproduce.Table) and artifact.doc == doc, name
    start, end = reproduce.find_block(text, name, doc)
    after = text[end + len(reproduce.MARKER_CLOSE):].split("\n")[1]
    assert after == _command(name), name
    assert text[start:end].startswith("\n|") and text[start:end].endswith("|\n\n"), name
  for i, line in enumerate(lines):
    m = re.match(r"!\[[^\]]*\]\((?:docs/)?img/(\w+)\.png\)$", line)
    if m:
      assert lines[i + 2] == _command(m.group(1)), line


def test_every_registered_table_has_one_block_in_its_doc():
  for name, artifact in reproduce.ARTIFACTS.items():
    if isinstance(artifact, reproduce.Table):
      assert all(r in reproduce.RUNS for r in artifact.runs), name
      reproduce.read_block(ROOT, artifact.doc, name)  # raises unless exactly one block


def test_write_block_replaces_exactly_its_block(tmp_path):
  doc = tmp_path / "docs" / "x.md"
  doc.parent.mkdir()
  head, mid, tail = "intro\n\n", "\n`cmd a`\n\ntext between\n", "\n`cmd b`\nend\n"
  doc.write_text(head + "<!-- reproduce:a -->\n| old |\n|---|\n\n<!-- /reproduce -->" + mid +
                 "<!-- reproduce:b -->\n| b |\n\n<!-- /reproduce -->" + tail)
  reproduce.write_block(str(tmp_path), "docs/x.md", "a", "| new |\n|---|\n| 1.5 |\n")
  once = doc.read_text()
  assert once == (head + "<!-- reproduce:a -->\n| new |\n|---|\n| 1.5 |\n\n<!-- /reproduce -->" +
                  mid + "<!-- reproduce:b -->\n| b |\n\n<!-- /reproduce -->" + tail)
  reproduce.write_block(str(tmp_path), "docs/x.md", "a", "| new |\n|---|\n| 1.5 |\n")
  assert doc.read_text() == once
  doc.write_text(once + "<!-- reproduce:a -->\n")
  with pytest.raises(ValueError, match="exactly once"):
    reproduce.read_block(str(tmp_path), "docs/x.md", "a")


def test_patterns_select_in_registry_order():
  names = reproduce.expand(["joint_*_di", "pruning_digits_mlp"])
  assert names == ["pruning_digits_mlp", "joint_fair_di", "joint_base_di"]
  assert reproduce.expand(["*"]) == list(reproduce.ARTIFACTS)


def test_compare_tolerance():
  committed = "| a | 97.50 ± 0.28 | 0.4375 |\n"
  assert reproduce.compare(committed, committed, 0) == []
  assert reproduce.compare("| a | 97.51 ± 0.28 | 0.4375 |\n", committed, 0)
  assert reproduce.compare("| a | 97.51 ± 0.27 | 0.4375 |\n", committed, 0.02) == []
  problems = reproduce.compare("| a | 97.60 ± 0.28 | 0.4375 |\n", committed, 0.05)
  assert len(problems) == 1 and "97.6" in problems[0]
  assert reproduce.compare("| b | 97.50 ± 0.28 | 0.4375 |\n", committed, 0.05)


def _write_csv(path, rows):
  with open(path, "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)


def _prune_workdir(path, arms, values):
  """A prune workdir: config.json, summary.csv from per-seed ``values[(arm, round)]`` computed here
  by hand, and the matching results.csv."""
  os.makedirs(path)
  with open(os.path.join(path, "config.json"), "w") as f:
    json.dump({"arms": arms}, f)
  summary, results = [], []
  for (arm, r), seeds in values.items():
    n = len(seeds)
    mean = sum(seeds) / n
    std = "" if n == 1 else (sum((v - mean) ** 2 for v in seeds) / (n - 1)) ** 0.5
    summary.append({"arm": arm, "round": r, "density_mean": 0.8 ** r, "test_accuracy_mean": mean,
                    "test_accuracy_std": std, "test_di_mean": mean, "test_di_std": std})
    results += [{"arm": arm, "round": r, "seed": i, "test_accuracy": v, "test_di": v,
                 "collapsed_layers": ""} for i, v in enumerate(seeds)]
  summary.append(dict(summary[0], arm="global_magnitude:weight_rewind@val"))
  _write_csv(os.path.join(path, "summary.csv"), summary)
  _write_csv(os.path.join(path, "results.csv"), results)


def test_prune_rounds_table_from_the_summary(tmp_path):
  arms = ["global_magnitude:lr_rewind", "global_magnitude:fine_tune"]
  values = {("global_magnitude:fine_tune", 0): [0.9, 0.92],
            ("global_magnitude:fine_tune", 2): [0.8, 0.9],
            ("global_magnitude:lr_rewind", 0): [0.9, 0.92],
            ("global_magnitude:lr_rewind", 2): [0.95]}
  _prune_workdir(str(tmp_path / "w"), arms, values)
  table = reproduce.prune_rounds("run", (0, 2, 7))({"run": str(tmp_path / "w")})
  assert table == ("| arm | round 0 (100.0%) | round 2 (64.0%) |\n|---|---|---|\n"
                   "| `global_magnitude:lr_rewind` | 91.00 ± 1.41 | 95.00 ± n/a |\n"
                   "| `global_magnitude:fine_tune` | 91.00 ± 1.41 | 85.00 ± 7.07 |\n")


def test_joint_cell_counts_undefined_seeds(tmp_path):
  values = {("global_magnitude:lr_rewind", 0): [1.25, 1.5],
            ("global_magnitude:lr_rewind", 1): [1.5, float("nan")]}
  _prune_workdir(str(tmp_path / "w"), ["global_magnitude:lr_rewind"], values)
  render = reproduce.joint_rounds((("run", "fair, ", True),), (1,), (("DI", "test_di", 1, 2),),
                                  first="model")
  assert render({"run": str(tmp_path / "w")}) == (
      "| model | round | density | DI |\n|---|---|---|---|\n"
      "| fair, dense (all arms) | 0 | 100.0% | 1.38 ± 0.18 |\n"
      "| fair, lr_rewind | 1 | 80.0% | undefined in 1 of 2 seeds |\n")


def test_joint_paired_against_the_control_by_seed(tmp_path):
  """Each arm minus the control at the same round and seed: differences 2, 4, 6 points have mean 4
  and a 95% interval 4 +- t(0.975, 2) * 2 / sqrt(3) (scipy's quantile, computed here)."""
  from scipy import stats
  arm, control = "global_magnitude:lr_rewind", "global_magnitude:lr_rewind"
  _prune_workdir(str(tmp_path / "p"), [arm], {(arm, 0): [0.9, 0.9, 0.9],
                                               (arm, 1): [0.92, 0.94, 0.96]})
  _prune_workdir(str(tmp_path / "c"), [control], {(control, 1): [0.9, 0.9, 0.9]})
  for d in ("p", "c"):  # joint rows also carry the density
    rows = list(csv.DictReader(open(tmp_path / d / "results.csv")))
    _write_csv(str(tmp_path / d / "results.csv"),
               [dict(r, density=0.8 ** int(r["round"]) if d == "p" else 1.0) for r in rows])
  render = reproduce.joint_paired_control("p", "c", (1, 5), (("acc", "test_accuracy", 100, 2),))
  half = stats.t.ppf(0.975, 2) * 2 / 3 ** 0.5
  assert render({"p": str(tmp_path / "p"), "c": str(tmp_path / "c")}) == (
      "| arm | round | density | seeds | acc |\n|---|---|---|---|---|\n"
      "| lr_rewind | 1 | 80.0% | 3 | +4.00 "
      + f"[{4 - half:+.2f}, {4 + half:+.2f}] |\n".replace("-", "\u2212"))  # the docs' minus sign


def test_prune_paired_and_matching_tables(tmp_path):
  wd = tmp_path / "w"
  os.makedirs(wd)
  _write_csv(str(wd / "paired.csv"), [
      {"comparison": "a - b", "round": 1, "num_seeds": 10, "density_a": 0.02,
       "test_accuracy_diff_mean": 0.0087, "ci95_low": -0.0044, "ci95_high": 0.0129},
      {"comparison": "b - c", "round": 1, "num_seeds": 10, "density_a": 0.02,
       "test_accuracy_diff_mean": 0.0757, "ci95_low": "", "ci95_high": ""}])
  render = reproduce.prune_paired((("one-shot 2%", "run", (1,)),), (("A - B", "a - b"),
                                                                    ("B - C", "b - c")))
  assert render({"run": str(wd)}) == (
      "| schedule | density | seeds | A - B | B - C |\n|---|---|---|---|---|\n"
      "| one-shot 2% | 2.0% | 10 | +0.87 [\u22120.44, +1.29] | +7.57 [n/a] |\n")
  _write_csv(str(wd / "matching.csv"), [
      {"arm": "a", "max_compression_mean_std": 22.7355, "round_mean_std": 14,
       "max_compression_median_minmax": 14.55, "round_median_minmax": 12}])
  assert reproduce.prune_matching((("digits", "run"),))({"run": str(wd)}) == (
      "| arm | digits: mean ± std rule | digits: median, min/max rule |\n|---|---|---|\n"
      "| `a` | 22.7x (round 14) | 14.6x (round 12) |\n")


def test_a_finished_run_is_not_started_and_its_figure_is_copied(tmp_path, monkeypatch):
  monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("a finished run was started"))
  name = "robust_digits_separation_linf"
  workdir = tmp_path / "wd" / reproduce.ARTIFACTS[name].run
  workdir.mkdir(parents=True)
  (workdir / "separation.json").write_text("{}")
  (workdir / "separation_linf.png").write_bytes(b"\x89PNG figure bytes")
  (tmp_path / "repo" / "docs" / "img").mkdir(parents=True)
  reproduce.run_all([name, "robust_separation_digits"], str(tmp_path / "wd"), "")
  target = reproduce.produce(name, str(tmp_path / "wd"), root=str(tmp_path / "repo"))
  assert target == str(tmp_path / "repo" / "docs" / "img" / f"{name}.png")
  assert open(target, "rb").read() == b"\x89PNG figure bytes"


@pytest.fixture(scope="module")
def separation_check(tmp_path_factory):
  """``--check`` of the separation table from a fresh workdir (the CI check)."""
  workdirs = tmp_path_factory.mktemp("reproduce_wd")
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.reproduce", CHECKED, "--check",
       f"--workdir_root={workdirs}"], cwd=ROOT, capture_output=True, text=True, timeout=600)
  return proc, workdirs


def test_check_passes_on_the_committed_separation_table(separation_check):
  proc, workdirs = separation_check
  assert proc.returncode == 0, proc.stdout + proc.stderr
  assert f"check {CHECKED}: ok" in proc.stdout
  assert os.path.exists(os.path.join(workdirs, "separation_digits", "separation.json"))


def test_check_fails_with_a_diff_on_a_tampered_number(separation_check, tmp_path):
  _, workdirs = separation_check
  docs = tmp_path / "docs"
  shutil.copytree(os.path.join(ROOT, "docs"), docs)
  text = (docs / "robustness.md").read_text()
  start, end = reproduce.find_block(text, CHECKED, "docs/robustness.md")
  block = text[start:end]
  assert "| | linf | 0.2 | 0.4375 | 0.4375 |" in block
  tampered = block.replace("| | linf | 0.2 | 0.4375 |", "| | linf | 0.2 | 0.4376 |")
  (docs / "robustness.md").write_text(text[:start] + tampered + text[end:])
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.reproduce", CHECKED, "--check",
       f"--workdir_root={workdirs}", f"--docs_root={tmp_path}"],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 1, proc.stdout + proc.stderr
  assert "MISMATCH" in proc.stdout
  assert "-| | linf | 0.2 | 0.4376 | 0.4375 |" in proc.stdout
  assert "+| | linf | 0.2 | 0.4375 | 0.4375 |" in proc.stdout


def test_a_run_shared_by_artifacts_is_started_once_with_the_docs_command(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append((cmd, kw["cwd"])))
  reproduce.run_all(["fairness_synthetic_subsample_sigma", "fairness_synthetic_subsample_sigma"],
                    str(tmp_path), "")
  assert calls == [([sys.executable, "-m", "experiments.fairness",
                     "--config=experiments/configs/fairness_synthetic.py",
                     "--config.generator.selection=subsample", "--config.sweeps=('sigma',)",
                     f"--workdir={tmp_path}/fair_syn_subsample"], ROOT)]
