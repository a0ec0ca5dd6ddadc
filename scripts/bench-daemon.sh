#!/usr/bin/env bash
# The daemon's figures (issue: `procpool run`): start-up of a 10-program config, a reload that
# changes all 10 (rolling, one instance at a time), a /metrics scrape, a status round trip, and
# the daemon's RSS. Medians of ROUNDS rounds (default 5), printed in the docs/workloads.md line
# format (`WORKLOAD IMPL FIGURE VALUE UNIT`); copied into docs/benchmarks.md by hand.
#
# Usage: scripts/bench-daemon.sh [ROUNDS]   (builds the release preset first)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-5}"
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target procpool >/dev/null
procpool="$PWD/build/release/supervisor/tool/procpool"
tmp="$(mktemp -d)"
daemon=""
cleanup() {
  [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

config() {  # config VERSION: 10 programs, each a shell that sleeps
  for i in $(seq 10); do
    printf '[[program]]\nname = "p%d"\ncommand = "/bin/sh"\nargs = ["-c", "exec sleep 3600"]\n' "$i"
    printf 'env = { VERSION = "%s" }\n' "$1"
  done
}
now_ms() { date +%s%3N; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

: >"$tmp/startup" >"$tmp/reload" >"$tmp/scrape" >"$tmp/status" >"$tmp/rss"
for _ in $(seq "$rounds"); do
  config 1 >"$tmp/c.toml"
  start=$(now_ms)
  "$procpool" run --socket "$tmp/s.sock" --metrics 0 "$tmp/c.toml" 2>"$tmp/log" &
  daemon=$!
  until grep -q 'every program is ready' "$tmp/log"; do sleep 0.001; done
  echo $(($(now_ms) - start)) >>"$tmp/startup"
  config 2 >"$tmp/c.toml"
  "$procpool" reload --socket "$tmp/s.sock" | awk '/done in/ { print $3 * 1000 }' >>"$tmp/reload"
  url=$(grep -o 'http://[^ ]*/metrics' "$tmp/log" | head -1)
  for _ in $(seq 100); do curl -s -o /dev/null -w '%{time_total}\n' "$url"; done |
    median | awk '{ print $1 * 1000 }' >>"$tmp/scrape"
  for _ in $(seq 20); do
    s=$(date +%s%N)
    "$procpool" status --socket "$tmp/s.sock" >/dev/null
    echo $((($(date +%s%N) - s) / 1000))
  done | median | awk '{ print $1 / 1000 }' >>"$tmp/status"
  awk '/VmRSS/ { print $2 / 1024 }' "/proc/$daemon/status" >>"$tmp/rss"
  "$procpool" shutdown --socket "$tmp/s.sock"
  wait "$daemon" || true
  daemon=""
done
echo "D1 procpool startup_10_programs $(median <"$tmp/startup") ms"
echo "D2 procpool reload_10_programs $(median <"$tmp/reload") ms"
echo "D3 procpool metrics_scrape $(median <"$tmp/scrape") ms"
echo "D4 procpool status_round_trip $(median <"$tmp/status") ms"
echo "D5 procpool daemon_rss $(median <"$tmp/rss") MiB"
