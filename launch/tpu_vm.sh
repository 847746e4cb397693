#!/usr/bin/env bash
# Run a lipprune job on a Cloud TPU VM or pod slice with gcloud, from the repository root.
#
#   launch/tpu_vm.sh SUBCOMMAND --name=TPU --zone=ZONE [options] [-- --config.x=y ...]
#
# Subcommands, in the order of a run:
#   create    gcloud compute tpus tpu-vm create (a v4-8 is one host; a v4-32 is a 4-host pod slice)
#   install   copy this repository (git archive HEAD) to every worker, pip install it with jax[tpu]
#             and gcsfs (etils.epath's gs:// backend)
#   mount     optional: mount gs://BUCKET at /gcs/BUCKET on every worker (gcsfuse), for jobs that
#             read a path under it (a data_dir) or for --fuse workdirs
#   run       the same python -m experiments.JOB command on every worker at once; each is one JAX
#             process (jax.distributed.initialize() reads the slice from the TPU metadata)
#   fetch     copy the workdir back: gcloud storage rsync from the bucket with --bucket, else
#             scp from worker 0 (process 0 writes all results)
#   delete    delete the TPU VM (billing stops)
# Options:
#   --name=TPU            the TPU VM's name (required)
#   --zone=ZONE           e.g. us-central2-b (required)
#   --accelerator=TYPE    create: v4-8, v4-32, v5litepod-8, ... (default v4-8)
#   --version=IMAGE       create: the TPU software image (default tpu-ubuntu2204-base)
#   --project=PROJECT     passed to gcloud as --project (default: gcloud's configured project)
#   --spot                create: a Spot VM (cheaper, can be preempted: reruns resume)
#   --job=NAME            run: train | prune | robust | separation | fairness
#   --config=FILE         run: a config file under experiments/configs/
#   --workdir=DIR         run/fetch: the workdir on the workers (default: gs://BUCKET/lipprune/JOB
#                         with --bucket, else workdirs/JOB; relative paths start in ~/lipprune)
#   --bucket=BUCKET       mount/run/fetch: a GCS bucket name (no gs://) for the shared workdir:
#                         a pod slice needs one, since all hosts take part in orbax checkpointing.
#                         Jobs write gs:// workdirs directly (results through etils.epath,
#                         checkpoints through orbax/TensorStore), so they need no mount
#   --fuse                run/fetch: the default workdir is /gcs/BUCKET/lipprune/JOB on the gcsfuse
#                         mount instead (the former setup; run mount first)
#   --dest=DIR            fetch: local destination (default ./tpu_results/NAME)
#   --dry_run             print the exact commands and execute nothing (also DRY_RUN=1)
#   everything after -- is passed to the job unchanged (config overrides such as --config.seed=1)
#
# Example (a 4-host v4-32 slice):
#   Z="--name=lp --zone=us-central2-b"; B=--bucket=my-bucket
#   launch/tpu_vm.sh create $Z --accelerator=v4-32 && launch/tpu_vm.sh install $Z
#   launch/tpu_vm.sh run $Z $B --job=train --config=experiments/configs/cifar10_resnet20.py
#   launch/tpu_vm.sh fetch $Z $B && launch/tpu_vm.sh delete $Z
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SUBCOMMANDS="create install mount run fetch delete"
DRY_RUN=${DRY_RUN:-0}
CMD=${1:-}
case $CMD in -h | --help) usage; exit 0 ;; esac
[[ -n $CMD && " $SUBCOMMANDS " == *" $CMD "* ]] || die "unknown subcommand '$CMD'; expected one of: $SUBCOMMANDS"
shift
NAME="" ZONE="" ACCEL=v4-8 VERSION=tpu-ubuntu2204-base PROJECT="" SPOT=0 JOB="" CONFIG=""
WORKDIR="" BUCKET="" DEST="" FUSE=0 EXTRA=()
while (($#)); do
  case $1 in
    --name=*) NAME=${1#*=} ;;
    --zone=*) ZONE=${1#*=} ;;
    --accelerator=*) ACCEL=${1#*=} ;;
    --version=*) VERSION=${1#*=} ;;
    --project=*) PROJECT=${1#*=} ;;
    --spot) SPOT=1 ;;
    --fuse) FUSE=1 ;;
    --bucket=*) BUCKET=${1#*=} ;;
    --dest=*) DEST=${1#*=} ;;
    --) shift; EXTRA=("$@"); break ;;
    *) common_option "$1" || die "unknown argument '$1' (options take the form --name=value)" ;;
  esac
  shift
