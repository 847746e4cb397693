"""One colour per method in every figure, human axis labels with units, readable log ticks, and "n/a"
for a spread over one seed: the shared palette and labels (lipprune.plotting) and the figures and
tables of the jobs that use them."""
import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.figure  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib import colors as mcolors  # noqa: E402

from experiments import joint, robust, study  # noqa: E402
from lipprune import plotting, sparsity  # noqa: E402
from lipprune import robust as robust_lib  # noqa: E402
from lipprune.fairness import training as fair_training  # noqa: E402
from tests.conftest import REPO  # noqa: E402

# Every method a job can draw, per family: the libraries' own lists, plus the report's extra rows.
PLOTTED = {"pruning": sparsity.METHODS, "robust": robust_lib.METHODS,
           "fairness": fair_training.METHODS + ("compas_score", "baseline_blind")}


def test_every_plotted_method_has_a_colour_distinct_within_its_family():
  for family, names in PLOTTED.items():
    palette = plotting.FAMILIES[family]
    assert set(names) <= set(palette), (family, set(names) - set(palette))
    rgb = [mcolors.to_hex(palette[n]) for n in names]
    assert len(set(rgb)) == len(rgb), f"{family}: two methods share a colour"
    assert plotting.UNKNOWN_COLOR not in rgb
  # No name sits in two families (it would need two colours).
  sizes = sum(len(f) for f in plotting.FAMILIES.values())
  assert len(plotting.METHOD_COLORS) == sizes


@pytest.mark.parametrize("labels,method", [
    (["lr_rewind", "global_magnitude:lr_rewind", "global_magnitude:lr_rewind@5",
      "random:lr_rewind@22.5", "layerwise_magnitude:lr_rewind@val", "lr_rewind@6"], "lr_rewind"),
    (["weight_rewind@6", "global_magnitude:weight_rewind@22.5", "filter_l1:weight_rewind"],
     "weight_rewind"),
    (["trades", "trades:beta=6", "trades:beta=1,lr=0.01"], "trades"),
    (["llr_yang", "llr_yang:lam=4"], "llr_yang"),
    (["semisupervised"], "semisupervised"),
])
def test_the_same_method_gets_the_same_colour_in_every_label_form(labels, method):
  assert {plotting.method_name(x) for x in labels} == {method}
  assert {plotting.method_color(x) for x in labels} == {plotting.METHOD_COLORS[method]}


def test_specs_of_one_method_differ_by_marker_only():
  labels = ["natural", "trades:beta=1", "trades:beta=6", "adversarial", "trades:beta=3"]
  markers = plotting.method_markers(labels)
  assert [markers[x] for x in ("trades:beta=1", "trades:beta=6", "trades:beta=3")] == list("osD")
  assert markers["natural"] == markers["adversarial"] == "o"


def test_no_job_keeps_a_palette_of_its_own():
  """Colours come from lipprune.plotting only: no hex colour, no 'C<i>' cycle colour and no colour
  table in the job modules."""
  for path in sorted((Path(REPO) / "experiments").glob("*.py")):
    text = path.read_text()
    assert not re.search(r"#[0-9a-fA-F]{6}\b", text), path.name
    assert not re.search(r"""["']C\d["']|f["']C\{""", text), path.name
    assert "METHOD_COLORS =" not in text and "_COLORS = {" not in text, path.name


# ---------------------------------------------------------------- axis labels

def _plotted_metrics():
  """Every metric key a job draws on an axis: the pruning studies' accuracy, joint's per-round
  robust and fairness metrics, the robustness scatter, the fairness sweeps' three panels."""
  joint_keys = ["test_adv_accuracy", "test_lipschitz"] + [f"test_{k}" for k in joint.FAIR_METRICS]
  return ["test_accuracy", "compression", "test_adv_accuracy", "test_lipschitz", "f1_y", "f1_z",
          "di"] + joint_keys


@pytest.mark.parametrize("key", _plotted_metrics())
def test_every_plotted_metric_has_a_human_label_with_a_unit(key):
  label = plotting.metric_label(key)
  assert "_" not in label and label != key.replace("_", " "), label
  assert re.search(r"\((%|x|0-1|1 = parity|empirical)\)$", label), label
  assert plotting.metric_scale(key) == (100.0 if label.endswith("(%)") else 1.0)


