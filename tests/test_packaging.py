"""The distribution: the wheel holds the one top-level package ``lipprune`` with the metadata of
pyproject.toml, and its console scripts run the jobs from outside the checkout; CITATION.cff and
CHANGELOG.md follow CFF 1.2.0 / Keep a Changelog and name ``lipprune.__version__``.

The wheel is built and installed into a fresh venv offline (tests/wheel_venv.py): about 10 s, plus
one tiny training run of the installed ``lipprune-train``.
"""
import datetime
import email.parser
import json
import os
import pathlib
import re
import subprocess
import zipfile

import pytest
import yaml

import lipprune
from lipprune import cli
from tests import wheel_venv
from tests.conftest import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> pathlib.Path:
  return wheel_venv.build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel) -> pathlib.Path:
  """The bin/ folder of a fresh venv with the wheel installed."""
  python = wheel_venv.make_venv(tmp_path_factory.mktemp("venv") / "v")
  wheel_venv.pip_install(python, str(wheel))
  return python.parent


def _metadata(wheel) -> tuple[list[str], email.message.Message, str]:
  with zipfile.ZipFile(wheel) as z:
    names = z.namelist()
    info = f"lipprune-{lipprune.__version__}.dist-info"
    meta = email.parser.Parser().parsestr(z.read(f"{info}/METADATA").decode())
    entry_points = z.read(f"{info}/entry_points.txt").decode()
  return names, meta, entry_points


def _source_packages() -> set[str]:
  """Every package of the checkout, named as installed (experiments/ as lipprune.experiments)."""
  out = set()
  for root, installed in (("lipprune", "lipprune"), ("experiments", "lipprune.experiments")):
    for init in (REPO / root).rglob("__init__.py"):
      rel = init.parent.relative_to(REPO / root).parts
      out.add(".".join((installed,) + rel))
  return out


def test_wheel_holds_lipprune_only_with_every_package_and_config(wheel):
  names, _, _ = _metadata(wheel)
  top = {n.split("/")[0] for n in names}
  assert top == {"lipprune", f"lipprune-{lipprune.__version__}.dist-info"}
  packages = {os.path.dirname(n).replace("/", ".") for n in names if n.endswith("/__init__.py")}
  assert packages == _source_packages()
  configs = {p.name for p in (REPO / "experiments" / "configs").glob("*.py")}
  assert {pathlib.PurePosixPath(n).name for n in names
          if n.startswith("lipprune/experiments/configs/")} == configs


def test_wheel_metadata_version_license_and_console_scripts(wheel):
  names, meta, entry_points = _metadata(wheel)
  assert meta["Name"] == "lipprune"
  assert meta["Version"] == lipprune.__version__
  assert meta["License-Expression"] == "Apache-2.0"
  assert f"lipprune-{lipprune.__version__}.dist-info/licenses/LICENSE" in names
  assert meta["Requires-Python"] == ">=3.11"
  scripts = dict(re.findall(r"^(lipprune-\w+) = (\S+)$", entry_points, flags=re.M))
  assert scripts == {f"lipprune-{job}": f"lipprune.cli:{job}" for job in cli.JOBS}
  for job in cli.JOBS:  # each runs its job, a module of experiments/ with a main
    assert getattr(cli, job).func is cli.run_job and getattr(cli, job).args == (job,)
    assert "\ndef main(argv):" in (REPO / "experiments" / f"{job}.py").read_text(), job


def test_experiments_import_no_absolute_experiments_package():
  """experiments/ runs as ``experiments`` in a checkout and as ``lipprune.experiments`` when
  installed: jobs import their siblings relatively (``from . import common``) and configs load theirs
  with ``lipprune.cli.sibling_config``; an absolute ``experiments`` import fails when installed."""
  absolute = re.compile(r"^\s*(from experiments[ .]|import experiments\b)", flags=re.M)
  offenders = [str(p.relative_to(REPO)) for p in (REPO / "experiments").rglob("*.py")
               if absolute.search(p.read_text())]
  assert not offenders, offenders


def test_setup_py_is_a_shim():
  """pyproject.toml is the one source: setup.py passes setuptools.setup() nothing."""
  code = [l for l in (REPO / "setup.py").read_text().splitlines()
          if l.strip() and not l.startswith(("#", '"""', "import"))]
  assert code == ["setuptools.setup()"]


