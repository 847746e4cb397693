"""Training the five models of Wick, Panda & Tristan (2019) with the lipprune train step.

The experiments are tiny (200 training examples in the paper), so one whole run — every epoch and
every SGD step — is a single `lax.scan` over `lipprune.train.make_train_step`, and `jax.vmap` over
data sets trains ten of them at once. ``method`` is static; ``eta`` may be traced, so a sweep over
``eta`` (or over the data's ``beta``/``sigma``) compiles once.

Data layout (all jnp arrays, fixed shapes):

* ``train``: ``{'x', 'y', 'z', 'group'}`` and optional ``'mask'`` (0/1: rows left out by selection
  bias applied as a mask, e.g. on COMPAS);
* ``unlabeled``: ``{'x', 'group'}`` (labels, if any, are never read).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from lipprune import train as lt
from lipprune.fairness import losses
from lipprune.fairness import metrics as fm

METHODS = ("baseline", "oracle", "reweighing", "inprocessing", "semisupervised")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """SGD settings (the paper: SGD for 10 epochs on logistic regression)."""

  epochs: int = 10
  batch_size: int = 10
  learning_rate: float = 0.1
  momentum: float = 0.0
  penalty: str = "dp"  # "dp" (the paper) or "eodds" (labeled set only).
  penalty_batch_size: int = 1000  # unlabeled rows drawn per step for the semi-supervised penalty.

  def __post_init__(self):
    if self.penalty not in losses.PENALTIES:
      raise ValueError(f"penalty={self.penalty!r}; expected one of {list(losses.PENALTIES)}")


def _loss_and_penalty_rows(model, method, train, eta, cfg):
  mask = train.get("mask")
  if method == "baseline":
    return losses.classification_loss(model, "y"), None
  if method == "oracle":
    return losses.classification_loss(model, "z"), None
  if method == "reweighing":
    return losses.classification_loss(model, "y"), None
  loss = losses.penalized_loss(model, eta, cfg.penalty)
  if method == "inprocessing":
    rows = {"penalty_x": train["x"], "penalty_group": train["group"], "penalty_y": train["y"]}
    if mask is not None:
      rows["penalty_weight"] = jnp.asarray(mask, jnp.float32)
    return loss, rows
  if method == "semisupervised":
    if cfg.penalty != "dp":
      raise ValueError("the semi-supervised model needs a label-free penalty: penalty='dp'")
    return loss, None
  raise ValueError(f"method={method!r}; expected one of {list(METHODS)}")


def fit(key: jax.Array, model, method: str, train: dict, unlabeled: dict | None, *, eta=0.0,
        cfg: TrainConfig = TrainConfig()):
  """Trains ``model`` with ``method`` and returns ``(params, model_state, losses_per_step)``.

  Plain SGD with constant learning rate over ``cfg.epochs`` epochs of minibatches of
  ``cfg.batch_size`` rows (a fresh permutation per epoch; the last partial batch is dropped).
  Jit- and vmap-able (``model``, ``method``, ``cfg`` static).
  """
  if method not in METHODS:
    raise ValueError(f"method={method!r}; expected one of {list(METHODS)}")
  n = train["x"].shape[0]
  bs = min(cfg.batch_size, n)
  spe = n // bs
  tx = lt.direction("sgd", momentum=cfg.momentum)
  sched = lt.schedule("constant", base_lr=cfg.learning_rate, total_steps=cfg.epochs * spe)
  loss_fn, penalty_rows = _loss_and_penalty_rows(model, method, train, eta, cfg)
  step_fn = lt.make_train_step(loss_fn, tx, sched)

  weight = jnp.ones((n,), jnp.float32) if train.get("mask") is None else jnp.asarray(train["mask"], jnp.float32)
  if method == "reweighing":
    weight = losses.reweighing_weights(train["y"], train["group"], weight)
  rows = {"x": train["x"], "y": train["y"], "z": train["z"], "weight": weight}

  k_init, k_run = jax.random.split(key)
  params, model_state = model.init(k_init, train["x"][:1])
  state = lt.TrainState.create(params, model_state, tx)

  def one_step(state, inp):
    idx, k = inp
    k_pen, k_step = jax.random.split(k)
    batch = {name: v[idx] for name, v in rows.items()}
    if penalty_rows is not None:
      batch.update(penalty_rows)
    if method == "semisupervised":
      nu = unlabeled["x"].shape[0]
      ui = jax.random.randint(k_pen, (min(cfg.penalty_batch_size, nu),), 0, nu)
      batch["penalty_x"] = unlabeled["x"][ui]
      batch["penalty_group"] = unlabeled["group"][ui]
    state, m = step_fn(state, batch, k_step)
    return state, m["loss"]

  def one_epoch(state, k):
    k_perm, k_steps = jax.random.split(k)
    perm = jax.random.permutation(k_perm, n)[: spe * bs].reshape(spe, bs)
    return jax.lax.scan(one_step, state, (perm, jax.random.split(k_steps, spe)))

  state, step_losses = jax.lax.scan(one_epoch, state, jax.random.split(k_run, cfg.epochs))
  return state.params, state.model_state, step_losses.reshape(-1)


def predict_proba(model, params, model_state, x) -> jax.Array:
  """``P(favourable outcome | x)`` = softmax(logits)[:, 1]."""
  logits, _ = model.apply(params, model_state, x, train=False)
  return jax.nn.softmax(logits, -1)[:, 1]


def fit_and_evaluate(key: jax.Array, model, train: dict, unlabeled: dict, tests: dict, *, eta=0.0,
                     cfg: TrainConfig = TrainConfig(), methods=METHODS) -> dict:
  """Trains every method on one data set and scores it on each test split.

  ``tests``: ``{name: {'x', 'y', 'z', 'group', optional 'mask'}}``. Returns
  ``{method: {test_name: lipprune.fairness.metrics.evaluate(...) dict}}`` plus, per method, the
  final training loss under ``'final_loss'``. All methods share the same initialisation key.
  """
  out = {}
  for method in methods:
    params, ms, step_losses = fit(key, model, method, train, unlabeled, eta=eta, cfg=cfg)
    res = {"final_loss": step_losses[-1]}
    for name, t in tests.items():
      pred = (predict_proba(model, params, ms, t["x"]) > 0.5).astype(jnp.int32)
      res[name] = fm.evaluate(pred, t["y"], t["group"], t.get("z"), t.get("mask"))
    out[method] = res
  return out
