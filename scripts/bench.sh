#!/usr/bin/env bash
# Builds the `release` preset and runs a procpool benchmark suite. Every figure is printed in the
# docs/workloads.md line format (`WORKLOAD IMPL FIGURE VALUE UNIT`, median of the rounds with the
# spread), as measured in this run.
#
# Usage: scripts/bench.sh SUITE [--quick] [args...]
#   transport  the shared-memory transport (L1 ping-pong, one-way throughput) next to a bare
#              SPSC ring written the simple way (IMPL=raw-ring); args go to the benchmark binary
#   pool       the task pool through its public API: L1, T1 (futures, callbacks, batch), B1, C1,
#              S1, R1, I1 (procpool-bench-pool), then M1 (`procpool map` over seq 1 1000000);
#              3 rounds, --quick: 1 round and a 2 s I1
#   peers      every workload for procpool and, interleaved round by round in the same run, its
#              peers: Piscina and tinypool (Node, tests/bench/peers/node), ProcessPoolExecutor and
#              multiprocessing.Pool (Python, tests/bench/peers/python), Boost.Interprocess
#              message_queue, an in-process boost::asio::thread_pool (L1, T1; no isolation), the
#              raw spin ring, pipe/socketpair ping-pong, spawn/fork floors
#              (tests/bench/peers/cxx), and for M1 xargs -P2 and GNU parallel -j2. Then
#              scripts/bench_report.py prints the medians, a procpool / peer ratio table and the
#              issue's targets, and writes docs/benchmarks.md and docs/benchmarks.png (and the raw
#              lines of every round to docs/benchmarks-lines.txt).
#              3 rounds; --quick: 1 round, a 2 s I1, GNU parallel over 2,000 lines, the Node and
#              Python peers' own --quick (about 6 minutes on a busy 2-core VM; the full run about
#              15 minutes on a quiet one). The Node and Python rounds take about 2 minutes each.
#              A Node or Python peer that is missing or fails is skipped with a note.
#   all        transport, pool and peers, in that order ([--quick] applies to all three)
#
# Environment (peers): PROCPOOL_BENCH_NODE_WORKLOADS / PROCPOOL_BENCH_PYTHON_WORKLOADS (the
# --workload list given to those peers, default L1,T1,B1,C1,S1,R1,I1), PROCPOOL_BENCH_PEER_TIMEOUT
# (seconds one peer round may take, default 900), PROCPOOL_BENCH_REPORT_DIR (where the .md and
# .png go, default docs).
set -euo pipefail

usage() {
  echo "usage: scripts/bench.sh transport [benchmark args...]" >&2
  echo "       scripts/bench.sh pool [--quick]" >&2
  echo "       scripts/bench.sh peers [--quick]" >&2
  echo "       scripts/bench.sh all [--quick]" >&2
}

if [ "$#" -lt 1 ]; then
  usage
  exit 2
fi

suite="$1"
shift
case "$suite" in
  transport | pool | peers | all) ;;
  -h | --help) usage; exit 0 ;;
  *) usage; exit 2 ;;
esac

quick_flag=0
if [ "$suite" != transport ]; then
  for arg in "$@"; do
    case "$arg" in
      --quick) quick_flag=1 ;;
      *) usage; exit 2 ;;
    esac
  done
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bin=build/release
workers="$bin/worker/examples"

# The peers need packages procpool itself does not: GNU parallel (M1), gnuplot (the chart), and
# Node with npm when missing (Piscina, tinypool; tests/bench/peers/node/install.sh brings the
# modules). nodejs/npm are only asked for when their commands are missing: a NodeSource nodejs
# already ships npm, and Debian's npm package conflicts with it.
peer_packages() {
  local pkgs="parallel gnuplot-nox"
  command -v node >/dev/null 2>&1 || pkgs="$pkgs nodejs"
  command -v npm >/dev/null 2>&1 || pkgs="$pkgs npm"
  echo "$pkgs"
}

if [ "$suite" = peers ] || [ "$suite" = all ]; then
  PROCPOOL_EXTRA_PACKAGES="${PROCPOOL_EXTRA_PACKAGES:+$PROCPOOL_EXTRA_PACKAGES }$(peer_packages)" \
    bash scripts/setup.sh >&2
else
  bash scripts/setup.sh >&2
