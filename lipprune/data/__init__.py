"""Datasets as host numpy arrays, and deterministic batching."""
from lipprune.data.dataset import Dataset
from lipprune.data.iterators import BatchSampler, epoch_permutation, eval_batches, steps_per_epoch
