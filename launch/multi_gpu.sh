#!/usr/bin/env bash
# Run one lipprune job on a single host with several GPUs, from the repository root.
#
#   launch/multi_gpu.sh --job=JOB --config=FILE --workdir=DIR [options] [-- --config.x=y ...]
#
# Default: ONE process that sees every GPU. lipprune's mesh spans all visible devices and shards
# each batch across them (data parallel), so nothing else is needed.
#   --gpus=0,1,2,3     which GPUs to use (sets CUDA_VISIBLE_DEVICES; default: all)
#   --mem_fraction=F   share of each GPU's memory that XLA preallocates (sets
#                      XLA_PYTHON_CLIENT_MEM_FRACTION; JAX's default is 0.75)
# --processes=N: N processes on this host, one GPU each (process i sees GPU i; with --gpus the
# i-th listed one). Each gets JAX_COORDINATOR_ADDRESS=localhost:PORT, JAX_NUM_PROCESSES=N and
# JAX_PROCESS_ID=i, so the job calls jax.distributed.initialize() and behaves as on N hosts.
# Process 0 prints to the terminal; process i>0 logs to DIR/logs/process_i.log.
#   --port=P           coordinator port for --processes (default 12355)
#   --cpu              with --processes: CPU processes instead of GPUs (try multi-process anywhere)
# Common:
#   --job=NAME         train | prune | robust | separation | fairness
#   --config=FILE      an ml_collections config file under experiments/configs/
#   --workdir=DIR      checkpoints, metrics and results; rerunning the same command resumes
#   --python=PY        the interpreter (default: $PYTHON or python3)
#   --dry_run          print the exact commands and execute nothing (also DRY_RUN=1)
#   everything after -- is passed to the job unchanged (config overrides such as --config.seed=1)
#
# Examples:
#   launch/multi_gpu.sh --job=prune --config=experiments/configs/prune_digits_mlp.py --workdir=/tmp/p
#   launch/multi_gpu.sh --processes=4 --job=train --config=experiments/configs/cifar10_resnet20.py \
#       --workdir=/tmp/r20
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Starts one process in the background with its output in a log file.
run_bg() {
  local log=$1; shift
  if [[ $DRY_RUN == 1 ]]; then echo "$(quote "$@") > $(quote "$log") 2>&1 &"; else "$@" > "$log" 2>&1 & PIDS+=($!); fi
}

DRY_RUN=${DRY_RUN:-0}
PY=${PYTHON:-python3}
JOB="" CONFIG="" WORKDIR="" GPUS="" MEM="" PROCESSES=0 PORT=12355 CPU=0 EXTRA=() PIDS=()
while (($#)); do
  case $1 in
    --gpus=*) GPUS=${1#*=} ;;
    --mem_fraction=*) MEM=${1#*=} ;;
    --processes=*) PROCESSES=${1#*=} ;;
    --port=*) PORT=${1#*=} ;;
    --cpu) CPU=1 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) common_option "$1" || die "unknown argument '$1' (options take the form --name=value)" ;;
  esac
  shift
done
check_job_args
[[ -z $GPUS || $GPUS =~ ^[0-9]+(,[0-9]+)*$ ]] || die "--gpus='$GPUS' is not a comma-separated list of GPU ids"
[[ -z $MEM || $MEM =~ ^(0?\.[0-9]+|1(\.0*)?)$ ]] || die "--mem_fraction='$MEM' is not a number in (0, 1]"
[[ $PROCESSES =~ ^[0-9]+$ ]] || die "--processes='$PROCESSES' is not a non-negative integer"
[[ $PORT =~ ^[0-9]+$ ]] || die "--port='$PORT' is not a port number"
((CPU == 0 || PROCESSES > 0)) || die "--cpu needs --processes=N"
JOB_ARGS=(-m "experiments.$JOB" "--config=$CONFIG" "--workdir=$WORKDIR" "${EXTRA[@]}")

ENV=()
[[ -n $MEM ]] && ENV+=("XLA_PYTHON_CLIENT_MEM_FRACTION=$MEM")
if ((PROCESSES == 0)); then
  [[ -n $GPUS ]] && ENV=("CUDA_VISIBLE_DEVICES=$GPUS" "${ENV[@]}")
  if ((${#ENV[@]})); then run env "${ENV[@]}" "$PY" "${JOB_ARGS[@]}"; else run "$PY" "${JOB_ARGS[@]}"; fi
  exit 0
fi

IFS=, read -r -a GPU_LIST <<< "${GPUS:-$(seq -s, 0 $((PROCESSES - 1)))}"
((CPU || ${#GPU_LIST[@]} >= PROCESSES)) || die "--processes=$PROCESSES needs as many GPUs, --gpus='$GPUS' lists ${#GPU_LIST[@]}"
run mkdir -p "$WORKDIR/logs"
trap '((${#PIDS[@]})) && kill "${PIDS[@]}" 2> /dev/null' INT TERM
for ((i = PROCESSES - 1; i >= 0; i--)); do  # process 0 last, in the foreground
  if ((CPU)); then DEVICE=(JAX_PLATFORMS=cpu); else DEVICE=("CUDA_VISIBLE_DEVICES=${GPU_LIST[i]}"); fi
  CMD=(env "${DEVICE[@]}" "${ENV[@]}" "JAX_COORDINATOR_ADDRESS=localhost:$PORT"
       "JAX_NUM_PROCESSES=$PROCESSES" "JAX_PROCESS_ID=$i" "$PY" "${JOB_ARGS[@]}")
  if ((i > 0)); then run_bg "$WORKDIR/logs/process_$i.log" "${CMD[@]}"; else run "${CMD[@]}" || STATUS=$?; fi
done
if [[ $DRY_RUN == 1 ]]; then echo wait; exit 0; fi
# A failed process 0 would leave the others waiting for the coordinator: stop them.
[[ ${STATUS:-0} == 0 ]] || kill "${PIDS[@]}" 2> /dev/null || true
for pid in "${PIDS[@]}"; do wait "$pid" || STATUS=${STATUS:-$?}; done
exit "${STATUS:-0}"
