"""lipprune: sparse, robust and fair neural networks in JAX.

Layers (arrows point one way):
  experiments -> lipprune.{sparsity, robust, fairness} -> lipprune.train -> lipprune.{models, data}
"""
from lipprune._version import __version__  # noqa: F401
