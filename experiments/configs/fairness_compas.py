"""Wick, Panda & Tristan (2019) on COMPAS, and the court-risk report.

Needs ``--config.data_dir`` (the folder with ProPublica's compas-scores-two-years.csv, e.g.
/work/shared/data) or ``--config.download=True``. Positive class everywhere: re-offended within two
years (ProPublica's coding). 10 random 40/40/20 train/unlabeled/test splits (paper appendix A.3)
for the sweeps; the court report refits its rows on 20 splits.
"""
from lipprune import cli

fairness_synthetic = cli.sibling_config(__file__, "fairness_synthetic")


def get_config(arg: str = "logistic"):
  c = fairness_synthetic.get_config(arg)
  c.dataset = "compas"
  c.data_dir = ""
  c.protected = "race"  # paper appendix A.3: African-American or not
  c.fractions = (0.4, 0.4, 0.2)  # paper appendix A.3: 40% train, 40% unlabeled, 20% test
  c.train.l2 = 1e-3  # ours: scikit-learn's C = 2 / (l2 n) = 0.81 on the 2,469 training rows
  c.sweeps = ("eta", "beta", "sigma")
  c.beta_values = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
  c.report.enabled = True
  c.report.blind_features = ("race",)  # the unconstrained model without race as an input
  c.report.min_group_rows = 200  # ours: a group needs 200 defendants (~40 per test split)
  return c
