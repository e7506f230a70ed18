#!/usr/bin/env bash
# For maintainers running a long grid over several sessions: take stage names one at a time from a
# queue file (one per line, first line first), run each with DVC, and commit it the moment it
# finishes (dvc.lock and the outputs it records), with its wall time in the message, so that a
# session stopped mid-grid loses at most the stages in flight (and those resume from
# data/checkpoints/ on the same machine).
#
#     tools/grid_worker.sh QUEUE &  tools/grid_worker.sh QUEUE &   # two side by side, one torch thread each
#     touch QUEUE.stop                                             # each stops after its current stage
#
# Workers share QUEUE through a lock, and take turns at git. A failed stage is logged to QUEUE.log and
# skipped; its DVC output is in QUEUE.logs/<stage>.log. Needs the Makefile's environment (make setup).
set -uo pipefail
queue=$(realpath "$1")
cd "$(dirname "$0")/.." || exit 1
export PATH=$PWD/.venv/bin:$PATH DVC_NO_ANALYTICS=1
mkdir -p "$queue.logs"
while [ ! -e "$queue.stop" ]; do
  stage=$(flock "$queue.lock" bash -c 'head -n 1 "$0"; sed -i 1d "$0"' "$queue")
  [ -n "$stage" ] || break
  echo "$(date -u +%FT%T) start $stage" >> "$queue.log"
  start=$(date +%s)
  if dvc --wait-for-lock repro --single-item "$stage" > "$queue.logs/$stage.log" 2>&1; then
    s=$(( $(date +%s) - start ))
    outs=$(python -c 'import sys, yaml; print(*(o["path"] for o in yaml.safe_load(open("dvc.lock"))["stages"][sys.argv[1]]["outs"]))' "$stage")
    message="$stage finished: $((s / 60))m$((s % 60))s wall, $(nproc) cores, $(python -c 'import torch; print(torch.backends.cpu.get_cpu_capability())') CPU"
    # shellcheck disable=SC2086  # outs: a space-separated list of paths
    flock "$queue.git.lock" bash -c 'git add -- "$@" && git commit -q -m "$0" -- "$@"' "$message" dvc.lock $outs
    echo "$(date -u +%FT%T) done $stage $((s / 60))m$((s % 60))s" >> "$queue.log"
  else
    echo "$(date -u +%FT%T) FAILED $stage" >> "$queue.log"
  fi
done
