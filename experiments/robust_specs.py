"""Robust-training methods as config strings, shared by experiments.robust and experiments.joint:
``'trades:beta=6:lr=0.5'`` names a loss of `lipprune.robust.losses`, its keyword arguments and the
method's training options. Parsing with checks, the threat model's fields (norm, input box, eps,
attack steps) and the loss a spec builds from a config.
"""
from __future__ import annotations

import inspect

from . import common
from lipprune import data as data_lib
from lipprune.robust import lipschitz as robust_lipschitz
from lipprune.robust import losses as robust_losses

NORMS = ("linf", "l2")
# Methods whose factory takes the training attack's eps and box from the config; of those, the
# ones whose number of attack steps is config.train_attack_steps (llr_yang keeps its own 2).
_ATTACKED = ("adversarial", "rst", "trades", "llr", "llr_yang")
_CONFIG_STEPS = ("adversarial", "rst", "trades", "llr")
# Of those, the ones with an l_2 variant (norm from the config).
_NORMED = ("adversarial", "rst", "trades", "llr_yang")
# Spec keys that are training options of the method rather than arguments of its loss.
TRAINING_KEYS = ("lr",)
# Spec keys that must be positive numbers.
_POSITIVE_KEYS = ("eps", "steps", "step_size", "lr", "h")


def _parse_value(text: str):
  low = text.lower()
  if low in ("true", "false"):
    return low == "true"
  try:
    return int(text)
  except ValueError:
    pass
  try:
    return float(text)
  except ValueError:
    return text


def parse_spec(spec: str) -> tuple[str, dict, dict]:
  """``'trades:beta=6:lr=0.5'`` -> ``('trades', {'beta': 6}, {'lr': 0.5})``: the loss name, its
  keyword arguments and the method's training options; validates names, keys and signs."""
  parts = [p for p in spec.strip().split(":") if p]
  if not parts:
    raise ValueError("config.methods has an empty method spec")
  name, kwargs, training = parts[0], {}, {}
  common.validate_choice("methods", name, robust_losses.METHODS)
  factory = getattr(robust_losses, name)
  allowed = [p for p in inspect.signature(factory).parameters if p != "model"] + list(TRAINING_KEYS)
  for part in parts[1:]:
    if "=" not in part:
      raise ValueError(f"config.methods: {spec!r}: expected key=value after ':', got {part!r}")
    k, v = part.split("=", 1)
    if k not in allowed:
      raise ValueError(f"config.methods: {spec!r}: {name} takes no {k!r}; allowed: {allowed}")
    value = _parse_value(v)
    if k in _POSITIVE_KEYS and not (isinstance(value, (int, float)) and value > 0):
      raise ValueError(f"config.methods: {spec!r}: {k}={v} must be a number > 0")
    (training if k in TRAINING_KEYS else kwargs)[k] = value
  return name, kwargs, training


def parse_method(spec: str) -> tuple[str, dict]:
  """``'trades:beta=6'`` -> ``('trades', {'beta': 6})``: the loss name and its keyword arguments
  (training options such as ``lr`` are validated and left out)."""
  name, kwargs, _ = parse_spec(spec)
  return name, kwargs


def method_learning_rate(spec: str, config) -> float:
  """The base learning rate of method ``spec``: its ``lr`` key, else ``config.learning_rate``."""
  return float(parse_spec(spec)[2].get("lr", config.learning_rate))


def resolve_box(config) -> tuple[float, float]:
  """The attacks' input box: ``config.box`` if given, else the dataset's declared input range."""
  box = tuple(config.get("box") or ())
  if box:
    if len(box) != 2 or not all(isinstance(v, (int, float)) for v in box) or box[0] >= box[1]:
      raise ValueError(f"config.box={box!r}; expected (lo, hi) with lo < hi, or () for the "
                       "dataset's declared input range")
    return float(box[0]), float(box[1])
  declared = data_lib.input_range(config.dataset)
  if declared is None:
    raise ValueError(
        f"config.box: dataset {config.dataset!r} declares no input range (its inputs are not in "
        "[0, 1]), so the attacks have no box to project onto; give it explicitly, e.g. "
        "--config.box='(-6.0, 5.0)'")
  return declared


def validate_threat_model(config, specs=()) -> None:
  """The threat-model fields shared by experiments.robust and experiments.joint: norm, box, eps in
  (0, box width] for l_inf, positive attack steps; ``specs``' own eps/steps keys likewise."""
  common.validate_choice("norm", config.norm, NORMS)
  lo, hi = resolve_box(config)
  width = hi - lo

  def check_eps(field, value):
    if config.norm == "linf":
      if not 0 < value <= width:
        raise ValueError(f"config.{field}={value!r} must lie in (0, {width:g}] (the width of the "
                         f"input box [{lo:g}, {hi:g}] under the l_inf norm)")
    else:
      common.validate_positive(field, value)

  check_eps("eps", config.eps)
  if config.get("lip_eps"):
    check_eps("lip_eps", config.lip_eps)
  for field in ("train_attack_steps", "eval_steps", "eval_restarts", "lip_steps"):
    common.validate_positive(field, config[field], integer=True)
  common.validate_positive("lip_step_size", config.lip_step_size)
  common.validate_positive("eval_step_size", config.get("eval_step_size", 0.0), allow_zero=True)
  common.validate_choice("lip_estimator", config.get("lip_estimator", "ascent"),
                         robust_lipschitz.ESTIMATORS)
  for name in config.get("lip_extra_estimators", ()):
    common.validate_choice("lip_extra_estimators", name, robust_lipschitz.ESTIMATORS)
  if config.get("eval_autoattack", False):
    for field in ("aa_steps", "aa_restarts", "aa_targets"):
      common.validate_positive(field, config[field], integer=True)
  for spec in specs:
    _, kwargs = parse_method(spec)
    if "eps" in kwargs:
      check_eps(f"methods ({spec!r}) eps", kwargs["eps"])


def method_specs(config) -> list[str]:
  specs = config.methods
  if isinstance(specs, str):
    specs = specs.split(",")
  return [s.strip() for s in specs if s.strip()]


def build_loss(model, spec: str, config):
  name, kwargs = parse_method(spec)
  if name in _ATTACKED:
    kwargs.setdefault("eps", config.eps)
    kwargs.setdefault("box", resolve_box(config))
  if name in _CONFIG_STEPS:
    kwargs.setdefault("steps", config.train_attack_steps)
  if name in _NORMED:
    kwargs.setdefault("norm", config.norm)
  return robust_losses.make_loss(name, model, **kwargs)
