#!/usr/bin/env bash
# Configures, builds and tests procpool with the `dev`, `asan` (ASan + UBSan)
# and `tsan` (ThreadSanitizer) presets (see CMakePresets.json; the sanitizers
# and their suppressions: docs/architecture.md, "Sanitizers"), tests the
# installed CMake package from an outside project (scripts/test-package.sh),
# fuzzes the ring reader and the frame decoder for 30 s each (scripts/fuzz.sh),
# then prints "N passed, N failed" summed over all of it (", N skipped" is
# appended when ctest skipped any).
#
# Usage: scripts/test.sh [--quick]
#   --quick   only the dev preset (no sanitizer build, no fuzzing)
set -euo pipefail

usage() { echo "usage: scripts/test.sh [--quick]" >&2; }

presets=(dev asan tsan)
fuzz=1
for arg in "$@"; do
  case "$arg" in
    --quick) presets=(dev); fuzz=0 ;;
    -h|--help) usage; exit 0 ;;
    *) usage; exit 2 ;;
  esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

stage() { printf '\n==== %s ====\n' "$*"; }

stage "setup"
bash scripts/setup.sh

total_passed=0
total_failed=0
total_skipped=0
status=0

for preset in "${presets[@]}"; do
  stage "$preset: configure"
  cmake --preset "$preset"

  stage "$preset: build"
  cmake --build --preset "$preset" -j "$(nproc)"

  stage "$preset: test"
  rc=0
  ctest --preset "$preset" 2>&1 | tee "$log" || rc=$?

  # ctest's summary: "100% tests passed, 0 tests failed out of 12"
  summary="$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1 || true)"
  if [ -n "$summary" ]; then
    failed="$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$summary")"
    total="$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$summary")"
    # ctest counts skipped tests (SKIP_RETURN_CODE etc.) as passed; they are
    # listed under "The following tests did not run:" as "N - name (Skipped)".
    skipped="$(grep -cE '^[[:space:]]+[0-9]+ - .+ \(Skipped\)$' "$log" || true)"
    total_passed=$((total_passed + total - failed - skipped))
    total_failed=$((total_failed + failed))
    total_skipped=$((total_skipped + skipped))
  elif [ "$rc" -ne 0 ]; then
    # No summary (e.g. no tests found, or ctest itself failed): count the
    # preset as one failure so the closing line never hides it.
    echo "test.sh: ctest --preset $preset failed (exit $rc) without a summary line" >&2
    total_failed=$((total_failed + 1))
  fi

  if [ "$rc" -ne 0 ]; then
    echo "test.sh: tests failed for preset $preset (exit $rc)" >&2
    status=1
  fi
done

# The installed package, used from an outside project (find_package(procpool CONFIG)).
stage "package"
if bash scripts/test-package.sh; then
  total_passed=$((total_passed + 1))
else
  echo "test.sh: the package test failed" >&2
  total_failed=$((total_failed + 1))
  status=1
fi

# libFuzzer over the ring reader and the frame decoder, 30 s per target; any
# crash, leak or timeout fails it (scripts/fuzz.sh names the saved input).
if [ "$fuzz" -eq 1 ]; then
  stage "fuzz"
  if bash scripts/fuzz.sh 30; then
    total_passed=$((total_passed + 1))
  else
    echo "test.sh: fuzzing failed" >&2
    total_failed=$((total_failed + 1))
    status=1
  fi
fi

stage "summary"
if [ "$total_skipped" -gt 0 ]; then
  echo "${total_passed} passed, ${total_failed} failed, ${total_skipped} skipped"
else
  echo "${total_passed} passed, ${total_failed} failed"
fi
exit "$status"
