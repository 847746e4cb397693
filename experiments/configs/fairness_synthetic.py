"""Wick, Panda & Tristan (2019) on their synthetic generator: eta, beta and sigma sweeps.

``--config=experiments/configs/fairness_synthetic.py`` (logistic regression, the paper's model) or
``...fairness_synthetic.py:mlp`` (a one-hidden-layer MLP). The paper trains 10 epochs of SGD
(appendix A.2) and reports no step size or batch size; here every model is fitted to convergence
(logistic: full-batch L-BFGS; MLP: Adam with cosine decay and early stopping on a validation split).
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
  c.hidden = (32,)  # MLP hidden widths (model='mlp'); ours, the paper uses logistic regression.
  c.methods = ("baseline", "oracle", "reweighing", "inprocessing", "semisupervised")  # paper section 5
  c.num_seeds = 10  # data sets (seeds seed, ..., seed+9); paper: 10 per setting (its error bars)
  # The generator (appendix A.2): 20 binary features incl. rho, 200 train / 1,000 test / 10,000
  # unlabeled, 50/50 protected; tau is not reported (ours: 1). Selection 'paper' = section 5.2.
  c.generator = ml_collections.ConfigDict(dict(
      num_features=20, tau=1.0, alpha=0.5, selection="paper", n_train=200, n_test=1000,
      n_unlabeled=10000, pool_factor=4))
  # Real data only (unused here; see fairness_compas.py).
  c.protected = ""
  c.drop_features = ()
  c.selection = "paper"
  c.fractions = (0.4, 0.4, 0.2)
  # Fitting to convergence (ours: the paper's 10 SGD epochs leave the models undertrained).
  c.train = ml_collections.ConfigDict(dict(
      solver="sgd" if arg == "mlp" else "lbfgs",
      l2=1e-4,  # scikit-learn's C = 2 / (l2 n) = 100 on the 200 training rows: nearly unregularized
      penalty="dp",  # the paper's demographic-parity penalty (section 4)
      tol=1e-5, max_iter=1000, lbfgs_memory=10,  # L-BFGS: stop at gradient norm < 1e-5
      optimizer="adam", epochs=300, batch_size=20, learning_rate=0.01, momentum=0.9,  # SGD (MLP)
      val_fraction=0.2, patience=30,  # early stopping on 20% of the training rows
      penalty_batch_size=1000))  # unlabeled rows per SGD step for the semi-supervised penalty
  # Sweeps (paper figures 4-6: beta in [0, 1], sigma in 1..8, eta varied).
  c.sweeps = ("eta", "beta", "sigma")
  c.eta_values = (0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
  c.eta_sweep_beta = 0.2
  c.beta_values = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.75, 1.0)
  c.sigma_values = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0)
  c.sigma_sweep_beta = 0.2  # paper section 5.2: "fixing label bias (beta = 0.2)"
  c.fixed_eta = 10.0  # eta of the in-processing / semi-supervised models in the beta and sigma sweeps (ours)
  # The group report (real data only).
  c.report = ml_collections.ConfigDict(dict(
      enabled=False, splits=20, resamples=100, min_group_rows=200, threshold=0.5,
      blind_features=(), label_bias_betas=(0.0, 0.1, 0.2, 0.3)))
  return c
