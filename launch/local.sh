#!/usr/bin/env bash
# Run one lipprune job on this machine (CPU or GPU), from the repository root.
#
#   launch/local.sh --job=JOB --config=FILE --workdir=DIR [options] [-- --config.x=y ...]
#
#   --job=NAME         train | prune | robust | separation | fairness (python -m experiments.NAME)
#   --config=FILE      an ml_collections config file, e.g. experiments/configs/mnist5k_mlp.py
#   --workdir=DIR      checkpoints, metrics and results; rerunning the same command resumes
#   --cpu_devices=N    run on CPU with N simulated devices (XLA_FLAGS=
#                      --xla_force_host_platform_device_count=N, JAX_PLATFORMS=cpu): tries the
#                      data-parallel path on a laptop
#   --install          first `pip install -e .` the repository into the current Python
#   --python=PY        the interpreter (default: $PYTHON or python3)
#   --dry_run          print the exact commands and execute nothing (also DRY_RUN=1)
#   -h, --help         this text
#   everything after -- is passed to the job unchanged (config overrides such as --config.seed=1)
#
# Example:
#   launch/local.sh --job=train --config=experiments/configs/mnist5k_mlp.py --workdir=/tmp/m5k \
#       --cpu_devices=8 -- --config.num_epochs=2
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DRY_RUN=${DRY_RUN:-0}
PY=${PYTHON:-python3}
JOB="" CONFIG="" WORKDIR="" CPU_DEVICES="" INSTALL=0 EXTRA=()
while (($#)); do
  case $1 in
    --cpu_devices=*) CPU_DEVICES=${1#*=} ;;
    --install) INSTALL=1 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) common_option "$1" || die "unknown argument '$1' (options take the form --name=value)" ;;
  esac
  shift
done
check_job_args
[[ -z $CPU_DEVICES || $CPU_DEVICES =~ ^[1-9][0-9]*$ ]] || die "--cpu_devices='$CPU_DEVICES' is not a positive integer"

ENV=()
if [[ -n $CPU_DEVICES ]]; then
  ENV=(env "XLA_FLAGS=${XLA_FLAGS:+$XLA_FLAGS }--xla_force_host_platform_device_count=$CPU_DEVICES"
       JAX_PLATFORMS=cpu)
fi
if ((INSTALL)); then
  run "$PY" -m pip install -e .
fi
run "${ENV[@]}" "$PY" -m "experiments.$JOB" "--config=$CONFIG" "--workdir=$WORKDIR" "${EXTRA[@]}"
