# Shared by scripts/launch_tpu.sh and scripts/launch_slurm.sh (sourced, not run).

# Shell words, quoted only where needed, so the printed commands read like typed ones.
quote() {
  local word out=()
  for word in "$@"; do
    if [[ "$word" =~ ^[A-Za-z0-9_./=:@%+,~-]+$ ]]; then out+=("$word"); else out+=("${word@Q}"); fi
  done
  echo "${out[*]}"
}

# The calling script's usage lines (its header comment, lines $1..$2) on stderr; exits 2.
usage_lines() {
  sed -n "$1,$2p" "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# `require NAME...`: each variable NAME must be non-empty, else "--NAME is required".
require() {
  local name
  for name in "$@"; do
    if [ -z "${!name}" ]; then
      echo "error: --$name is required." >&2
      usage
    fi
  done
}

# `run_or_print PRINT COMMAND...`: each command string printed (PRINT=1) or echoed to
# stderr and run.
run_or_print() {
  local print="$1" command
  shift
  for command in "$@"; do
    if [ "$print" = 1 ]; then
      echo "$command"
    else
      echo "+ $command" >&2
      eval "$command"
    fi
  done
}
