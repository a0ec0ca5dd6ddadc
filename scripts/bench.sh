#!/usr/bin/env bash
# Builds (release preset) and runs a procpool benchmark suite.
#
# Usage: scripts/bench.sh SUITE [benchmark args...]
#   SUITE: transport   (more suites will be added later)
# Extra args go to the benchmark binary, e.g.
#   scripts/bench.sh transport --benchmark_filter=Ring
set -euo pipefail

usage() {
  echo "usage: scripts/bench.sh transport [benchmark args...]" >&2
}

if [ "$#" -lt 1 ]; then
  usage
  exit 2
fi

suite="$1"
shift
case "$suite" in
  transport) ;;
  *) usage; exit 2 ;;
esac

cd "$(dirname "${BASH_SOURCE[0]}")/.."

target="procpool-bench-${suite}"

bash scripts/setup.sh
cmake --preset release
cmake --build --preset release -j "$(nproc)" --target "$target"

exec "./build/release/tests/bench/${target}" "$@"
