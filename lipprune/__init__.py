"""lipprune: sparse, robust and fair neural networks in JAX.

Layers (arrows point one way):
  experiments -> lipprune.{sparsity, robust, fairness} -> lipprune.train -> lipprune.{models, data}
The checkout's experiments/ installs as lipprune.experiments; lipprune.cli (the console scripts)
imports it only when a script runs.
"""
from lipprune._version import __version__  # noqa: F401
