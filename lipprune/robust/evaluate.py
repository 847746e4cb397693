"""Dataset-level robustness metrics (Yang et al., NeurIPS 2020, Table 2's columns).

``make_robust_evaluator`` compiles once per model and settings, and returns

  evaluate(params, model_state, arrays, key) ->
      {'accuracy', 'adv_accuracy', 'lipschitz', 'n'}

* ``accuracy``: clean accuracy, batch norm in inference mode.
* ``adv_accuracy``: fraction of points still correct under PGD (``steps`` steps of ``step_size``
  from a uniform start, ``restarts`` runs) and, if ``multi_target``, under the multi-target attack
  too; a point counts as robust only if every attack fails (and it is correct to begin with).
* ``lipschitz``: the mean empirical local Lipschitz constant (lipprune.robust.lipschitz), with its
  own ``lip_steps``/``lip_step_size`` (paper: 10 and 0.003) and ``lip_estimator`` (``'ascent'``
  or ``'released'``, the official code's, see lipprune.robust.lipschitz); every estimator of
  ``lip_extra_estimators`` is reported beside it as ``lipschitz_<name>`` (same points, same start
  noise), so a run can give the paper's definition and the number the released code prints.
* with ``autoattack=True`` also ``apgd_ce_accuracy`` (robust accuracy under APGD-CE) and
  ``aa_accuracy`` (under APGD-CE, then APGD-T on the points APGD-CE left robust: AutoAttack's
  ``standard`` protocol minus FAB-T and Square; lipprune.robust.apgd), ``aa_steps`` iterations,
  ``aa_restarts`` restarts, ``aa_targets`` target classes.

``gaps(train, test)`` gives the paper's generalization gaps: ``train - test`` for the clean and the
adversarial accuracy.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from lipprune.data.iterators import eval_batches
from lipprune.robust import apgd, attacks
from lipprune.robust.lipschitz import ESTIMATORS, local_lipschitz


def make_robust_evaluator(model, *, num_classes: int, eps: float, norm: str = "linf",
                          step_size: float | None = None, steps: int = 20, restarts: int = 1,
                          multi_target: bool = False, lipschitz: bool = True,
                          lip_eps: float | None = None, lip_step_size: float = 0.003,
                          lip_steps: int = 10, lip_estimator: str = "ascent",
                          lip_extra_estimators: tuple[str, ...] = (),
                          autoattack: bool = False, aa_steps: int = 100, aa_restarts: int = 1,
                          aa_targets: int = 9, box: tuple[float, float] | None = (0.0, 1.0),
                          batch_size: int = 256, bn_train: bool = False) -> Callable:
  """Builds ``evaluate(params, model_state, arrays, key) -> dict`` (see the module docstring).

  ``step_size`` defaults to ``eps / 4``; ``lip_eps`` to ``eps``. ``bn_train=True`` runs the attacks
  with batch norm in train mode (batch statistics of the attacked batch).
  """
  step_size = eps / 4 if step_size is None else step_size
  lip_eps = eps if lip_eps is None else lip_eps
  for name in (lip_estimator, *lip_extra_estimators):
    if name not in ESTIMATORS:
      raise ValueError(f"lip_estimator={name!r}; expected one of {list(ESTIMATORS)}")

  def make_logits_fn(params, model_state, key):
    return lambda z: model.apply(params, model_state, z, train=bn_train, key=key)[0]

  @jax.jit
  def batch_eval(params, model_state, x, y, num_valid, key):
    logits_fn = make_logits_fn(params, model_state, key)
    valid = jnp.arange(x.shape[0]) < num_valid
    k_pgd, k_mt, k_lip = jax.random.split(key, 3)
    clean_ok = jnp.argmax(logits_fn(x), -1) == y
    x_adv = attacks.pgd_restarts(logits_fn, x, y, k_pgd, restarts=restarts, eps=eps,
                                 step_size=step_size, steps=steps, norm=norm, box=box)
    robust = clean_ok & (jnp.argmax(logits_fn(x_adv), -1) == y)
    if multi_target:
      x_mt = attacks.multi_target(logits_fn, x, y, k_mt, num_classes=num_classes, eps=eps,
                                  step_size=step_size, steps=steps, norm=norm, box=box)
      robust = robust & (jnp.argmax(logits_fn(x_mt), -1) == y)
    out = {"correct": jnp.sum(clean_ok & valid), "robust": jnp.sum(robust & valid)}
    if lipschitz:
      for name, est in (("", lip_estimator),) + tuple((f"_{e}", e) for e in lip_extra_estimators):
        lip = local_lipschitz(logits_fn, x, k_lip, eps=lip_eps, step_size=lip_step_size,
                              steps=lip_steps, box=box, **ESTIMATORS[est])
        out[f"lipschitz{name}_sum"] = jnp.sum(jnp.where(valid, lip, 0.0))
    return out

  @jax.jit
  def batch_apgd_ce(params, model_state, x, y, key):
    logits_fn = make_logits_fn(params, model_state, key)
    x_adv = apgd.apgd(logits_fn, x, y, key, eps=eps, norm=norm, steps=aa_steps, loss="ce",
                      restarts=aa_restarts, box=box)
    return (jnp.argmax(logits_fn(x), -1) == y) & (jnp.argmax(logits_fn(x_adv), -1) == y)

  @jax.jit
  def batch_apgd_t(params, model_state, x, y, key):
    logits_fn = make_logits_fn(params, model_state, key)
    x_adv = apgd.apgd_targeted(logits_fn, x, y, key, eps=eps, norm=norm, steps=aa_steps,
                               num_targets=aa_targets, restarts=aa_restarts, box=box)
    return jnp.argmax(logits_fn(x_adv), -1) == y

  def survivors(batch_fn, params, model_state, data, key) -> np.ndarray:
    keep = []
    for i, (batch, num_valid) in enumerate(eval_batches(data, batch_size)):
      ok = batch_fn(params, model_state, batch["x"], batch["y"], jax.random.fold_in(key, i))
      keep.append(np.asarray(ok)[:num_valid])
    return np.concatenate(keep) if keep else np.zeros((0,), bool)

  def evaluate(params, model_state, arrays, key) -> dict:
    sums, n = {}, 0
    data = {"x": np.asarray(arrays["x"]), "y": np.asarray(arrays["y"])}
    # Batch i's PGD/Lipschitz key is fold_in(key, i) as before AutoAttack existed, so those
    # columns do not change when it is switched on; AutoAttack's keys come from a separate fold.
    k_ce, k_t = jax.random.split(jax.random.fold_in(key, 2**31 - 1))
    for i, (batch, num_valid) in enumerate(eval_batches(data, batch_size)):
      out = batch_eval(params, model_state, batch["x"], batch["y"], num_valid,
                       jax.random.fold_in(key, i))
      for k, v in out.items():
        sums[k] = sums.get(k, 0.0) + float(v)
      n += num_valid
    result = {"n": n, "accuracy": sums["correct"] / n, "adv_accuracy": sums["robust"] / n}
    if lipschitz:
      result["lipschitz"] = sums["lipschitz_sum"] / n
      for e in lip_extra_estimators:
        result[f"lipschitz_{e}"] = sums[f"lipschitz_{e}_sum"] / n
    if autoattack:
      robust_ce = survivors(batch_apgd_ce, params, model_state, data, k_ce)
      rest = {k: v[robust_ce] for k, v in data.items()}
      robust_t = survivors(batch_apgd_t, params, model_state, rest, k_t)
      result["apgd_ce_accuracy"] = float(robust_ce.sum()) / n
      result["aa_accuracy"] = float(robust_t.sum()) / n
    return result

  return evaluate


def gaps(train: dict, test: dict) -> dict:
  """Train-test generalization gaps of the clean and the adversarial accuracy."""
  return {"gap": train["accuracy"] - test["accuracy"],
          "adv_gap": train["adv_accuracy"] - test["adv_accuracy"]}
