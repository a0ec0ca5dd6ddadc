#!/usr/bin/env bash
# Builds the libFuzzer targets (the `fuzz` preset: clang, ASan + UBSan) and runs each one for a
# bounded time over a temporary copy of its seed corpus, tests/fuzz/corpus/<target>/ (the
# checked-in corpus is never modified). Prints one line per target: executions and result.
# Exits 1 if any target crashed, leaked, timed out or ran out of memory; the input that did it
# is kept under build/fuzz/artifacts/<target>/ and the line names it. Reproducing a crash:
# docs/testing.md.
#
# Usage: scripts/fuzz.sh [SECONDS]   fuzzing time per target, default 60
set -euo pipefail

usage() { echo "usage: scripts/fuzz.sh [SECONDS per target, default 60]" >&2; }

seconds=60
if [ "$#" -gt 1 ]; then
  usage
  exit 2
elif [ "$#" -eq 1 ]; then
  case "$1" in
    -h|--help) usage; exit 0 ;;
    ''|*[!0-9]*) usage; exit 2 ;;
    *) seconds="$((10#$1))" ;;
  esac
  # libFuzzer reads -max_total_time=0 as "no limit".
  if [ "$seconds" -eq 0 ]; then
    usage
    exit 2
  fi
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."

targets=(ring_reader_fuzz frame_decoder_fuzz)
build=build/fuzz

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

bash scripts/setup.sh

# Configure and build quietly; show everything if either fails.
if ! { cmake --preset fuzz && cmake --build --preset fuzz -j "$(nproc)"; } >"$work/build.log" 2>&1; then
  cat "$work/build.log" >&2
  echo "fuzz.sh: configuring or building the fuzz preset failed" >&2
  exit 1
fi

export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"

status=0
for target in "${targets[@]}"; do
  corpus="$work/corpus-$target"
  cp -R "tests/fuzz/corpus/$target" "$corpus"
  seeds="$(find "$corpus" -type f | wc -l)"
  artifacts="$build/artifacts/$target"
  log="$build/logs/$target.log"
  mkdir -p "$artifacts" "$(dirname "$log")"

  rc=0
  "$build/tests/fuzz/$target" "$corpus" \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" >"$log" 2>&1 || rc=$?

  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
  if [ "$rc" -eq 0 ]; then
    inputs="$(find "$corpus" -type f | wc -l)"
    echo "$target: ok, ${execs:-?} executions (${rate:-?}/s) in ${seconds} s," \
         "corpus ${seeds} -> ${inputs} inputs"
    continue
  fi

  status=1
  # libFuzzer names the input it saved: "Test unit written to <prefix>crash-<sha1>".
  artifact="$(sed -n 's/^.*Test unit written to //p' "$log" | tail -n 1)"
  if [ -n "$artifact" ]; then
    kind="$(basename "$artifact")"
    kind="${kind%%-*}"  # crash, leak, timeout, oom
    # The report: from the sanitizer's or the fuzz check's first line to libFuzzer's summary.
    sed -n '/fuzz check failed\|^==[0-9]*==\|runtime error:/,/^SUMMARY/p' "$log" >&2
    echo "$target: FAILED ($kind) after ${execs:-?} executions; input: $artifact;" \
         "reproduce: $build/tests/fuzz/$target $artifact; log: $log"
  else
    tail -n 30 "$log" >&2
    echo "$target: FAILED (exit $rc) after ${execs:-?} executions, no input saved; log: $log"
  fi
done
exit "$status"
