# Helpers shared by the launch scripts (sourced, not run).
#   usage  prints the calling script's header comment (its documentation)
#   die    prints an error naming the script and exits 2
#   quote  prints its arguments as one shell line, quoted only where needed (a dry run can be pasted)
#   run    runs a command, or only prints it when DRY_RUN=1
#   JOBS   the entry points under experiments/

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
die() { echo "$(basename "$0"): $*" >&2; echo "see $0 --help" >&2; exit 2; }
quote() {
  local out=() a
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then out+=("$a"); else out+=("'${a//\'/\'\\\'\'}'"); fi
  done
  echo "${out[*]}"
}
run() { if [[ $DRY_RUN == 1 ]]; then quote "$@"; else "$@"; fi; }

JOBS="train prune robust separation fairness joint"

# The options every launcher takes (sets JOB, CONFIG, WORKDIR, PY, DRY_RUN; --help prints usage);
# returns 1 for any other argument.
common_option() {
  case $1 in
    --job=*) JOB=${1#*=} ;;
    --config=*) CONFIG=${1#*=} ;;
    --workdir=*) WORKDIR=${1#*=} ;;
    --python=*) PY=${1#*=} ;;
    --dry_run) DRY_RUN=1 ;;
    -h | --help) usage; exit 0 ;;
    *) return 1 ;;
  esac
}

# Dies unless --job names a job, --config an existing config file, and --workdir is given.
check_job_args() {
  [[ " $JOBS " == *" $JOB "* && -n $JOB ]] || die "--job='$JOB' is not one of: $JOBS"
  [[ -n $CONFIG ]] || die "--config is required"
  [[ -f ${CONFIG%%:*} ]] || die "--config='$CONFIG': no such file (run from the repository root)"
  [[ -n $WORKDIR ]] || die "--workdir is required"
}
