"""Adversarial robustness through local Lipschitzness (Yang et al., NeurIPS 2020).

* `attacks`: PGD (l_inf, l_2), FGSM, targeted PGD, multi-target attack, a generic projected ascent.
* `apgd`: APGD-CE, APGD-DLR, APGD-T and an AutoAttack-style evaluation (Croce & Hein, ICML 2020).
* `losses`: natural, adversarial (Madry), RST, TRADES, gradient regularization, LLR (Qin et al.)
  and LLR as Yang et al.'s code computes it; mean or summed over the batch.
* `lipschitz`: the empirical local Lipschitz constant (ascent, or the official code's estimator).
* `evaluate`: clean/adversarial/AutoAttack accuracy and Lipschitz over a dataset; gaps.
* `separation`: exact nearest other-class distances (l_inf, l_2) and their summary.
* `models`: the paper's two small MNIST CNNs (``yang_cnn1``, ``yang_cnn2``), registered on import.
"""
from lipprune.robust import apgd, attacks, evaluate, lipschitz, losses, separation
from lipprune.robust.apgd import apgd_targeted, autoattack
from lipprune.robust.attacks import fgsm, maximize, multi_target, pgd, pgd_restarts, project
from lipprune.robust.evaluate import gaps, make_robust_evaluator
from lipprune.robust.lipschitz import local_lipschitz
from lipprune.robust.losses import METHODS, make_loss
from lipprune.robust.separation import nearest_other_class, separation_report

__all__ = ["apgd", "attacks", "evaluate", "lipschitz", "losses", "separation", "apgd_targeted",
           "autoattack", "fgsm", "maximize", "multi_target", "pgd", "pgd_restarts", "project",
           "gaps", "make_robust_evaluator", "local_lipschitz", "METHODS", "make_loss",
           "nearest_other_class", "separation_report"]