fi
cmake --preset release >&2

if [ "$suite" = transport ]; then
  cmake --build --preset release -j "$(nproc)" --target procpool-bench-transport >&2
  exec ./build/release/tests/bench/procpool-bench-transport "$@"
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# ---- M1 (shared by the pool and peers suites) ----
# The input (seq 1 1000000) and its expected output, made once.
m1_prepare() {
  if [ ! -f "$tmp/m1_input" ]; then
    seq 1 1000000 >"$tmp/m1_input"
    seq 2 1000001 >"$tmp/m1_expected"
  fi
}

# One M1 round of `procpool map --workers 2` with the increment worker; output checked. Prints
# the rate in lines/s; returns 1 on wrong output.
m1_procpool_round() {
  m1_prepare
  local start_ns end_ns
  start_ns="$(date +%s%N)"
  "$bin/supervisor/tool/procpool" map --workers 2 --no-progress -- \
    "$workers/procpool-worker-increment" <"$tmp/m1_input" >"$tmp/m1_output"
  end_ns="$(date +%s%N)"
  if ! cmp -s "$tmp/m1_output" "$tmp/m1_expected"; then
    echo "bench.sh: M1: procpool map wrote wrong output" >&2
    return 1
  fi
  awk -v ns="$((end_ns - start_ns))" 'BEGIN { printf "%.0f\n", 1000000 / (ns / 1e9) }'
}

run_pool() {
  local rounds=3
  local quick=()
  if [ "$quick_flag" = 1 ]; then
    rounds=1
    quick=(--quick)
  fi
  "$bin/tests/bench/procpool-bench-pool" "$workers" "$rounds" "${quick[@]}"

  # M1: `procpool map --workers 2` over the lines 1..1000000, increment worker, output checked.
  local rates=() rate round
  for ((round = 1; round <= rounds; round++)); do
    rate="$(m1_procpool_round)" || exit 1
    rates+=("$rate")
    echo "M1 round $round/$rounds done" >&2
  done
  local sorted
  mapfile -t sorted < <(printf '%s\n' "${rates[@]}" | sort -n)
  local median="${sorted[$(((${#sorted[@]} - 1) / 2))]}"
  echo "M1 procpool lines_per_s ${median} lines/s (min ${sorted[0]}, max ${sorted[-1]}, n=${#sorted[@]})"
}

# ---- peers ----
peer_failed=0  # one of our own C++ peers failed: the run's exit status says so

note() {
  echo "$*" >>"$tmp/notes"
  echo "bench.sh: note: $*" >&2
}

# Keeps the WORKLOADS lines of a peer's stdout (their first five fields: procpool's own binary
# appends the spread, which is meaningless for one round).
keep_lines() {
  grep -E '^[A-Z][A-Z0-9]* [^ ]+ [^ ]+ [-+0-9.eE]+ [^ ]+' "$1" | awk '{ print $1, $2, $3, $4, $5 }' \
    >>"$tmp/lines" || true
}

# run_impl NAME KIND ROUND CMD...: one round of one implementation. KIND: procpool (a failure
# aborts the run), cxx (our own peer: noted, the run goes on and exits non-zero), external (the
# Node and Python peers: noted and skipped for the rest of the run).
run_impl() {
  local name="$1" kind="$2" round="$3"
  shift 3
  local out="$tmp/out.$name" err="$tmp/err.$name" rc=0 start=$SECONDS
  timeout --kill-after=10 "${PROCPOOL_BENCH_PEER_TIMEOUT:-900}" "$@" >"$out" 2>"$err" || rc=$?
  if [ "$rc" -eq 0 ] && ! grep -qE '^[A-Z][A-Z0-9]* ' "$out"; then
    echo "printed no figure line" >>"$err"
    rc=125
  fi
  if [ "$rc" -ne 0 ]; then
    local why
    why="$(grep -v '^\s*$' "$err" | tail -n 1 | cut -c1-300)"
    [ "$rc" -eq 124 ] && why="timed out after ${PROCPOOL_BENCH_PEER_TIMEOUT:-900} s"
    case "$kind" in
      procpool)
        cat "$err" >&2
        echo "bench.sh: $name failed in round $round (exit $rc): $why" >&2
        exit 1
        ;;
      cxx)
        peer_failed=1
        note "$name failed in round $round (exit $rc): ${why:-no message}; its figures of that round are missing"
        ;;
      external)
        skip_external["$name"]=1
        note "$name failed in round $round (exit $rc): ${why:-no message}; skipped for the rest of the run"
        ;;
    esac
  fi
  # Whatever it printed before failing is still a measured, checked figure.
  keep_lines "$out"
  echo "bench.sh: round $round: $name $((SECONDS - start)) s" >&2
  return 0
}

