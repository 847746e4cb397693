"""The Colab demos (experiments/colabs/*.ipynb) run end to end, so that they cannot rot.

Each notebook runs with nbclient in a kernel of a fresh venv (tests/wheel_venv.py) that sees this
interpreter's dependencies but not lipprune. Its install cell is executed as a Colab user runs it,
with one change: the pinned requirement ``lipprune @ git+https://github.com/...@v<version>`` is
replaced by the path of a wheel built from this checkout (no network; the tag names the same
release), so the cell's ``%pip install`` branch really installs the package, and the notebook then
runs on the installed package, not on the checkout. The notebooks' last cell prints
``LIPPRUNE_SUMMARY {json}``; the tests parse it and check the numbers against the papers'
qualitative findings and, for the separation of the digits, against an independent numpy
computation.

COMPAS: the notebook reads ``LIPPRUNE_DATA_DIR``; it is set to ../shared/data when that folder is
there, and the COMPAS part is skipped (by the notebook, with a printed message) when it is not and
there is no network.
"""
import json
import sys
import time

import numpy as np
import pytest

import lipprune
from tests import wheel_venv
from tests.conftest import REPO, shared_data_dir

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from jupyter_client.manager import KernelManager  # noqa: E402

COLABS = REPO / "experiments" / "colabs"
NOTEBOOKS = ("01_pruning_rewinding", "02_robustness_lipschitz", "03_fairness_label_bias")
CELL_TIMEOUT_S = 600
SUMMARY_PREFIX = "LIPPRUNE_SUMMARY "
GITHUB = "github.com/lipprune/lipprune"
# The install cell's requirement: the release tag of lipprune.__version__.
PINNED = f'"lipprune @ git+https://{GITHUB}@v{lipprune.__version__}"'

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
  return wheel_venv.build_wheel(tmp_path_factory.mktemp("wheel"))


def _kernel_manager(tmp_path, python) -> KernelManager:
  """A kernel manager whose only kernelspec runs ``python -m ipykernel_launcher``."""
  spec_dir = tmp_path / "kernels" / "lipprune-test"
  spec_dir.mkdir(parents=True)
  spec = {"argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
          "display_name": "lipprune test kernel", "language": "python"}
  (spec_dir / "kernel.json").write_text(json.dumps(spec))
  ksm = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
  return KernelManager(kernel_name="lipprune-test", kernel_spec_manager=ksm)


def _stdout(cell) -> str:
  return "".join(o.get("text", "") for o in cell.get("outputs", [])
                 if o.get("output_type") == "stream" and o.get("name") == "stdout")


def _install_cell_with(nb, requirement: str):
  """``nb`` with the install cell's pinned requirement replaced by ``requirement``."""
  cell = nb.cells[1]
  assert cell.source.count(PINNED) == 1, cell.source
  cell.source = cell.source.replace(PINNED, requirement)
  return nb


def _run(nb, tmp_path, python) -> float:
  """Executes ``nb`` in place in a kernel of ``python``, in a fresh folder; returns seconds."""
  workdir = tmp_path / "run"
  workdir.mkdir()
  client = nbclient.NotebookClient(
      nb, km=_kernel_manager(tmp_path, python), kernel_name="lipprune-test",
      timeout=CELL_TIMEOUT_S, allow_errors=False, resources={"metadata": {"path": str(workdir)}})
  start = time.time()
  client.execute()  # raises CellExecutionError on the first failing cell
  return time.time() - start


