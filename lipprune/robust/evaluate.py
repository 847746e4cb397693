"""Dataset-level robustness metrics (Yang et al., NeurIPS 2020, Table 2's columns).

``make_robust_evaluator`` compiles once per model and settings, and returns

  evaluate(params, model_state, arrays, key) ->
      {'accuracy', 'adv_accuracy', 'lipschitz', 'n'}

* ``accuracy``: clean accuracy, batch norm in inference mode.
* ``adv_accuracy``: fraction of points still correct under PGD (``steps`` steps of ``step_size``
  from a uniform start, ``restarts`` runs) and, if ``multi_target``, under the multi-target attack
  too; a point counts as robust only if every attack fails (and it is correct to begin with).
* ``lipschitz``: the mean empirical local Lipschitz constant (lipprune.robust.lipschitz), with its
  own ``lip_steps``/``lip_step_size`` (paper: 10 and 0.003).

``gaps(train, test)`` gives the paper's generalization gaps: ``train - test`` for the clean and the
adversarial accuracy.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from lipprune.data.iterators import eval_batches
from lipprune.robust import attacks
from lipprune.robust.lipschitz import local_lipschitz


def make_robust_evaluator(model, *, num_classes: int, eps: float, norm: str = "linf",
                          step_size: float | None = None, steps: int = 20, restarts: int = 1,
                          multi_target: bool = False, lipschitz: bool = True,
                          lip_eps: float | None = None, lip_step_size: float = 0.003,
                          lip_steps: int = 10, batch_size: int = 256,
                          bn_train: bool = False) -> Callable:
  """Builds ``evaluate(params, model_state, arrays, key) -> dict`` (see the module docstring).

  ``step_size`` defaults to ``eps / 4``; ``lip_eps`` to ``eps``. ``bn_train=True`` runs the attacks
  with batch norm in train mode (batch statistics of the attacked batch).
  """
  step_size = eps / 4 if step_size is None else step_size
  lip_eps = eps if lip_eps is None else lip_eps

  @jax.jit
  def batch_eval(params, model_state, x, y, num_valid, key):
    def logits_fn(z):
      return model.apply(params, model_state, z, train=bn_train, key=key)[0]

    valid = jnp.arange(x.shape[0]) < num_valid
    k_pgd, k_mt, k_lip = jax.random.split(key, 3)
    clean_ok = jnp.argmax(logits_fn(x), -1) == y
    x_adv = attacks.pgd_restarts(logits_fn, x, y, k_pgd, restarts=restarts, eps=eps,
                                 step_size=step_size, steps=steps, norm=norm)
    robust = clean_ok & (jnp.argmax(logits_fn(x_adv), -1) == y)
    if multi_target:
      x_mt = attacks.multi_target(logits_fn, x, y, k_mt, num_classes=num_classes, eps=eps,
                                  step_size=step_size, steps=steps, norm=norm)
      robust = robust & (jnp.argmax(logits_fn(x_mt), -1) == y)
    out = {"correct": jnp.sum(clean_ok & valid), "robust": jnp.sum(robust & valid)}
    if lipschitz:
      lip = local_lipschitz(logits_fn, x, k_lip, eps=lip_eps, step_size=lip_step_size,
                            steps=lip_steps)
      out["lipschitz_sum"] = jnp.sum(jnp.where(valid, lip, 0.0))
    return out

  def evaluate(params, model_state, arrays, key) -> dict:
    sums, n = {}, 0
    data = {"x": np.asarray(arrays["x"]), "y": np.asarray(arrays["y"])}
    for i, (batch, num_valid) in enumerate(eval_batches(data, batch_size)):
      out = batch_eval(params, model_state, batch["x"], batch["y"], num_valid,
                       jax.random.fold_in(key, i))
      for k, v in out.items():
        sums[k] = sums.get(k, 0.0) + float(v)
      n += num_valid
    result = {"n": n, "accuracy": sums["correct"] / n, "adv_accuracy": sums["robust"] / n}
    if lipschitz:
      result["lipschitz"] = sums["lipschitz_sum"] / n
    return result

  return evaluate


def gaps(train: dict, test: dict) -> dict:
  """Train-test generalization gaps of the clean and the adversarial accuracy."""
  return {"gap": train["accuracy"] - test["accuracy"],
          "adv_gap": train["adv_accuracy"] - test["adv_accuracy"]}
