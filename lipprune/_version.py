"""The one place the version is written: setuptools reads it (pyproject.toml, dynamic version),
``lipprune.__version__`` re-exports it, and tests check CITATION.cff, CHANGELOG.md and the
notebooks' pinned install against it."""
__version__ = "0.1.0"