# M1 peers: a command-line tool starting one process per line, over the first LINES lines;
# output checked after a numeric sort (with two jobs neither tool keeps input order).
m1_cli_round() {
  local name="$1" lines="$2"
  shift 2
  m1_prepare
  head -n "$lines" "$tmp/m1_input" >"$tmp/cli_input"
  seq 2 "$((lines + 1))" >"$tmp/cli_expected"
  local start_ns end_ns rc=0
  start_ns="$(date +%s%N)"
  timeout --kill-after=10 "${PROCPOOL_BENCH_PEER_TIMEOUT:-900}" "$@" <"$tmp/cli_input" \
    >"$tmp/cli_output" 2>"$tmp/err.$name" || rc=$?
  end_ns="$(date +%s%N)"
  if [ "$rc" -ne 0 ]; then
    peer_failed=1
    note "$name failed (exit $rc): $(tail -n 1 "$tmp/err.$name" | cut -c1-300)"
    return 0
  fi
  if ! sort -n "$tmp/cli_output" | cmp -s - "$tmp/cli_expected"; then
    peer_failed=1
    note "$name wrote wrong output; no figure"
    return 0
  fi
  awk -v n="$lines" -v ns="$((end_ns - start_ns))" -v impl="$name" \
    'BEGIN { printf "M1 %s lines_per_s %.0f lines/s\n", impl, n / (ns / 1e9) }' >>"$tmp/lines"
  echo "bench.sh: $name: $lines lines in $(((end_ns - start_ns) / 1000000)) ms" >&2
}

declare -A skip_external=()

