"""lipprune: sparse, robust and fair neural networks in JAX.

Layers (arrows point one way):
  experiments -> lipprune.{sparsity, robust, fairness} -> lipprune.train -> lipprune.{models, data}
"""
__version__ = "0.1.0"