def execute(name: str, tmp_path, monkeypatch, wheel) -> tuple[dict, object, float]:
  """Runs notebook ``name`` in a fresh venv whose install cell installs ``wheel``; returns (the
  parsed summary, the executed notebook, seconds)."""
  data = shared_data_dir()
  if data is not None:
    monkeypatch.setenv("LIPPRUNE_DATA_DIR", str(data))
  else:
    monkeypatch.delenv("LIPPRUNE_DATA_DIR", raising=False)
  # The kernel must not pick up a sitewide matplotlib backend that cannot render inline.
  monkeypatch.delenv("MPLBACKEND", raising=False)
  python = wheel_venv.make_venv(tmp_path / "venv")
  nb = _install_cell_with(nbformat.read(COLABS / f"{name}.ipynb", as_version=4), f'"{wheel}"')
  seconds = _run(nb, tmp_path, python)
  print(f"{name}: executed in {seconds:.1f} s")
  # The cell installed the wheel into the venv, and the notebook ran on that installation.
  assert _stdout(nb.cells[1]).endswith(f"lipprune {lipprune.__version__}\n"), _stdout(nb.cells[1])
  where = wheel_venv.run([str(python), "-c", "import lipprune; print(lipprune.__file__)"],
                         cwd=tmp_path)
  assert where.stdout.startswith(str(tmp_path / "venv")), where.stdout
  errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if o.get("output_type") == "error"]
  assert not errors, errors
  lines = [l for l in _stdout(nb.cells[-1]).splitlines() if l.startswith(SUMMARY_PREFIX)]
  assert len(lines) == 1, _stdout(nb.cells[-1])
  return json.loads(lines[0][len(SUMMARY_PREFIX):]), nb, seconds


def _images(nb) -> int:
  return sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
             for o in c.get("outputs", []))


