"""Benchmarks of lipprune against peers; they print numbers and ratios and never gate CI.

Run one as a module from the repository root, e.g. ``python -m bench.bench_train_step``; see
bench/README.md for the recorded numbers and the machines that produced them.
"""
