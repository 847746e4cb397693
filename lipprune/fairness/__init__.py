"""Fairness under label and selection bias (Wick, Panda & Tristan, NeurIPS 2019).

* `bias`: label bias, group/class-conditional flips, selection bias (the paper's definition, and
  the share-to-r/sigma one by subsampling or reassigning rho).
* `synthetic`: the paper's generator (appendix A).
* `metrics`: selection rates, DI ratio, parity/opportunity/odds gaps, accuracy, weighted F1 against
  observed and clean labels, with validated inputs; bootstrap intervals.
* `groups`: group reports: error rates, PPV/NPV, AUC, calibration and cut-off curves for any
  groups, with replicate intervals; Chouldechova's identity; re-scoring against de-biased labels.
* `penalties`: differentiable demographic-parity and equalized-odds-style penalties.
* `losses`: baseline/oracle/reweighed/penalized losses (lipprune loss contract), Kamiran-Calders weights.
* `training`: the five models fitted to convergence (full-batch L-BFGS, or SGD with early stopping).
"""
from lipprune.fairness import bias, groups, losses, metrics, penalties, synthetic, training
from lipprune.fairness.bias import (flip_labels, label_bias, selection_keep_mask, selection_paper_assign,
                                    selection_paper_keep_mask, selection_reassign)
from lipprune.fairness.losses import classification_loss, penalized_loss, reweighing_weights
from lipprune.fairness.metrics import bootstrap_ci, evaluate
from lipprune.fairness.penalties import demographic_parity_penalty, equalized_odds_penalty
from lipprune.fairness.synthetic import GeneratorConfig, generate
from lipprune.fairness.training import METHODS, TrainConfig, fit, fit_and_evaluate, predict_proba
