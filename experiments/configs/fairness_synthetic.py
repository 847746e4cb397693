"""Wick, Panda & Tristan (2019) on their synthetic generator: eta, beta and sigma sweeps.

``--config=experiments/configs/fairness_synthetic.py`` (logistic regression, the paper's model) or
``...fairness_synthetic.py:mlp`` (a one-hidden-layer MLP). About a minute on a CPU core.
"""
import ml_collections


def get_config(arg: str = "logistic"):
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.dataset = "synthetic"
  c.data_dir = ""
  c.download = False
  c.verify = True  # tabular data: check each file's sha256 (False: parse a modified file anyway)
  c.model = arg or "logistic"
  c.hidden = (32,)  # MLP hidden widths (model='mlp').
  c.methods = ("baseline", "oracle", "reweighing", "inprocessing", "semisupervised")
  c.num_datasets = 10
  # The generator (appendix A); beta and sigma come from the sweeps.
  c.generator = ml_collections.ConfigDict(dict(
      num_features=20, tau=1.0, alpha=0.5, selection="subsample", n_train=200, n_test=1000,
      n_unlabeled=10000, pool_factor=4))
  # SGD for 10 epochs (the paper); constant learning rate.
  c.train = ml_collections.ConfigDict(dict(
      epochs=10, batch_size=10, learning_rate=0.1, momentum=0.0, penalty="dp", penalty_batch_size=1000))
  # Sweeps.
  c.sweeps = ("eta", "beta", "sigma")
  c.eta_values = (0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
  c.eta_sweep_beta = 0.2
  c.beta_values = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.75, 1.0)
  c.sigma_values = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0)
  c.sigma_sweep_beta = 0.2
  c.fixed_eta = 10.0  # eta of the in-processing / semi-supervised models in the beta and sigma sweeps.
  # COMPAS only.
  c.court_report = False
  c.court_beta = 0.0
  c.bootstrap_resamples = 1000
  return c
