"""Measured dispatch choices per (backend, program family). Written by
``python -m bench.bench_loop --write_table``; edit by rerunning that command on the backend in
question, not by hand. A (backend, family) missing here runs one step per dispatch
(`lipprune.train.chunks.choose_plan`), attacks keep a rolled ``fori_loop`` and seeds run one after
the other.
"""

# (backend, family) -> {'mode', 'k', and the measurement behind the choice}
TRAIN_LOOP = {('cpu', 'conv'): {'k': 1,
                   'load': (3.6, 3.39, 4.6),
                   'measured': '2026-12-02 02:54 UTC',
                   'mode': 'step',
                   'model': 'resnet20',
                   'vs_old': 1.0,
                   'vs_step': 1.0},
 ('cpu', 'dense'): {'k': 16,
                    'load': (3.6, 3.39, 4.6),
                    'measured': '2026-12-02 02:54 UTC',
                    'mode': 'scan',
                    'model': 'mlp',
                    'vs_old': 4.03,
                    'vs_step': 2.41}}

# (backend, family) -> whether fixed-length attack/ascent loops are unrolled
ATTACK_UNROLL = {('cpu', 'conv'): True, ('cpu', 'dense'): False}

# (backend, family) -> whether lipprune.train.train_seeds vmaps by default
SEEDS_VMAP = {('cpu', 'conv'): False, ('cpu', 'dense'): False}
