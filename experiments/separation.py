r"""Dataset separation (Yang et al., NeurIPS 2020, Table 1 and Figure 1).

  python -m experiments.separation --config=experiments/configs/separation_digits.py --workdir=/tmp/sep

For each norm of ``config.norms`` it computes, exactly, every point's distance to the nearest
training point of another class, train-train and test-train (lipprune.robust.separation), and
writes ``separation.json`` (min, mean, median, 1st percentile, histogram, the fraction of points
closer than ``2 * eps``, the conflicting-label duplicates), ``separation.md`` (the paper's table:
minimum train-train and test-train separation next to ``2 * eps``) and one histogram PNG per norm
(``separation_<norm>.png``) with ``2 * eps`` marked. A finished workdir is reported, not recomputed.
"""
from __future__ import annotations

import os

import numpy as np
from absl import app, flags, logging

from . import common
from lipprune import data as data_lib
from lipprune import plotting
from lipprune.robust import separation
from lipprune.train import io

common.define_job_flags()


def _norms(config) -> list[str]:
  norms = config.norms.split(",") if isinstance(config.norms, str) else list(config.norms)
  return [n.strip() for n in norms if n.strip()]


def validate_config(config) -> None:
  common.validate_choice("dataset", config.dataset, data_lib.NAMES)
  norms = _norms(config)
  if not norms:
    raise ValueError("config.norms is empty; give e.g. 'linf,l2'")
  for n in norms:
    common.validate_choice("norms", n, separation.NORMS)
  common.validate_positive("eps", config.eps)
  common.validate_positive("l2_eps", config.l2_eps, allow_zero=True)
  for field in ("bins", "query_chunk", "ref_chunk"):
    common.validate_positive(field, config[field], integer=True)
  for field in ("max_train", "max_test"):
    common.validate_positive(field, config[field], allow_zero=True, integer=True)


def plot_histograms(dists: dict, eps: float, norm: str, path: str, title: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6, 4))
  finite = [d[np.isfinite(d)] for d in dists.values()]
  top = max(float(np.max(d)) for d in finite if len(d))
  bins = np.linspace(0.0, top, 50)
  for (name, _), d in zip(dists.items(), finite):
    ax.hist(d, bins=bins, alpha=0.55, label=f"{name} (min {d.min():.3f})")
  ax.axvline(2 * eps, color="k", linestyle="--", label=f"2 eps = {2 * eps:g}")
  ax.set_xlabel(f"{plotting.NORM_LABELS.get(norm, norm)} distance to the nearest training point of "
                "another class")
  ax.set_ylabel("points")
  ax.set_title(title)
  ax.legend(fontsize=8)
  fig.tight_layout()
  io.save_figure(fig, path, dpi=120)
  plt.close(fig)


def _take(ds, n):
  return ds if not n or len(ds) <= n else ds.take(np.arange(n))


@common.workdir_job
def run(config, workdir: str) -> dict:
  validate_config(config)
  common.check_workdir(workdir, config)
  out_path = os.path.join(workdir, "separation.json")
  finished = common.finished_result(workdir, "separation.json")
  if finished is not None:
    return finished
  kwargs = common.data_kwargs(config)
  train_ds = _take(data_lib.load(config.dataset, "train", **kwargs), config.max_train)
  test_ds = _take(data_lib.load(config.dataset, "test", **kwargs), config.max_test)
  common.open_workdir(workdir, config)
  results = {"dataset": config.dataset, "n_train": len(train_ds), "n_test": len(test_ds)}
  lines = [f"| {config.dataset} | norm | 2 eps | min train-train | min test-train | "
           "train < 2 eps | test < 2 eps | conflicting duplicates |", "|" + "---|" * 8]
  for norm in _norms(config):
    eps = config.eps if norm == "linf" else (config.l2_eps or config.eps)
    chunks = dict(query_chunk=config.query_chunk, ref_chunk=config.ref_chunk)
    tt, d_tt = separation.separation_report(train_ds.x, train_ds.y, train_ds.x, train_ds.y,
                                            norm=norm, eps=eps, bins=config.bins, **chunks)
    st, d_st = separation.separation_report(test_ds.x, test_ds.y, train_ds.x, train_ds.y,
                                            norm=norm, eps=eps, bins=config.bins, **chunks)
    results[norm] = {"train_train": tt, "test_train": st}
    lines.append(f"| | {norm} | {2 * eps:g} | {tt['min']:.4f} | {st['min']:.4f} | "
                 f"{100 * tt['frac_below_2eps']:.2f}% | {100 * st['frac_below_2eps']:.2f}% | "
                 f"{tt['num_conflicting_duplicates']} train, {st['num_conflicting_duplicates']} test |")
    plot_histograms({"train-train": d_tt, "test-train": d_st}, eps, norm,
                    os.path.join(workdir, f"separation_{norm}.png"),
                    f"{config.dataset}: {norm} separation")
    logging.info("%s %s: min train-train %.4f, min test-train %.4f", config.dataset, norm,
                 tt["min"], st["min"])
  io.write_text(os.path.join(workdir, "separation.md"), "\n".join(lines) + "\n")
  io.write_json(out_path, results)  # last: its presence marks the job finished
  return results


def main(argv):
  config, workdir = common.start_job(argv)
  run(config, workdir)
  print(io.read_text(os.path.join(workdir, "separation.md")))


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main, flags_parser=common.parse_flags)
