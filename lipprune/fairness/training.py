"""Training the five models of Wick, Panda & Tristan (2019) to convergence.

Every model minimizes one objective over its training rows,

  ``J(theta) = sum_i w_i CE(f(x_i), label_i) / sum_i w_i + eta * penalty + (l2 / 2) sum_k ||W_k||^2``

(``w_i``: the selection mask times, for reweighing, the Kamiran-Calders weights; ``label``: ``y``,
or ``z`` for the oracle; ``penalty`` only for the in-processing and semi-supervised models; the L2
term on every kernel, not on biases). Two solvers, each one jit- and vmap-able function of the key
and the data (``model``, ``method`` and ``cfg`` static; ``eta`` may be traced):

* ``solver='lbfgs'`` (default, logistic models): full-batch L-BFGS (``optax.lbfgs`` with its zoom
  line search) until the gradient norm of ``J`` falls below ``tol`` (or ``max_iter`` iterations).
  The penalty is computed on all its rows (the training set, or the whole unlabeled set). For the
  two-class softmax logistic model the minimizer is scikit-learn's ``LogisticRegression(C=...)``
  with ``C = 2 / (l2 n)`` (`sklearn_C`): only ``W_1 - W_0`` enters the likelihood, and the L2 term
  is smallest at ``W_1 = -W_0``, where it equals ``(l2 / 4) ||W_1 - W_0||^2``.
* ``solver='sgd'`` (MLPs): minibatches through `lipprune.train.make_train_step` with a
  cosine-decayed learning rate; ``val_fraction`` of the training rows is held out, the likelihood
  term of ``J`` (weighted NLL of the method's labels) is measured on them after every epoch, the
  parameters with the lowest value are kept, and training stops after ``patience`` epochs without
  improvement (early stopping). The penalty is left out of the stopping rule: on a validation split
  of 40 rows (the generator) the demographic-parity gap is too noisy to time the stop; with it, the
  in-processing MLP stops after about 5 epochs at beta = 0 and loses 0.06 F1. The semi-supervised
  penalty uses ``penalty_batch_size`` unlabeled rows redrawn every step.

Every run reports ``objective`` (``J`` at the returned parameters), ``grad_norm`` (the full-batch
gradient norm of ``J`` there) and ``iterations``.

Data layout (all jnp arrays, fixed shapes):

* ``train``: ``{'x', 'y', 'z', 'group'}`` and optional ``'mask'`` (0/1: rows left out by selection
  bias applied as a mask, e.g. on COMPAS);
* ``unlabeled``: ``{'x', 'group'}`` (labels, if any, are never read).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from lipprune import train as lt
from lipprune.train import optimizers as lt_optimizers
from lipprune.fairness import losses
from lipprune.fairness import metrics as fm

METHODS = ("baseline", "oracle", "reweighing", "inprocessing", "semisupervised")
SOLVERS = ("lbfgs", "sgd")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Solver settings (module docstring). The paper trains 10 epochs of SGD and reports no step
  size or batch size; the defaults here fit to convergence instead."""

  solver: str = "lbfgs"
  l2: float = 0.01  # L2 on kernels; for logistic regression scikit-learn's C = 2 / (l2 n).
  penalty: str = "dp"  # "dp" (the paper) or "eodds" (labeled set only).
  # solver='lbfgs'
  tol: float = 1e-5  # stop when the full-batch gradient norm is below.
  max_iter: int = 1000
  lbfgs_memory: int = 10
  # solver='sgd'
  optimizer: str = "adam"
  epochs: int = 200
  batch_size: int = 20
  learning_rate: float = 0.01  # peak of the cosine decay.
  momentum: float = 0.9  # optimizer='sgd' only.
  val_fraction: float = 0.2
  patience: int = 20  # epochs without validation improvement before stopping.
  penalty_batch_size: int = 1000  # unlabeled rows drawn per step for the semi-supervised penalty.

  def __post_init__(self):
    if self.penalty not in losses.PENALTIES:
      raise ValueError(f"penalty={self.penalty!r}; expected one of {list(losses.PENALTIES)}")
    if self.solver not in SOLVERS:
      raise ValueError(f"solver={self.solver!r}; expected one of {list(SOLVERS)}")
    if self.optimizer not in lt_optimizers.OPTIMIZERS:
      raise ValueError(f"optimizer={self.optimizer!r}; expected one of {list(lt_optimizers.OPTIMIZERS)}")
    for name in ("tol", "max_iter", "lbfgs_memory", "epochs", "batch_size", "learning_rate",
                 "patience", "penalty_batch_size"):
      if not getattr(self, name) > 0:
        raise ValueError(f"{name}={getattr(self, name)!r} must be > 0")
    if self.l2 < 0:
      raise ValueError(f"l2={self.l2!r} must be >= 0")
    if not 0.0 < self.val_fraction < 1.0:
      raise ValueError(f"val_fraction={self.val_fraction!r} must lie in (0, 1)")