def test_labels_read_as_units_say():
  assert plotting.metric_label("test_lipschitz") == "local Lipschitz constant (empirical)"
  assert plotting.metric_label("test_accuracy") == "test accuracy (%)"
  assert plotting.metric_label("compression") == "compression ratio (x)"
  assert plotting.metric_label("test_di") == "test disparate impact ratio (1 = parity)"
  assert plotting.metric_label("my_hook_metric") == "my hook metric"  # a user's own key


# ---------------------------------------------------------------- rendered figures

@pytest.fixture
def saved_figures(monkeypatch):
  """The figures the jobs save, kept open for inspection (the files are still written)."""
  figures = []
  original = matplotlib.figure.Figure.savefig

  def savefig(self, *args, **kwargs):
    figures.append(self)
    return original(self, *args, **kwargs)

  monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
  yield figures
  plt.close("all")


def _texts(labels):
  return [t.get_text() for t in labels if t.get_text()]


def _xticks(ax):
  """The labels of the major x ticks inside the axis' view."""
  lo, hi = sorted(ax.get_xlim())
  return [t.get_text() for v, t in zip(ax.get_xticks(), ax.get_xticklabels())
          if lo <= v <= hi and t.get_text()]


def _pruning_rows(seeds, metric="test_lipschitz"):
  """Result rows of two arms over 6 rounds of 50% pruning (compression 1x .. 32x)."""
  rng = np.random.default_rng(0)
  rows = []
  for arm in ("global_magnitude:lr_rewind", "global_magnitude:fine_tune"):
    for seed in seeds:
      for r in range(6):
        rows.append({"arm": arm, "seed": seed, "round": r, "density": 0.5 ** r,
                     "compression": 2.0 ** r, "test_accuracy": 0.9 - 0.01 * r + 0.01 * rng.random(),
                     metric: 3.0 + r + rng.random()})
  return rows


def test_pruning_figure_has_human_labels_power_of_two_ticks_and_method_colours(tmp_path,
                                                                               saved_figures):
  summary = study.aggregate(_pruning_rows([0, 1, 2]))
  study.plot(summary, str(tmp_path / "lip.png"), "t", metric="test_lipschitz")
  assert (tmp_path / "lip.png").exists()
  (fig,) = saved_figures
  ax = fig.axes[0]
  fig.canvas.draw()
  assert ax.get_xlabel().startswith("compression ratio (x)")
  assert ax.get_ylabel().split("\n")[0] == "local Lipschitz constant (empirical)"
  ticks = _xticks(ax)
  assert ticks == ["1x", "2x", "4x", "8x", "16x", "32x"], ticks
  assert not _texts(ax.xaxis.get_minorticklabels())
  lines = {l.get_label(): l for l in ax.get_lines()}
  for arm in ("global_magnitude:lr_rewind", "global_magnitude:fine_tune"):
    assert mcolors.to_hex(lines[arm].get_color()) == plotting.method_color(arm)
  # Accuracy in percent: the plotted values are 100 x the medians.
  study.plot(summary, str(tmp_path / "acc.png"), "t")
  ax = saved_figures[-1].axes[0]
  line = next(l for l in ax.get_lines() if l.get_label() == "global_magnitude:lr_rewind")
  medians = [s["test_accuracy_median"] for s in summary if s["arm"] == line.get_label()]
  np.testing.assert_allclose(line.get_ydata(), 100 * np.asarray(medians))
  assert ax.get_ylabel().startswith("test accuracy (%)")


def test_robust_figure_plain_log_ticks_and_one_colour_per_method(tmp_path, saved_figures):
  specs = ["natural", "trades:beta=1", "trades:beta=6"]
  rows = [{"method": s, "test_lipschitz": lip, "test_adv_accuracy": acc}
          for s, lip, acc in (("natural", 40.0, 0.1), ("trades:beta=1", 4.0, 0.5),
                              ("trades:beta=6", 0.6, 0.7))]
  table = [{"method": r["method"], "test_lipschitz": r["test_lipschitz"], "test_lipschitz_std": None,
            "test_adv_accuracy": r["test_adv_accuracy"], "test_adv_accuracy_std": None}
           for r in rows]
  robust.plot(table, rows, str(tmp_path / "r.png"), "t")
  (fig,) = saved_figures
  ax = fig.axes[0]
  fig.canvas.draw()
  assert ax.get_xlabel() == "test local Lipschitz constant (empirical), log scale"
  assert ax.get_ylabel() == "adversarial test accuracy (%)"
  ticks = _xticks(ax)
  assert ticks and all(re.fullmatch(r"\d+(\.\d+)?", t) for t in ticks), ticks
  assert {"1", "10"} <= set(ticks) and ({"2", "5"} & set(ticks)), ticks
  legend = {t.get_text(): h for t, h in zip(ax.get_legend().get_texts(),
                                            ax.get_legend().legend_handles)}
  colours = {s: mcolors.to_hex(legend[s].get_color()) for s in specs}
  assert colours == {s: plotting.method_color(s) for s in specs}
  assert colours["trades:beta=1"] == colours["trades:beta=6"] != colours["natural"]