def test_installed_console_script_trains_from_outside_the_checkout(venv, tmp_path):
  cwd = tmp_path / "elsewhere"
  cwd.mkdir()
  where = wheel_venv.run([str(venv / "python"), "-c", "import lipprune; print(lipprune.__file__)"],
                         cwd=cwd)
  assert pathlib.Path(where.stdout.strip()).is_relative_to(venv.parent), where.stdout
  # An installed config by name, with overrides: one epoch of a 16-unit MLP on the 1,437 digits.
  wheel_venv.run([str(venv / "lipprune-train"), "--config=mnist5k_mlp", "--config.dataset=digits",
                  "--config.num_epochs=1", "--config.model_kwargs.hidden=(16,)",
                  "--workdir=run"], cwd=cwd)
  results = json.loads((cwd / "run" / "results.json").read_text())
  assert results["dataset"] == "digits"
  assert results["steps"] == 1437 // 64  # one epoch of full batches of 64
  assert results["num_params"] == 64 * 16 + 16 + 16 * 10 + 10
  assert 0.0 <= results["test_accuracy"] <= 1.0


def test_installed_configs_load_their_siblings_and_bad_names_fail_naming_them(venv, tmp_path):
  # joint_robust_digits.py builds on its sibling prune_digits_mlp.py: an unknown field is reported
  # with the fields the loaded config has, the sibling's included, before anything is written.
  proc = subprocess.run([str(venv / "lipprune-joint"), "--config=joint_robust_digits.py:natural",
                         "--config.no_such_field=1", "--workdir=w"],
                        cwd=tmp_path, capture_output=True, text=True)
  assert proc.returncode == 1, proc.stderr
  assert "no_such_field" in proc.stderr and "arms" in proc.stderr
  assert not (tmp_path / "w").exists()
  proc = subprocess.run([str(venv / "lipprune-train"), "--config=mnist5k_mpl", "--workdir=w"],
                        cwd=tmp_path, capture_output=True, text=True)
  assert proc.returncode == 2
  assert "'mnist5k_mpl' is neither a config file nor an installed config" in proc.stderr
  assert "mnist5k_mlp" in proc.stderr
  assert not (tmp_path / "w").exists()


def _pip_version() -> tuple[int, ...]:
  from pip import __version__  # pylint: disable=g-import-not-at-top
  return tuple(int(p) for p in __version__.split(".")[:2])


@pytest.mark.skipif(_pip_version() < (25, 1), reason="pip show prints License-Expression from pip "
                    "25.1 (requirements.txt pins a newer one)")
def test_pip_show_lists_the_license(venv):
  proc = wheel_venv.run([str(venv / "python"), "-m", "pip", "show", "lipprune"])
  assert "License-Expression: Apache-2.0" in proc.stdout
  assert f"Version: {lipprune.__version__}" in proc.stdout


def test_resolve_config(tmp_path):
  configs = tmp_path / "configs"
  configs.mkdir()
  (configs / "a.py").write_text("")
  (configs / "_helper.py").write_text("")
  own = tmp_path / "mine.py"
  own.write_text("")
  a = str(configs / "a.py")
  assert cli.resolve_config("a", str(configs)) == a
  assert cli.resolve_config("a.py:arg:x", str(configs)) == a + ":arg:x"
  assert cli.resolve_config(f"{own}:z", str(configs)) == f"{own}:z"  # an existing file wins
  for bad in ("b", "_helper", os.path.join("sub", "a.py")):
    with pytest.raises(ValueError, match=r"installed configs: a$"):
      cli.resolve_config(bad, str(configs))
  argv = ["prog", "--config", "a:1", "--config.x=2", "--config=a", "--workdir=w"]
  assert cli.resolve_config_argv(argv, str(configs)) == [
      "prog", "--config", a + ":1", "--config.x=2", f"--config={a}", "--workdir=w"]


def test_sibling_config_loads_the_file_next_to_the_caller(tmp_path):
  (tmp_path / "base.py").write_text("VALUE = 3\n")
  caller = tmp_path / "child.py"
  caller.write_text("")
  assert cli.sibling_config(str(caller), "base").VALUE == 3
  with pytest.raises(FileNotFoundError, match=r"'nope'.*configs there: base, child"):
    cli.sibling_config(str(caller), "nope")


# CFF 1.2.0 (https://github.com/citation-file-format/citation-file-format, schema.json): the keys
# allowed at the root, in a reference, and in a person or an entity (authors, conference).
CFF_ROOT_REQUIRED = {"authors", "cff-version", "message", "title"}
CFF_ROOT_KEYS = CFF_ROOT_REQUIRED | {
    "abstract", "commit", "contact", "date-released", "doi", "identifiers", "keywords", "license",
    "license-url", "preferred-citation", "references", "repository", "repository-artifact",
    "repository-code", "type", "url", "version"}
