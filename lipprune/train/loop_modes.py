"""Measured dispatch choices per (backend, program family). Written by
``python -m bench.bench_loop --write_table``; edit by rerunning that command on the backend in
question, not by hand. A (backend, family) missing here runs one step per dispatch
(`lipprune.train.chunks.choose_plan`) and attacks keep a rolled ``fori_loop``.
"""

# (backend, family) -> {'mode', 'k', and the measurement behind the choice}
TRAIN_LOOP = {}

# (backend, family) -> whether fixed-length attack/ascent loops are unrolled
ATTACK_UNROLL = {}
