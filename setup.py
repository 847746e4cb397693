"""lipprune: sparse, robust and fair neural networks in JAX."""
import setuptools

setuptools.setup(
    name="lipprune",
    version="0.1.0",
    description="Pruning with rewinding, local-Lipschitz robustness and fairness under label bias, in JAX.",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    packages=setuptools.find_packages(include=["lipprune", "lipprune.*", "experiments", "experiments.*"]),
    python_requires=">=3.11",
    install_requires=[
        "jax>=0.4.35",
        "flax>=0.10",
        "optax>=0.2.4",
        "chex>=0.1.87",
        "orbax-checkpoint>=0.10",
        "absl-py>=2.0",
        "tensorflow-datasets>=4.9.6",
        "ml-collections>=0.1.1",
        "numpy>=1.26",
        "scikit-learn>=1.3",
        "mlxtend>=0.23",
        "mnist1d>=0.0.2",
        "matplotlib>=3.8",
    ],
    extras_require={
        "tf": ["tensorflow-cpu>=2.16"],
        # fairlearn: a test-only cross-check of lipprune.fairness's metrics (MetricFrame).
        "dev": ["pytest>=8", "hypothesis>=6.100", "fairlearn>=0.15", "nbclient>=0.10", "nbformat>=5.9",
                "ipykernel>=6.29"],
        "bench": ["torch>=2.4"],
    },
)