run_peers() {
  local rounds=3 quick=() parallel_lines=20000 xargs_lines=20000
  if [ "$quick_flag" = 1 ]; then
    # One round: the Node and Python peers alone take about 4 minutes a round on a busy VM, and
    # --quick must stay under 10 minutes.
    rounds=1
    quick=(--quick)
    parallel_lines=2000
  fi
  local started=$SECONDS
  local peers_dir=build/release/tests/bench/peers/cxx
  local node_workloads="${PROCPOOL_BENCH_NODE_WORKLOADS:-L1,T1,B1,C1,S1,R1,I1}"
  local python_workloads="${PROCPOOL_BENCH_PYTHON_WORKLOADS:-L1,T1,B1,C1,S1,R1,I1}"
  : >"$tmp/lines"
  : >"$tmp/notes"

  cmake --build --preset release -j "$(nproc)" --target procpool-bench-pool procpool \
    procpool-worker-increment procpool-peers-cxx >&2

  # The Node peers: their install step once, before any round.
  local have_node=0 have_python=0
  if [ ! -f tests/bench/peers/node/bench.mjs ]; then
    note "node peers (piscina, tinypool): skipped, tests/bench/peers/node/bench.mjs not found"
  elif ! command -v node >/dev/null 2>&1; then
    note "node peers (piscina, tinypool): skipped, node is not installed"
  elif [ -f tests/bench/peers/node/install.sh ] &&
       ! bash tests/bench/peers/node/install.sh >"$tmp/node-install.log" 2>&1; then
    note "node peers (piscina, tinypool): skipped, tests/bench/peers/node/install.sh failed: $(tail -n 1 "$tmp/node-install.log" | cut -c1-300)"
  else
    have_node=1
  fi
  if [ ! -f tests/bench/peers/python/bench.py ]; then
    note "python peers (ProcessPoolExecutor, multiprocessing.Pool): skipped, tests/bench/peers/python/bench.py not found"
  elif ! command -v python3 >/dev/null 2>&1; then
    note "python peers: skipped, python3 is not installed"
  else
    have_python=1
  fi
  local have_parallel=0
  if parallel --version 2>/dev/null | head -n 1 | grep -q 'GNU parallel'; then
    have_parallel=1
  else
    note "M1 parallel-j2: skipped, GNU parallel is not installed (Debian package parallel)"
  fi

  # Every implementation once per round; the order rotates from round to round so that no
  # implementation always runs right after the same neighbour.
  local impls=(procpool procpool-m1 boost-mq asio-pool pipe raw-ring floors node python xargs
    parallel)
  local round i k n=${#impls[@]}
  for ((round = 1; round <= rounds; round++)); do
    for ((k = 0; k < n; k++)); do
      i="${impls[$(((k + round - 1) % n))]}"
      case "$i" in
        procpool)
          run_impl procpool procpool "$round" \
            "$bin/tests/bench/procpool-bench-pool" "$workers" 1 "${quick[@]}"
          ;;
        procpool-m1)
          local rate
          rate="$(m1_procpool_round)" || exit 1
          echo "M1 procpool lines_per_s $rate lines/s" >>"$tmp/lines"
          echo "bench.sh: round $round: procpool map $rate lines/s" >&2
          ;;
        boost-mq) run_impl boost-mq cxx "$round" "$peers_dir/procpool-peer-boost-mq" "${quick[@]}" ;;
        asio-pool) run_impl asio-pool cxx "$round" "$peers_dir/procpool-peer-asio-pool" ;;
        pipe) run_impl pipe cxx "$round" "$peers_dir/procpool-peer-pipe" ;;
        raw-ring) run_impl raw-ring cxx "$round" "$peers_dir/procpool-peer-raw-ring" ;;
        floors) run_impl floors cxx "$round" "$peers_dir/procpool-peer-floors" ;;
        node)
          if [ "$have_node" = 1 ] && [ -z "${skip_external[node]:-}" ]; then
            run_impl node external "$round" node tests/bench/peers/node/bench.mjs \
              --workload "$node_workloads" "${quick[@]}"
          fi
          ;;
        python)
          if [ "$have_python" = 1 ] && [ -z "${skip_external[python]:-}" ]; then
            run_impl python external "$round" python3 tests/bench/peers/python/bench.py \
              --workload "$python_workloads" "${quick[@]}"
          fi
          ;;
        xargs)
          m1_cli_round xargs-P2 "$xargs_lines" xargs -P2 -n1 "$peers_dir/procpool-peer-tiny-static"
          ;;
        parallel)
          if [ "$have_parallel" = 1 ]; then
            m1_cli_round parallel-j2 "$parallel_lines" \
              parallel --will-cite -j2 "$peers_dir/procpool-peer-tiny-static"
          fi
          ;;
      esac
    done
    echo "bench.sh: peers round $round/$rounds done ($((SECONDS - started)) s)" >&2
  done

  local report_dir="${PROCPOOL_BENCH_REPORT_DIR:-docs}"
  mkdir -p "$report_dir"
  local report_args=(--lines "$tmp/lines" --notes "$tmp/notes" --rounds "$rounds"
    --duration "$((SECONDS - started))" --xargs-lines "$xargs_lines"
    --parallel-lines "$parallel_lines" --md "$report_dir/benchmarks.md"
    --png "$report_dir/benchmarks.png" --root "$PWD")
  [ "$quick_flag" = 1 ] && report_args+=(--quick)
  python3 scripts/bench_report.py "${report_args[@]}"
  # Every round's raw figure lines next to the report, so it can be regenerated and checked.
  cp "$tmp/lines" "$report_dir/benchmarks-lines.txt"
  echo "bench.sh: peers suite took $((SECONDS - started)) s" >&2
  if [ "$peer_failed" = 1 ]; then
    echo "bench.sh: some C++ peer or M1 tool failed (see the notes above)" >&2
    return 1
  fi
}

case "$suite" in
  pool)
    # Builds everything, as it always has.
    cmake --build --preset release -j "$(nproc)" >&2
    run_pool
    ;;
  peers)
    run_peers
    ;;
  all)
    cmake --build --preset release -j "$(nproc)" >&2
    status=0
    transport_args=()
    [ "$quick_flag" = 1 ] && transport_args=(1)
    echo "== transport ==" >&2
    ./build/release/tests/bench/procpool-bench-transport "${transport_args[@]}" || status=1
    echo "== pool ==" >&2
    run_pool
    echo "== peers ==" >&2
    run_peers || status=1
    exit "$status"
    ;;
esac
