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
