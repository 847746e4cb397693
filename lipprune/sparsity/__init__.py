"""Pruning: masks, masked optimizers, sparsity accounting, retraining methods, physical shrinking.

Renda, Frankle & Carbin, "Comparing Rewinding and Fine-tuning in Neural Network Pruning", ICLR 2020;
Lee et al., "Layer-adaptive Sparsity for the Magnitude-based Pruning" (LAMP), ICLR 2021;
Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017; Frankle & Carbin, "The Lottery
Ticket Hypothesis", ICLR 2019.
"""
from lipprune.sparsity.accounting import collapsed_layers, count, sparsity_stats
from lipprune.sparsity.flops import multiply_adds, output_positions
from lipprune.sparsity.masks import (NORMALIZATIONS, PRUNERS, STRUCTURED_PRUNERS, alive_filters,
                                     data_flow_key, default_prunable, filter_l1, filter_scores,
                                     global_magnitude, init_masks, layerwise_magnitude, prune,
                                     random_filters, random_prune, resolve_rates)
from lipprune.sparsity.optim import masked
from lipprune.sparsity.retrain import METHODS, fine_tune, lr_rewind, reinit, weight_rewind
from lipprune.sparsity.schedule import round_fractions, target_density