def test_notebooks_are_committed_without_outputs():
  for name in NOTEBOOKS:
    nb = nbformat.read(COLABS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    assert nb.cells[0].cell_type == "markdown"
    # The badge opens this notebook at the release tag that its install cell installs.
    badge = (f"https://colab.research.google.com/{GITHUB.replace('.com', '')}/blob/"
             f"v{lipprune.__version__}/experiments/colabs/{name}.ipynb")
    assert badge in nb.cells[0].source
    assert f"%pip install -q {PINNED}" in nb.cells[1].source
    for c in nb.cells:
      if c.cell_type == "code":
        assert not c.outputs and c.execution_count is None, f"{name}: clear the outputs"


def test_install_cell_installs_nothing_where_lipprune_is_importable(tmp_path):
  """In this interpreter (lipprune importable) the cell's install branch is not taken: a
  requirement that cannot be installed leaves no trace, and the cell prints this version."""
  nb = _install_cell_with(nbformat.read(COLABS / f"{NOTEBOOKS[0]}.ipynb", as_version=4),
                          f'"{tmp_path / "no-such.whl"}"')
  nb.cells = nb.cells[1:2]
  _run(nb, tmp_path, sys.executable)
  outputs = nb.cells[0].outputs
  assert [o.get("text") for o in outputs] == [f"lipprune {lipprune.__version__}\n"], outputs


def test_pruning_notebook(tmp_path, monkeypatch, wheel):
  s, nb, _ = execute("01_pruning_rewinding", tmp_path, monkeypatch, wheel)
  assert s["methods"] == ["fine_tune", "lr_rewind", "weight_rewind@6"]
  rows = s["rows"]
  for method in s["methods"]:
    mine = sorted((r for r in rows if r["method"] == method), key=lambda r: r["round"])
    assert [r["round"] for r in mine] == list(range(6))
    # Each round removes half of the survivors: sparsity 1 - 0.5**r (up to rounding per tensor).
    np.testing.assert_allclose([r["sparsity"] for r in mine], [1 - 0.5 ** r for r in range(6)],
                               atol=2e-3)
    assert all(0.0 <= r["test_accuracy"] <= 1.0 for r in mine)
    assert mine[0]["test_accuracy"] > 0.85  # the dense network learned the digits
  final = s["final_test_accuracy"]
  assert s["max_sparsity"] > 0.96
  # Renda et al.'s finding at high sparsity: rewinding beats fine-tuning at the final, small rate.
  assert final["lr_rewind"] > final["fine_tune"] + 0.05
  assert final["weight_rewind@6"] > final["fine_tune"]
  assert _images(nb) >= 2  # the LR schedules and accuracy vs sparsity


def _min_other_class_linf(q, qy, r, ry, chunk=256) -> float:
  """Brute-force min over pairs with different labels of max |q_i - r_j| (plain numpy)."""
  best = np.inf
  for s in range(0, len(q), chunk):
    d = np.abs(q[s:s + chunk, None, :] - r[None, :, :]).max(-1)
    d[qy[s:s + chunk, None] == ry[None, :]] = np.inf
    best = min(best, float(d.min()))
  return best


def test_robustness_notebook(tmp_path, monkeypatch, wheel):
  s, nb, _ = execute("02_robustness_lipschitz", tmp_path, monkeypatch, wheel)
  methods = s["methods"]
  assert set(methods) == {"natural", "adversarial", "trades:beta=1", "trades:beta=6"}
  for m, r in methods.items():
    assert 0.0 <= r["test_adv_accuracy"] <= r["test_accuracy"] <= 1.0, m
    assert r["test_lipschitz"] > 0.0, m
  assert methods["natural"]["test_accuracy"] > 0.9
  # Yang et al.: robust training lowers the local Lipschitz constant and raises adversarial accuracy.
  assert methods["trades:beta=6"]["test_lipschitz"] < methods["natural"]["test_lipschitz"]
  assert methods["adversarial"]["test_adv_accuracy"] > methods["natural"]["test_adv_accuracy"]
  assert methods["trades:beta=6"]["test_adv_accuracy"] > methods["natural"]["test_adv_accuracy"]

  from lipprune import data as data_lib  # pylint: disable=g-import-not-at-top
  tr, te = data_lib.load("digits", "train"), data_lib.load("digits", "test")
  flat = lambda ds: np.asarray(ds.x, np.float64).reshape(len(ds), -1)
  expect = {"train-train": _min_other_class_linf(flat(tr), tr.y, flat(tr), tr.y),
            "test-train": _min_other_class_linf(flat(te), te.y, flat(tr), tr.y)}
  for name, want in expect.items():
    assert s["separation"][name]["min"] == pytest.approx(want, abs=1e-6)
    # Digits are 7/16-separated in l_inf: no point lies within 2 eps = 0.2 of another class.
    assert want > 2 * s["eps"]
    assert s["separation"][name]["frac_below_2eps"] == 0.0
  assert _images(nb) >= 2


def test_fairness_notebook(tmp_path, monkeypatch, wheel):
  s, nb, _ = execute("03_fairness_label_bias", tmp_path, monkeypatch, wheel)
  syn = s["synthetic"]
  assert set(syn) == {"baseline", "oracle", "reweighing", "inprocessing", "semisupervised"}
  betas = ["0", "0.1", "0.2", "0.3", "0.4", "0.5"]
  for m, by_beta in syn.items():
    assert list(by_beta) == betas, m
    for b, r in by_beta.items():
      assert 0.0 <= r["f1_y"] <= 1.0 and 0.0 <= r["f1_z"] <= 1.0, (m, b)
    # Without bias the observed labels are the clean ones: both F1 scores are the same number.
    assert by_beta["0"]["f1_y"] == pytest.approx(by_beta["0"]["f1_z"], abs=1e-6), m
  base = syn["baseline"]
  # Label bias: the baseline's F1 on the observed labels falls as beta grows, and its F1 on the clean
  # labels ends below that of the oracle, trained on the clean labels.
  assert base["0.5"]["f1_y"] < base["0"]["f1_y"] - 0.05
  assert base["0.5"]["f1_z"] < syn["oracle"]["0.5"]["f1_z"]
  # Wick et al.: the fair models are more accurate on the clean labels than the baseline under bias.
  assert syn["inprocessing"]["0.5"]["f1_z"] > base["0.5"]["f1_z"]
  assert _images(nb) >= 1

  compas = s["compas"]
  cells = "".join(_stdout(c) for c in nb.cells if c.cell_type == "code")
  if shared_data_dir() is None and compas is None:
    assert "Skipping the COMPAS part" in cells
    return
  assert compas is not None, cells
  assert set(compas) == {"compas_score", "baseline", "baseline_blind", "reweighing", "inprocessing"}
  for m, r in compas.items():
    for k in ("accuracy", "fpr", "fnr"):
      for g in ("african_american", "caucasian"):
        assert 0.0 <= r[f"{k}_{g}"] <= 1.0, (m, k, g)
    assert 0.55 < r["accuracy_african_american"] < 0.8, m  # recidivism is predicted modestly
  # ProPublica's finding, in the tool and in the unconstrained model: non-reoffending African-American
  # defendants are flagged more often, reoffending Caucasian defendants are missed more often.
  for m in ("compas_score", "baseline"):
    assert compas[m]["fpr_african_american"] > compas[m]["fpr_caucasian"], m
    assert compas[m]["fnr_caucasian"] > compas[m]["fnr_african_american"], m
  assert _images(nb) >= 2