done
[[ -n $NAME ]] || die "--name is required (the TPU VM's name)"
[[ -n $ZONE ]] || die "--zone is required (e.g. us-central2-b)"
[[ -z $BUCKET || $BUCKET =~ ^[a-z0-9][a-z0-9._-]*$ ]] || die "--bucket='$BUCKET' is not a bucket name (give it without gs://)"
GCLOUD=(gcloud compute tpus tpu-vm)
WHERE=(--zone="$ZONE")
[[ -n $PROJECT ]] && WHERE+=(--project="$PROJECT")
if [[ -z $WORKDIR ]]; then
  if [[ -z $BUCKET ]]; then WORKDIR=workdirs/${JOB:-train}
  elif ((FUSE)); then WORKDIR=/gcs/$BUCKET/lipprune/${JOB:-train}
  else WORKDIR=gs://$BUCKET/lipprune/${JOB:-train}; fi
fi

case $CMD in
  create)
    [[ $ACCEL =~ ^v[0-9]+[a-z]*-[0-9]+$ ]] || die "--accelerator='$ACCEL' is not a TPU type such as v4-8 or v4-32"
    FLAGS=(--accelerator-type="$ACCEL" --version="$VERSION")
    ((SPOT)) && FLAGS+=(--spot)
    run "${GCLOUD[@]}" create "$NAME" "${WHERE[@]}" "${FLAGS[@]}"
    ;;
  install)
    # The committed tree (HEAD), not uncommitted edits: what runs is what git can name.
    TARBALL=${TMPDIR:-/tmp}/lipprune-$NAME.tar.gz
    run git archive --format=tar.gz -o "$TARBALL" HEAD
    run "${GCLOUD[@]}" scp "$TARBALL" "$NAME:lipprune.tar.gz" "${WHERE[@]}" --worker=all
    run "${GCLOUD[@]}" ssh "$NAME" "${WHERE[@]}" --worker=all --command "mkdir -p ~/lipprune && tar -xzf ~/lipprune.tar.gz -C ~/lipprune && cd ~/lipprune \
&& python3 -m pip install -q -U pip && python3 -m pip install -q -e . \"jax[tpu]\" gcsfs"
    ;;
  mount)
    [[ -n $BUCKET ]] || die "mount needs --bucket=BUCKET"
    # gcsfuse from Google's apt repository; directory renames (orbax finalizes checkpoints by
    # renaming a temporary directory) need --rename-dir-limit on a flat-namespace bucket.
    run "${GCLOUD[@]}" ssh "$NAME" "${WHERE[@]}" --worker=all --command "set -e; \
if ! command -v gcsfuse > /dev/null; then \
curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo tee /usr/share/keyrings/cloud.google.asc > /dev/null; \
echo \"deb [signed-by=/usr/share/keyrings/cloud.google.asc] https://packages.cloud.google.com/apt gcsfuse-\$(lsb_release -cs) main\" | sudo tee /etc/apt/sources.list.d/gcsfuse.list; \
sudo apt-get update -q && sudo apt-get install -y -q gcsfuse; fi; \
sudo mkdir -p /gcs/$BUCKET && sudo chown \$USER /gcs/$BUCKET; \
mountpoint -q /gcs/$BUCKET || gcsfuse --implicit-dirs --rename-dir-limit=1000000 $BUCKET /gcs/$BUCKET"
    ;;
  run)
    [[ " $JOBS " == *" $JOB "* && -n $JOB ]] || die "--job='$JOB' is not one of: $JOBS"
    [[ -n $CONFIG ]] || die "run needs --config=FILE"
    [[ -f ${CONFIG%%:*} ]] || die "--config='$CONFIG': no such file in this repository"
    [[ -n $BUCKET ]] || echo "$(basename "$0"): note: on a pod slice (several hosts) use --bucket:" \
      "every host must see the same workdir" >&2
    JOB_CMD=$(quote python3 -m "experiments.$JOB" "--config=$CONFIG" "--workdir=$WORKDIR" "${EXTRA[@]}")
    run "${GCLOUD[@]}" ssh "$NAME" "${WHERE[@]}" --worker=all --command "cd ~/lipprune && LIPPRUNE_DISTRIBUTED=1 $JOB_CMD"
    ;;
  fetch)
    DEST=${DEST:-tpu_results/$NAME}
    run mkdir -p "$DEST"
    if [[ $WORKDIR == gs://* ]]; then
      run gcloud storage rsync --recursive "$WORKDIR" "$DEST/$(basename "$WORKDIR")"
    elif [[ -n $BUCKET && $WORKDIR == /gcs/$BUCKET/* ]]; then
      run gcloud storage rsync --recursive "gs://$BUCKET/${WORKDIR#/gcs/$BUCKET/}" "$DEST/$(basename "$WORKDIR")"
    else
      [[ $WORKDIR == /* ]] || WORKDIR=lipprune/$WORKDIR  # run's relative paths start in ~/lipprune
      run "${GCLOUD[@]}" scp --recurse "$NAME:$WORKDIR" "$DEST" "${WHERE[@]}" --worker=0
    fi
    ;;
  delete)
    run "${GCLOUD[@]}" delete "$NAME" "${WHERE[@]}" --quiet
    ;;
esac
