#!/usr/bin/env bash
# Start a bigjax config on a SLURM GPU cluster, one process per GPU (or per node).
#
#   scripts/launch_slurm.sh --nodes=N --gpus_per_node=G --config=configs/X.py[:ARG] \
#       --workdir=DIR [--per_node] [--partition=P] [--time=HH:MM:SS] [--setup=CMD] \
#       [--print] [-- --config.KEY=VALUE ...]
#
# Runs `srun` (inside an `sbatch`/`salloc` allocation, or asking for one) with
# `python -m bigjax.main --distributed --config=... --workdir=...` plus the overrides
# after `--`, from this checkout (which every node must see, e.g. on a shared home):
#   default     N x G tasks, one GPU each (`--ntasks-per-node=G --gpus-per-task=1`);
#   --per_node  N tasks, each with all G GPUs of its node.
# `--distributed` calls jax.distributed.initialize(), which reads the coordinator,
# process count and process id from SLURM's environment (SLURM_JOB_NODELIST,
# SLURM_NTASKS, SLURM_PROCID). `--setup` runs first in every task (e.g.
# "source ~/venvs/bigjax/bin/activate"); install bigjax there once with
# `pip install -e '.[cuda12]'`. The workdir must be on a filesystem every node sees.
# Exit code 75: preempted after saving a checkpoint; rerun (or requeue) to resume.
#
# --print shows the exact command and runs nothing.
set -euo pipefail

source "$(dirname "$0")/lib/launch_common.sh"
usage() { usage_lines 2 6; }

nodes="" gpus_per_node="" config="" workdir="" partition="" time_limit="" setup=""
per_node=0 print=0
overrides=()
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes=*) nodes="${1#*=}" ;;
    --gpus_per_node=*) gpus_per_node="${1#*=}" ;;
    --config=*) config="${1#*=}" ;;
    --workdir=*) workdir="${1#*=}" ;;
    --partition=*) partition="${1#*=}" ;;
    --time=*) time_limit="${1#*=}" ;;
    --setup=*) setup="${1#*=}" ;;
    --per_node) per_node=1 ;;
    --print) print=1 ;;
    --) shift; overrides=("$@"); break ;;
    -h|--help) usage ;;
    *) echo "error: unknown argument $1 (bigjax overrides go after --)." >&2; usage ;;
  esac
  shift
done
require nodes gpus_per_node config workdir
for name in nodes gpus_per_node; do
  if ! [[ "${!name}" =~ ^[1-9][0-9]*$ ]]; then
    echo "error: --$name=${!name} must be a positive integer." >&2
    exit 2
  fi
done

repo="$(cd "$(dirname "$0")/.." && pwd)"
srun_args=(srun --nodes="$nodes" --chdir="$repo" --kill-on-bad-exit=1)
if [ "$per_node" = 1 ]; then
  srun_args+=(--ntasks-per-node=1 --gpus-per-node="$gpus_per_node")
else
  srun_args+=(--ntasks-per-node="$gpus_per_node" --gpus-per-task=1)
fi
[ -n "$partition" ] && srun_args+=(--partition="$partition")
[ -n "$time_limit" ] && srun_args+=(--time="$time_limit")
main_args=(python -m bigjax.main --distributed --config="$config" --workdir="$workdir"
           "${overrides[@]}")
task="$(quote "${main_args[@]}")"
[ -n "$setup" ] && task="$setup && $task"
run_or_print "$print" "$(quote "${srun_args[@]}" bash -c "$task")"