def test_fairness_sweep_figure_labels_and_colours(tmp_path, saved_figures):
  from experiments import fairness
  from experiments.configs import fairness_synthetic
  config = fairness_synthetic.get_config()
  items = fairness.sweep_settings(config)["beta"]
  rng = np.random.default_rng(1)
  results = {fairness.setting_name(*s): {m: {"test": {k: rng.random(3) for k in ("f1_y", "f1_z", "di")}}
                                         for m in config.methods} for _, s in items}
  fairness._plot(str(tmp_path / "p" / "beta.png"), config, "beta", items, results)  # pylint: disable=protected-access
  (fig,) = saved_figures
  assert [ax.get_ylabel() for ax in fig.axes] == [
      "weighted F1 vs observed labels y (0-1)", "weighted F1 vs clean labels z (0-1)",
      "disparate impact ratio (1 = parity)"]
  for ax in fig.axes:
    drawn = {c.get_label(): mcolors.to_hex(c.lines[0].get_color()) for c in ax.containers}
    assert drawn == {m: plotting.method_color(m) for m in config.methods}
  assert "mean ± s.e. over 10 data sets" in fig._suptitle.get_text()  # pylint: disable=protected-access


def test_log_axis_over_many_decades_keeps_powers_of_ten():
  fig, ax = plt.subplots()
  ax.plot([1e-4, 10.0], [1, 2])
  plotting.log_axis(ax, "x")
  fig.canvas.draw()
  ticks = _xticks(ax)
  assert ticks and all(re.fullmatch(r"\d+(\.\d+)?|1e-0\d", t) for t in ticks), ticks
  assert all(math.log10(float(t)).is_integer() for t in ticks), ticks
  plt.close(fig)


# ---------------------------------------------------------------- spreads over one seed

def test_mean_std_text_says_na_for_one_seed_never_pm_zero():
  assert plotting.mean_std(0.9712, None, 100, 1) == "97.1 ± n/a"
  assert plotting.mean_std(0.9712, float("nan"), 100, 1) == "97.1 ± n/a"
  assert plotting.mean_std(0.5, 0.0123, 100, 2) == "50.00 ± 1.23"
  assert plotting.mean_std(0.5, 0.0, 1, 2) == "0.50 ± 0.00"  # two seeds that agree: a real 0


def test_tables_over_one_seed_say_na(tmp_path):
  import ml_collections
  # Robustness table.md: one seed per method.
  runs = [{"method": "natural", "train_accuracy": 0.99, "test_accuracy": 0.95,
           "test_adv_accuracy": 0.2, "test_lipschitz": 12.0, "gap": 0.04, "adv_gap": 0.01,
           "train_adv_accuracy": 0.21, "train_lipschitz": 11.0}]
  table = robust.summarize(runs, ["natural"])
  config = ml_collections.ConfigDict({"dataset": "digits", "model": "mlp", "norm": "linf",
                                      "eps": 0.1})
  md = robust.markdown_table(table, config)
  row = md.strip().splitlines()[-1]
  assert row.count("± n/a") == 8 and "± 0" not in md, md
  # Pruning summary: std None (an empty CSV cell), paired differences without an interval.
  rows = _pruning_rows([0], metric="test_lipschitz")
  summary = study.aggregate(rows)
  assert all(s["test_accuracy_std"] is None and s["num_seeds"] == 1 for s in summary)
  paired = study.paired_differences(rows, ["global_magnitude:lr_rewind - global_magnitude:fine_tune"])
  assert paired and all(p["ci95_low"] is None and p["test_accuracy_diff_std"] is None
                        for p in paired)
  study.write(str(tmp_path), rows, title="t")
  header, *lines = (tmp_path / "summary.csv").read_text().splitlines()
  std_col = header.split(",").index("test_accuracy_std")
  assert lines and all(line.split(",")[std_col] == "" for line in lines)
