"""Label- and selection-bias sweeps and the group report on UCI Adult (protected: sex by default;
``--config.protected=race`` for not-White).

Needs ``--config.data_dir`` (adult.data and adult.test) or ``--config.download=True``. The 48,842
rows of both files are split at random 40/40/20 (as the paper does for COMPAS) 10 times.
"""
from lipprune import cli

fairness_synthetic = cli.sibling_config(__file__, "fairness_synthetic")


def get_config(arg: str = "logistic"):
  c = fairness_synthetic.get_config(arg)
  c.dataset = "adult"
  c.protected = "sex"
  c.fractions = (0.4, 0.4, 0.2)  # as paper appendix A.3 for COMPAS
  c.train.l2 = 1e-3  # ours (scikit-learn's C = 0.10 on 19,537 training rows)
  c.sweeps = ("beta", "sigma")
  c.beta_values = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
  c.sigma_values = (1.0, 2.0, 4.0, 8.0)
  c.report.enabled = True
  c.report.splits = 10
  c.report.blind_features = ("sex", "race")
  c.report.min_group_rows = 400  # ours: ~80 rows per test split
  return c
