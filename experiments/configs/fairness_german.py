"""Label- and selection-bias sweeps and the group report on UCI Statlog German credit (protected:
age <= 25 by default; ``--config.protected=sex`` for female).

Needs ``--config.data_dir`` (german.data) or ``--config.download=True``. 1,000 rows split at random
40/40/20 (400 train, 400 unlabeled, 200 test), 10 times.
"""
from lipprune import cli

fairness_synthetic = cli.sibling_config(__file__, "fairness_synthetic")


def get_config(arg: str = "logistic"):
  c = fairness_synthetic.get_config(arg)
  c.dataset = "german"
  c.protected = "age"
  c.fractions = (0.4, 0.4, 0.2)  # as paper appendix A.3 for COMPAS
  c.train.l2 = 0.01  # ours (scikit-learn's C = 0.5 on 400 training rows, 61 features)
  c.sweeps = ("beta", "sigma")
  c.beta_values = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
  c.sigma_values = (1.0, 2.0, 4.0, 8.0)
  c.report.enabled = True
  c.report.blind_features = ("age", "attribute9")  # age and personal status / sex
  c.report.min_group_rows = 50  # ours: ~10 rows per test split of 200
  return c