def sklearn_C(l2: float, n_rows: int) -> float:
  """scikit-learn's ``C`` with the same minimizer as the two-class logistic model under ``l2``
  with unit weights on ``n_rows`` rows (module docstring)."""
  return 2.0 / (l2 * n_rows)


def kernel_sq_norm(params) -> jax.Array:
  """``sum_k ||W_k||^2`` over the leaves named ``kernel``."""
  leaves = jax.tree_util.tree_leaves_with_path(params)
  return sum(jnp.sum(jnp.square(v)) for path, v in leaves
             if getattr(path[-1], "key", None) == "kernel")


def _check_method(method, cfg):
  if method not in METHODS:
    raise ValueError(f"method={method!r}; expected one of {list(METHODS)}")
  if method == "semisupervised" and cfg.penalty != "dp":
    raise ValueError("the semi-supervised model needs a label-free penalty: penalty='dp'")


def _loss(model, method, eta, cfg):
  if method in ("baseline", "reweighing"):
    return losses.classification_loss(model, "y")
  if method == "oracle":
    return losses.classification_loss(model, "z")
  return losses.penalized_loss(model, eta, cfg.penalty)


def _rows(method, train):
  """Per-row training arrays: features, both labels, objective weight and selection mask."""
  n = train["x"].shape[0]
  mask = jnp.ones((n,), jnp.float32) if train.get("mask") is None else jnp.asarray(train["mask"], jnp.float32)
  weight = losses.reweighing_weights(train["y"], train["group"], mask) if method == "reweighing" else mask
  return {"x": train["x"], "y": train["y"], "z": train["z"], "group": train["group"], "weight": weight,
          "mask": mask}


def _with_penalty_rows(batch, method, penalty_rows, unlabeled):
  """Adds the rows the penalty is computed on: the given training rows (in-processing) or the
  given unlabeled rows (semi-supervised)."""
  if method == "inprocessing":
    return {**batch, "penalty_x": penalty_rows["x"], "penalty_group": penalty_rows["group"],
            "penalty_y": penalty_rows["y"], "penalty_weight": penalty_rows["mask"]}
  if method == "semisupervised":
    return {**batch, "penalty_x": unlabeled["x"], "penalty_group": unlabeled["group"]}
  return batch


def _objective(loss_fn, model_state, batch, l2):
  return lambda params: loss_fn(params, model_state, batch, None)[0] + 0.5 * l2 * kernel_sq_norm(params)


def _lbfgs(value_fn, params, cfg):
  # The zoom line search (optax's default): a backtracking one stalls near the optimum in float32.
  opt = optax.lbfgs(memory_size=cfg.lbfgs_memory)
  value_and_grad = optax.value_and_grad_from_state(value_fn)

  def step(carry):
    params, state = carry
    value, grad = value_and_grad(params, state=state)
    updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=value_fn)
    return optax.apply_updates(params, updates), state

  def keep_going(carry):
    _, state = carry
    count = optax.tree.get(state, "count")
    grad_norm = optax.tree.norm(optax.tree.get(state, "grad"))
    return (count == 0) | ((count < cfg.max_iter) & (grad_norm >= cfg.tol))

  params, state = jax.lax.while_loop(keep_going, step, (params, opt.init(params)))
  return params, {"iterations": optax.tree.get(state, "count")}


def _take(rows, idx):
  return {k: v[idx] for k, v in rows.items()}


def _sgd_early_stopping(key, model, loss_fn, model_state, params, method, fit_rows, val_rows, unlabeled,
                        cfg):
  n_fit = fit_rows["x"].shape[0]
  bs = min(cfg.batch_size, n_fit)
  spe = n_fit // bs
  tx = lt.direction(cfg.optimizer, momentum=cfg.momentum)
  sched = lt.schedule("cosine", base_lr=cfg.learning_rate, total_steps=cfg.epochs * spe)

  def loss_with_l2(params, model_state, batch, key):
    loss, aux = loss_fn(params, model_state, batch, key)
    return loss + 0.5 * cfg.l2 * kernel_sq_norm(params), aux

  step_fn = lt.make_train_step(loss_with_l2, tx, sched)
  val_loss = losses.classification_loss(model, "z" if method == "oracle" else "y")
  val_fn = _objective(val_loss, model_state, val_rows, 0.0)
  state = lt.TrainState.create(params, model_state, tx)

  def one_step(state, inp):
    idx, k = inp
    k_pen, k_step = jax.random.split(k)
    penalty_unlabeled = unlabeled
    if method == "semisupervised":
      nu = unlabeled["x"].shape[0]
      ui = jax.random.randint(k_pen, (min(cfg.penalty_batch_size, nu),), 0, nu)
      penalty_unlabeled = _take(unlabeled, ui)
    batch = _with_penalty_rows(_take(fit_rows, idx), method, fit_rows, penalty_unlabeled)
    state, _ = step_fn(state, batch, k_step)
    return state, None

  def one_epoch(carry, k):
    state, best, best_val, since_best, best_epoch, epoch = carry
    k_perm, k_steps = jax.random.split(k)
    perm = jax.random.permutation(k_perm, n_fit)[: spe * bs].reshape(spe, bs)
    new_state, _ = jax.lax.scan(one_step, state, (perm, jax.random.split(k_steps, spe)))
    stopped = since_best >= cfg.patience
    state = jax.tree.map(lambda old, new: jnp.where(stopped, old, new), state, new_state)
    val = val_fn(state.params)
    better = (val < best_val) & ~stopped
    best = jax.tree.map(lambda b, p: jnp.where(better, p, b), best, state.params)
    return (state, best, jnp.where(better, val, best_val), jnp.where(better, 0, since_best + 1),
            jnp.where(better, epoch + 1, best_epoch), epoch + 1), ~stopped

  init = (state, params, val_fn(params), jnp.int32(0), jnp.int32(0), jnp.int32(0))
  (_, best, best_val, _, best_epoch, _), ran = jax.lax.scan(one_epoch, init,
                                                           jax.random.split(key, cfg.epochs))
  return best, {"iterations": jnp.sum(ran) * spe, "best_epoch": best_epoch, "val_nll": best_val}


