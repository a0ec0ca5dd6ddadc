#!/usr/bin/env bash
# Builds procpool (release preset) and runs its main job, `procpool map`, on built-in sample input:
#   1. fib(25) .. fib(40) (naive recursion) by a pool of fib worker processes, in input order;
#   2. a million lines through the increment worker, output checked, with the --stats summary
#      (tasks, failed, retried, restarts, lines/s);
#   3. the sample daemon config (docs/examples/procpool.toml): checked, then run as a daemon,
#      its status printed, a change reloaded (a rolling update), its metrics scraped, and shut
#      down.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
cmake --preset release
cmake --build --preset release -j "$(nproc)"

procpool=build/release/supervisor/tool/procpool
workers=build/release/worker/examples
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo
echo "==== procpool map: fib(25..40) on $(nproc) worker processes ===="
echo "\$ seq 25 40 | procpool map --stats -- procpool-worker-fib"
seq 25 40 >"$tmp/fib-input"
"$procpool" map --stats --no-progress -- "$workers/procpool-worker-fib" \
  <"$tmp/fib-input" >"$tmp/fib-output"
paste "$tmp/fib-input" "$tmp/fib-output" | awk '{ printf "  fib(%s) = %s\n", $1, $2 }'

echo
echo "==== procpool map: 1,000,000 lines through the increment worker ===="
echo "\$ seq 1 1000000 | procpool map --workers 2 --stats -- procpool-worker-increment"
seq 1 1000000 >"$tmp/input"
"$procpool" map --workers 2 --stats --no-progress -- "$workers/procpool-worker-increment" \
  <"$tmp/input" >"$tmp/output"
if cmp -s "$tmp/output" <(seq 2 1000001); then
  echo "  output checked: 1,000,000 lines, each the input plus one, in input order"
  echo "  first lines: $(head -n 3 "$tmp/output" | paste -sd' ')  last: $(tail -n 1 "$tmp/output")"
else
  echo "demo.sh: the output is not what it should be" >&2
  exit 1
fi

echo
echo "==== procpool check: the sample daemon config (docs/examples/procpool.toml) ===="
echo "\$ procpool check docs/examples/procpool.toml"
PATH="$PWD/$workers:$PATH" "$procpool" check docs/examples/procpool.toml | sed 's/^/  /'

echo
echo "==== procpool run: the same config as a daemon: status, a reload, metrics, shutdown ===="
socket="$tmp/procpool.sock"
config="$tmp/procpool.toml"
cp docs/examples/procpool.toml "$config"
echo "\$ procpool run --metrics 0 procpool.toml &   # (a copy of docs/examples/procpool.toml)"
PATH="$PWD/$workers:$PATH" "$procpool" run --socket "$socket" --metrics 0 "$config" \
  2>"$tmp/daemon.log" &
daemon=$!
# Until every program is ready (bounded: 10 s).
for _ in $(seq 100); do
  grep -q 'every program is ready' "$tmp/daemon.log" 2>/dev/null && break
  sleep 0.1
done
echo "\$ procpool status"
"$procpool" status --socket "$socket" | sed 's/^/  /'
echo "# greeter changed: another greeting, and two instances"
sed -i -e 's/GREETER_NAME = "procpool"/GREETER_NAME = "procpool, reloaded"/' \
  -e '/^name = "greeter"/a numprocs = 2' "$config"
echo "\$ procpool reload   # greeter replaced one instance at a time, each new one ready first"
"$procpool" reload --socket "$socket" | sed 's/^/  /'
echo "\$ procpool status"
"$procpool" status --socket "$socket" | sed 's/^/  /'
url=$(grep -o 'http://[^ ]*/metrics' "$tmp/daemon.log" | head -1)
echo "\$ curl -s $url | grep '^procpool_program_up{'"
curl -s "$url" | grep '^procpool_program_up{' | sed 's/^/  /'
echo "\$ procpool shutdown"
"$procpool" shutdown --socket "$socket"
wait "$daemon"
echo "  the daemon's log:"
sed 's/^/  /' "$tmp/daemon.log"
