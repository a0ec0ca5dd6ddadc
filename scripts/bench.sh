#!/usr/bin/env bash
# Builds the `release` preset and runs a procpool benchmark suite. Every figure is printed in the
# WORKLOADS.md line format (`WORKLOAD IMPL FIGURE VALUE UNIT`, median of the rounds with the
# spread), as measured in this run.
#
# Usage: scripts/bench.sh SUITE [--quick] [args...]
#   transport  the shared-memory transport (L1 ping-pong, one-way throughput) next to a bare
#              SPSC ring written the simple way (IMPL=raw-ring); args go to the benchmark binary
#   pool       the task pool through its public API: L1, T1 (futures, callbacks, batch), B1, C1,
#              S1, R1, I1 (procpool-bench-pool), then M1 (`procpool map` over seq 1 1000000);
#              3 rounds, --quick: 1 round and a 2 s I1
set -euo pipefail

usage() {
  echo "usage: scripts/bench.sh transport [benchmark args...]" >&2
  echo "       scripts/bench.sh pool [--quick]" >&2
}

if [ "$#" -lt 1 ]; then
  usage
  exit 2
fi

suite="$1"
shift
case "$suite" in
  transport | pool) ;;
  -h | --help) usage; exit 0 ;;
  *) usage; exit 2 ;;
esac

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh >&2
cmake --preset release >&2

if [ "$suite" = transport ]; then
  cmake --build --preset release -j "$(nproc)" --target procpool-bench-transport >&2
  exec ./build/release/tests/bench/procpool-bench-transport "$@"
fi

# ---- pool ----
rounds=3
quick=()
for arg in "$@"; do
  case "$arg" in
    --quick) rounds=1; quick=(--quick) ;;
    *) usage; exit 2 ;;
  esac
done

cmake --build --preset release -j "$(nproc)" >&2
bin=build/release
workers="$bin/worker/examples"

"$bin/tests/bench/procpool-bench-pool" "$workers" "$rounds" "${quick[@]}"

# M1: `procpool map --workers 2` over the lines 1..1000000, increment worker, output checked.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
seq 1 1000000 >"$tmp/input"
seq 2 1000001 >"$tmp/expected"
rates=()
for ((round = 1; round <= rounds; round++)); do
  start_ns="$(date +%s%N)"
  "$bin/supervisor/tool/procpool" map --workers 2 --no-progress -- \
    "$workers/procpool-worker-increment" <"$tmp/input" >"$tmp/output"
  end_ns="$(date +%s%N)"
  if ! cmp -s "$tmp/output" "$tmp/expected"; then
    echo "bench.sh: M1: procpool map wrote wrong output" >&2
    exit 1
  fi
  rates+=("$(awk -v ns="$((end_ns - start_ns))" 'BEGIN { printf "%.0f", 1000000 / (ns / 1e9) }')")
  echo "M1 round $round/$rounds done" >&2
done
sorted=($(printf '%s\n' "${rates[@]}" | sort -n))
median="${sorted[$(((${#sorted[@]} - 1) / 2))]}"
echo "M1 procpool lines_per_s ${median} lines/s (min ${sorted[0]}, max ${sorted[-1]}, n=${#sorted[@]})"
