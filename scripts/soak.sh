#!/usr/bin/env bash
# Runs the chaos workload for MINUTES minutes (not part of CI): increments through a pool of two
# crashy workers (20 µs of work each) while a random worker is SIGKILLed every 50-250 ms, with
# retries. Reports tasks, kills, restarts, lost and duplicated answers, the supervisor's RSS at
# start and end, and any anomaly (zombies, stray fds in workers, /dev/shm leftovers). Exits 0 on a
# clean run, 1 otherwise.
#
# Usage: scripts/soak.sh MINUTES [--spin-us N] [--workers N] [--seed N]
set -euo pipefail

usage() { echo "usage: scripts/soak.sh MINUTES [--spin-us N] [--workers N] [--seed N]" >&2; }

if [ "$#" -lt 1 ] || ! [[ "$1" =~ ^[0-9]+$ ]] || [ "$1" -eq 0 ]; then
  usage
  exit 2
fi
minutes="$1"
shift

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh >&2
cmake --preset release >&2
cmake --build --preset release -j "$(nproc)" --target procpool-soak procpool-worker-crashy >&2

echo "soak: ${minutes} min, started $(date -u +%Y-%m-%dT%H:%M:%SZ)" >&2
exec ./build/release/tests/chaos/procpool-soak build/release/worker/examples/procpool-worker-crashy \
  "$minutes" --spin-us 20 "$@"
