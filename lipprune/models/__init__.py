"""Flax models by registry name: `create(name, num_classes, **kwargs) -> Model`."""
from lipprune.models.registry import Model, create, names, register

__all__ = ["Model", "create", "names", "register"]
