#!/usr/bin/env bash
# Start a bigjax config on every worker of a Cloud TPU VM (a single host or a pod slice).
#
#   scripts/launch_tpu.sh --tpu=NAME --zone=ZONE --config=configs/X.py[:ARG] --workdir=DIR \
#       [--project=P] [--print] [-- --config.KEY=VALUE ...]
#
# What it does, from the repo root of a git checkout:
#   1. packs the checked-out commit (`git archive HEAD`: committed files only, so every
#      worker runs exactly that commit) into bigjax-<commit>.tar.gz;
#   2. copies it to every worker (`gcloud compute tpus tpu-vm scp --worker=all`);
#   3. on every worker at once (`gcloud compute tpus tpu-vm ssh --worker=all`): unpacks
#      it into ~/bigjax-<commit>, installs it with the TPU and Cloud Storage extras
#      (`pip install -e '.[tpu,gcs]'`), and runs `python -m bigjax.main --distributed
#      --config=... --workdir=...` plus the overrides after `--`. `--distributed` makes every worker join
#      jax.distributed, which finds the pod's coordinator by itself on a TPU VM.
# The workdir must be a folder every worker sees: a gs://bucket/path (the usual choice
# on TPU VMs), or the same path on a shared filesystem.
# Every worker prints to this terminal; the run stops when they all finish. Exit code 75
# means the run was preempted after saving a checkpoint: rerun the same command to
# resume.
#
# --print shows the exact commands and runs nothing.
set -euo pipefail

source "$(dirname "$0")/lib/launch_common.sh"
usage() { usage_lines 2 5; }

tpu="" zone="" project="" config="" workdir="" print=0
overrides=()
while [ $# -gt 0 ]; do
  case "$1" in
    --tpu=*) tpu="${1#*=}" ;;
    --zone=*) zone="${1#*=}" ;;
    --project=*) project="${1#*=}" ;;
    --config=*) config="${1#*=}" ;;
    --workdir=*) workdir="${1#*=}" ;;
    --print) print=1 ;;
    --) shift; overrides=("$@"); break ;;
    -h|--help) usage ;;
    *) echo "error: unknown argument $1 (bigjax overrides go after --)." >&2; usage ;;
  esac
  shift
done
require tpu zone config workdir

repo="$(cd "$(dirname "$0")/.." && pwd)"
if ! commit="$(git -C "$repo" rev-parse --short=12 HEAD 2>/dev/null)"; then
  echo "error: $repo is not a git checkout; launch_tpu.sh ships the checked-out commit." >&2
  exit 2
fi
if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]; then
  echo "warning: uncommitted changes in $repo are not shipped; commit $commit is." >&2
fi

archive="bigjax-$commit.tar.gz"
gcloud_flags=(--zone="$zone" --worker=all)
[ -n "$project" ] && gcloud_flags+=(--project="$project")
main_args=(python -m bigjax.main --distributed --config="$config" --workdir="$workdir"
           "${overrides[@]}")
remote="set -e; mkdir -p ~/bigjax-$commit; tar -xzf ~/$archive -C ~/bigjax-$commit;"
remote+=" cd ~/bigjax-$commit; pip install -q -e '.[tpu,gcs]'; $(quote "${main_args[@]}")"

steps=(
  "$(quote git -C "$repo" archive --format=tar.gz -o "/tmp/$archive" HEAD)"
  "$(quote gcloud compute tpus tpu-vm scp "/tmp/$archive" "$tpu:~/" "${gcloud_flags[@]}")"
  "$(quote gcloud compute tpus tpu-vm ssh "$tpu" "${gcloud_flags[@]}" --command="$remote")"
)
run_or_print "$print" "${steps[@]}"
