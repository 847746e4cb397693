"""Wick, Panda & Tristan (2019) on COMPAS: 10 random 40/40/20 train/unlabeled/test splits.

Needs ``--config.data_dir`` (the folder with ProPublica's compas-scores-two-years.csv, e.g.
/work/shared/data) or ``--config.download=True``. Adds the court-risk report.
"""
from experiments.configs import fairness_synthetic


def get_config(arg: str = "logistic"):
  c = fairness_synthetic.get_config(arg)
  c.dataset = "compas"
  c.data_dir = ""
  c.train.batch_size = 32
  c.train.penalty_batch_size = 1000
  c.beta_values = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
  c.court_report = True
  c.court_beta = 0.0
  return c
