"""Datasets as host numpy arrays, deterministic batching, and on-device augmentation."""
from lipprune.data.augment import crop_flip, make_augment, random_crop_flip
from lipprune.data.dataset import Dataset, check_labels
from lipprune.data.iterators import BatchSampler, epoch_permutation, eval_batches, steps_per_epoch
from lipprune.data.loader import INPUT_RANGES, NAMES, holdout, input_range, load
