"""Prune a fair model: an MLP on COMPAS (ProPublica's two-year recidivism, 40% train / 20% test split of
`lipprune.data.load('compas')`), trained with Wick et al.'s in-processing demographic-parity
penalty (eta = 10) on labels that carry label bias beta = 0.2; iterative global magnitude pruning
of 20% per round for 10 rounds, retrained with fine-tuning and LR rewinding under the same penalty.
Every round reports the disparate-impact ratio and group error rates against the observed (biased)
and the clean labels.

``:baseline`` sets eta = 0 (the unconstrained model on the same biased labels). Needs the ProPublica
CSV: ``--config.data_dir=DIR`` holding compas-scores-two-years.csv, or ``--config.download=True``.
"""
import ml_collections

from lipprune import cli

prune_digits_mlp = cli.sibling_config(__file__, "prune_digits_mlp")


def get_config(variant: str = "fair"):
  c = prune_digits_mlp.get_config()
  c.joint = ml_collections.ConfigDict({
      "kind": "fair", "penalty": "dp", "eta": 0.0 if variant == "baseline" else 10.0,
      "label_bias": 0.2})
  c.dataset = "compas"
  c.model = "mlp"
  c.model_kwargs = ml_collections.ConfigDict({"hidden": (64,)})
  c.num_seeds = 3
  c.batch_size = 32
  c.num_epochs = 20
  c.learning_rate = 0.05
  c.lr_boundaries_epochs = (10, 15)
  c.weight_decay = 0.0
  c.retrain_epochs = 20.0
  c.prune.rounds = 10
  c.arms = ("global_magnitude:fine_tune", "global_magnitude:lr_rewind")
  return c
