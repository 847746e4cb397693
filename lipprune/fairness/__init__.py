"""Fairness under label and selection bias (Wick, Panda & Tristan, NeurIPS 2019).

* `bias`: label bias, group/class-conditional flips, selection bias (subsampling or reassigning rho).
* `synthetic`: the paper's generator (appendix A).
* `metrics`: selection rates, DI ratio, parity/opportunity/odds gaps, accuracy, weighted F1 against
  observed and clean labels; bootstrap intervals.
* `penalties`: differentiable demographic-parity and equalized-odds-style penalties.
* `losses`: baseline/oracle/reweighed/penalized losses (lipprune loss contract), Kamiran-Calders weights.
* `training`: the five models trained with `lipprune.train.make_train_step` inside one `lax.scan`.
"""
from lipprune.fairness import bias, losses, metrics, penalties, synthetic, training
from lipprune.fairness.bias import (flip_labels, label_bias, selection_keep_mask, selection_reassign)
from lipprune.fairness.losses import classification_loss, penalized_loss, reweighing_weights
from lipprune.fairness.metrics import bootstrap_ci, evaluate
from lipprune.fairness.penalties import demographic_parity_penalty, equalized_odds_penalty
from lipprune.fairness.synthetic import GeneratorConfig, generate
from lipprune.fairness.training import METHODS, TrainConfig, fit, fit_and_evaluate, predict_proba
