#!/usr/bin/env bash
# Submit a lipprune job to Slurm (sbatch launch/slurm.sbatch), from the repository root.
#
#   launch/slurm.sh --job=JOB --config=FILE --workdir=DIR [options] [-- --config.x=y ...]
#
#   --job=NAME            train | prune | robust | separation | fairness
#   --config=FILE         a config file under experiments/configs/
#   --workdir=DIR         on a filesystem every node sees; the Slurm log goes to DIR/slurm-JOBID.out
#   --nodes=N             nodes (default 1)
#   --gpus_per_node=G     GPUs per node (default 1; 0 runs on CPUs, one task per node)
#   --tasks=gpu|node      one task (JAX process) per GPU (default) or per node; see slurm.sbatch
#   --time=HH:MM:SS       wall-clock limit (default 01:00:00); resubmit the same line to resume
#   --partition=P         the partition (default: the cluster's)
#   --account=A           the account to charge (default: yours)
#   --cpus_per_task=C     CPU cores per task (input pipeline, evaluation)
#   --mem=M               memory per node, e.g. 64G
#   --sbatch_arg=ARG      any further sbatch option, e.g. --sbatch_arg=--qos=high (repeatable)
#   --python=PY           the interpreter on the nodes (default: $PYTHON or python3)
#   --dry_run             print the exact commands and execute nothing (also DRY_RUN=1)
#   everything after -- is passed to the job unchanged (config overrides such as --config.seed=1)
#
# Example: 2 nodes x 4 GPUs = 8 JAX processes training ResNet-20
#   launch/slurm.sh --job=train --config=experiments/configs/cifar10_resnet20.py \
#       --workdir=$SCRATCH/r20 --nodes=2 --gpus_per_node=4 --time=04:00:00 --partition=gpu
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DRY_RUN=${DRY_RUN:-0}
PY=${PYTHON:-python3}
JOB="" CONFIG="" WORKDIR="" NODES=1 GPUS=1 TASKS=gpu TIME=01:00:00 PARTITION="" ACCOUNT=""
CPUS="" MEM="" SBATCH_EXTRA=() EXTRA=()
while (($#)); do
  case $1 in
    --nodes=*) NODES=${1#*=} ;;
    --gpus_per_node=*) GPUS=${1#*=} ;;
    --tasks=*) TASKS=${1#*=} ;;
    --time=*) TIME=${1#*=} ;;
    --partition=*) PARTITION=${1#*=} ;;
    --account=*) ACCOUNT=${1#*=} ;;
    --cpus_per_task=*) CPUS=${1#*=} ;;
    --mem=*) MEM=${1#*=} ;;
    --sbatch_arg=*) SBATCH_EXTRA+=("${1#*=}") ;;
    --) shift; EXTRA=("$@"); break ;;
    *) common_option "$1" || die "unknown argument '$1' (options take the form --name=value)" ;;
  esac
  shift
done
check_job_args
[[ $NODES =~ ^[1-9][0-9]*$ ]] || die "--nodes='$NODES' is not a positive integer"
[[ $GPUS =~ ^[0-9]+$ ]] || die "--gpus_per_node='$GPUS' is not a non-negative integer"
[[ $TASKS == gpu || $TASKS == node ]] || die "--tasks='$TASKS' is not one of: gpu node"
[[ $TIME =~ ^([0-9]+-)?[0-9]+(:[0-9]{2}){0,2}$ ]] || die "--time='$TIME' is not a Slurm time such as 04:00:00 or 1-12:00:00"
[[ -z $CPUS || $CPUS =~ ^[1-9][0-9]*$ ]] || die "--cpus_per_task='$CPUS' is not a positive integer"
((GPUS > 0)) || TASKS=node

FLAGS=(--job-name="lipprune-$JOB" --nodes="$NODES")
if [[ $TASKS == gpu ]]; then FLAGS+=(--ntasks-per-node="$GPUS"); else FLAGS+=(--ntasks-per-node=1); fi
((GPUS > 0)) && FLAGS+=(--gpus-per-node="$GPUS")
FLAGS+=(--time="$TIME")
[[ -n $PARTITION ]] && FLAGS+=(--partition="$PARTITION")
[[ -n $ACCOUNT ]] && FLAGS+=(--account="$ACCOUNT")
[[ -n $CPUS ]] && FLAGS+=(--cpus-per-task="$CPUS")
[[ -n $MEM ]] && FLAGS+=(--mem="$MEM")
FLAGS+=(--output="$WORKDIR/slurm-%j.out" --export="ALL,LIPPRUNE_TASKS=$TASKS,LIPPRUNE_PYTHON=$PY")
run mkdir -p "$WORKDIR"  # Slurm does not create the log's directory
run sbatch "${FLAGS[@]}" "${SBATCH_EXTRA[@]}" "$(dirname "$0")/slurm.sbatch" "$JOB" "$CONFIG" "$WORKDIR" "${EXTRA[@]}"