def fit(key: jax.Array, model, method: str, train: dict, unlabeled: dict | None, *, eta=0.0,
        cfg: TrainConfig = TrainConfig()):
  """Fits ``model`` with ``method``; returns ``(params, model_state, info)``.

  ``info``: ``{'objective', 'grad_norm', 'iterations'}`` (and ``'best_epoch'``, ``'val_nll'`` for
  the SGD solver: the epoch whose parameters are returned, 0 for the initial ones, and their
  validation NLL),
  where ``grad_norm`` is the full-batch gradient norm of the training objective at the returned
  parameters (module docstring).
  """
  _check_method(method, cfg)
  loss_fn = _loss(model, method, eta, cfg)
  rows = _rows(method, train)
  k_init, k_split, k_run = jax.random.split(key, 3)
  params, model_state = model.init(k_init, train["x"][:1])
  if cfg.solver == "lbfgs":
    fit_rows = rows
    params, info = _lbfgs(_objective(loss_fn, model_state, _with_penalty_rows(rows, method, rows, unlabeled),
                                     cfg.l2), params, cfg)
  else:
    n = rows["x"].shape[0]
    n_val = max(1, int(round(cfg.val_fraction * n)))
    perm = jax.random.permutation(k_split, n)
    fit_rows, val_rows = _take(rows, perm[n_val:]), _take(rows, perm[:n_val])
    params, info = _sgd_early_stopping(k_run, model, loss_fn, model_state, params, method, fit_rows,
                                       val_rows, unlabeled, cfg)
  return params, model_state, {**info, **_objective_and_grad_norm(loss_fn, model_state, params, method,
                                                                  fit_rows, unlabeled, cfg.l2)}


def _objective_and_grad_norm(loss_fn, model_state, params, method, rows, unlabeled, l2):
  value_fn = _objective(loss_fn, model_state, _with_penalty_rows(rows, method, rows, unlabeled), l2)
  value, grad = jax.value_and_grad(value_fn)(params)
  return {"objective": value, "grad_norm": optax.tree.norm(grad)}


def objective_and_grad_norm(model, method: str, params, model_state, train: dict, unlabeled: dict | None,
                            *, eta=0.0, cfg: TrainConfig = TrainConfig()) -> dict:
  """``{'objective', 'grad_norm'}``: the full-batch training objective of ``method`` at ``params``
  (on all rows of ``train``) and its gradient norm, as `fit` reports them."""
  _check_method(method, cfg)
  return _objective_and_grad_norm(_loss(model, method, eta, cfg), model_state, params, method,
                                  _rows(method, train), unlabeled, cfg.l2)


def predict_proba(model, params, model_state, x) -> jax.Array:
  """``P(label = 1 | x)`` = softmax(logits)[:, 1]."""
  logits, _ = model.apply(params, model_state, x, train=False)
  return jax.nn.softmax(logits, -1)[:, 1]


def fit_and_evaluate(key: jax.Array, model, train: dict, unlabeled: dict, tests: dict, *, eta=0.0,
                     cfg: TrainConfig = TrainConfig(), methods=METHODS, favorable: int = 1,
                     threshold: float = 0.5) -> dict:
  """Trains every method on one data set and scores it on each test split.

  ``tests``: ``{name: {'x', 'y', 'z', 'group', optional 'mask'}}``. Predictions are
  ``P(label = 1 | x) >= threshold``. Returns ``{method: {test_name: metrics.evaluate(...) dict,
  'objective', 'grad_norm', 'iterations'}}``. All methods share the same initialisation key.
  """
  out = {}
  for method in methods:
    params, ms, info = fit(key, model, method, train, unlabeled, eta=eta, cfg=cfg)
    res = {k: info[k] for k in ("objective", "grad_norm", "iterations")}
    for name, t in tests.items():
      prob = predict_proba(model, params, ms, t["x"])
      res[name] = fm.evaluate(prob, t["y"], t["group"], t.get("z"), t.get("mask"), favorable=favorable,
                              threshold=threshold)
    out[method] = res
  return out