CFF_REFERENCE_REQUIRED = {"authors", "title", "type"}
CFF_REFERENCE_KEYS = CFF_REFERENCE_REQUIRED | {
    "abbreviation", "abstract", "collection-doi", "collection-title", "collection-type", "commit",
    "conference", "contact", "copyright", "data-type", "database", "database-provider",
    "date-accessed", "date-downloaded", "date-published", "date-released", "department", "doi",
    "edition", "editors", "editors-series", "end", "entry", "filename", "format", "identifiers",
    "institution", "isbn", "issn", "issue", "issue-date", "issue-title", "journal", "keywords",
    "languages", "license", "license-url", "loc-end", "loc-start", "location", "medium", "month",
    "nihmsid", "notes", "number", "number-volumes", "pages", "patent-states", "pmcid", "publisher",
    "recipients", "repository", "repository-artifact", "repository-code", "scope", "section",
    "senders", "start", "status", "term", "thesis-type", "translators", "url", "version", "volume",
    "volume-title", "year", "year-original"}
CFF_PERSON_KEYS = {"address", "affiliation", "alias", "city", "country", "email", "family-names",
                   "fax", "given-names", "name-particle", "name-suffix", "orcid", "post-code",
                   "region", "tel", "website"}
CFF_ENTITY_KEYS = {"address", "alias", "city", "country", "date-end", "date-start", "email", "fax",
                   "location", "name", "orcid", "post-code", "region", "tel", "website"}
CFF_IDENTIFIER_TYPES = {"doi", "url", "swh", "other"}


def _check_authors(authors, where):
  assert isinstance(authors, list) and authors, where
  for a in authors:
    if "name" in a:
      assert set(a) <= CFF_ENTITY_KEYS, (where, a)
    else:
      assert set(a) <= CFF_PERSON_KEYS, (where, a)
      assert a.get("family-names") and a.get("given-names"), (where, a)


def test_citation_cff_is_valid_cff_1_2_0_naming_the_project_and_the_three_papers():
  cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
  assert cff["cff-version"] == "1.2.0"
  assert CFF_ROOT_REQUIRED <= set(cff) <= CFF_ROOT_KEYS, set(cff) ^ CFF_ROOT_KEYS
  assert cff["type"] == "software"
  assert cff["version"] == lipprune.__version__
  assert cff["license"] == "Apache-2.0"
  datetime.date.fromisoformat(cff["date-released"])
  _check_authors(cff["authors"], "root")
  papers = {}
  for ref in cff["references"]:
    assert CFF_REFERENCE_REQUIRED <= set(ref) <= CFF_REFERENCE_KEYS, ref["title"]
    _check_authors(ref["authors"], ref["title"])
    assert set(ref["conference"]) <= CFF_ENTITY_KEYS and ref["conference"]["name"]
    assert isinstance(ref["year"], int) and ref["url"].startswith("https://")
    for ident in ref.get("identifiers", []):
      assert ident["type"] in CFF_IDENTIFIER_TYPES and ident["value"], ident
    papers[ref["title"]] = (ref["type"], ref["year"], [a["family-names"] for a in ref["authors"]])
  assert papers == {
      "Comparing Rewinding and Fine-tuning in Neural Network Pruning":
          ("conference-paper", 2020, ["Renda", "Frankle", "Carbin"]),
      "A Closer Look at Accuracy vs. Robustness":
          ("conference-paper", 2020, ["Yang", "Rashtchian", "Zhang", "Salakhutdinov", "Chaudhuri"]),
      "Unlocking Fairness: a Trade-off Revisited":
          ("conference-paper", 2019, ["Wick", "Panda", "Tristan"]),
  }


def test_changelog_keeps_a_changelog_and_releases_the_current_version():
  text = (REPO / "CHANGELOG.md").read_text()
  releases = re.findall(r"^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$", text, flags=re.M)
  assert releases[0] == ("Unreleased", "")
  version, date = releases[1]
  assert version == lipprune.__version__
  assert date == yaml.safe_load((REPO / "CITATION.cff").read_text())["date-released"]
  sections = set(re.findall(r"^### (\w+)$", text, flags=re.M))
  assert sections and sections <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}
  assert f"[{version}]: " in text  # the link of the release

