#!/usr/bin/env bash
# Runs the chaos workload (not part of CI): increments of 0.2 ms each through a pool of two
# crashy workers, with default options apart from max_attempts (6), while a random worker is
# SIGKILLed every 100-250 ms. Reports tasks, kills, restarts, retried, failed, lost and
# duplicated answers, the supervisor's RSS at start and end, the stream's wall time and any
# anomaly (zombies, stray fds in workers, /dev/shm leftovers).
#
#   scripts/soak.sh MINUTES [FLAGS]     with kills for MINUTES minutes
#   scripts/soak.sh --tasks N [FLAGS]   N tasks without kills, then N with kills: both wall
#                                       times and their ratio (issue 10: 200000, at most 1.3x)
#
# FLAGS (procpool-soak): --spin-us N --workers N --kill-min-ms N --kill-max-ms N
# --max-attempts N --seed N --no-baseline. Exits 0 on a clean run, 1 otherwise, 2 on usage.
set -euo pipefail

usage() {
  echo "usage: scripts/soak.sh MINUTES [FLAGS] | scripts/soak.sh --tasks N [FLAGS]" >&2
}

if [ "$#" -lt 1 ]; then
  usage
  exit 2
fi
if [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -gt 0 ]; then
  run=(--minutes "$1")
  shift
elif [ "$1" = "--tasks" ] && [ "$#" -ge 2 ]; then
  run=(--tasks "$2")
  shift 2
else
  usage
  exit 2
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh >&2
cmake --preset release >&2
cmake --build --preset release -j "$(nproc)" --target procpool-soak procpool-worker-crashy >&2

echo "soak: ${run[*]} $*, started $(date -u +%Y-%m-%dT%H:%M:%SZ)" >&2
exec ./build/release/tests/chaos/procpool-soak build/release/worker/examples/procpool-worker-crashy \
  "${run[@]}" "$@"
