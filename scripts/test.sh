#!/usr/bin/env bash
# Configures, builds and tests procpool with the `dev`, `asan` (ASan + UBSan)
# and `tsan` (ThreadSanitizer) presets (see CMakePresets.json; the sanitizers
# and their suppressions: docs/architecture.md, "Sanitizers"), tests the
# installed CMake package from an outside project (scripts/test-package.sh),
# builds and installs procpool as a user does, without a preset
# (scripts/test-plain-build.sh), fuzzes the ring reader and the frame decoder
# for 30 s each (scripts/fuzz.sh), then prints "N passed, N failed" summed over
# all of it (", N skipped" is appended when ctest skipped any).
#
# Each preset's test stage has an overall bound (test_stage_bound) on top of
# ctest's per-test timeouts, so that a hang fails the stage with the name of
# the test that was running rather than eating CI's time; each stage ends with
# its slowest tests.
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

# --- Reading ctest's console output ---------------------------------------
# ctest prints "    Start 12: Suite.Name" when a test starts and
# "12/80 Test #12: Suite.Name ......   Passed    0.31 sec" when it ends
# (***Failed, ***Timeout, ***Skipped, ***Exception: ... in place of Passed).

# The whole run's test stages must fit CI's 45 minutes with the builds, even if
# every preset hangs; today a full run takes about 10 minutes. The sanitizers
# slow the tests several times over, hence the larger bounds.
test_stage_bound() {
  case "$1" in
    dev) echo 420 ;;
    asan) echo 600 ;;
    tsan) echo 900 ;;
    *) echo 600 ;;
  esac
}

# The tests that started and never ended: those running when the bound hit.
unfinished_tests() {
  awk '
    /^ *Start +[0-9]+: / {
      n = $2; sub(/:$/, "", n); name = $0; sub(/^ *Start +[0-9]+: /, "", name)
      started[n] = name; order[++count] = n
    }
    /^ *[0-9]+\/[0-9]+ +Test +#[0-9]+: / {
      n = $0; sub(/^ *[0-9]+\/[0-9]+ +Test +#/, "", n); sub(/:.*/, "", n); ended[n] = 1
    }
    END { for (i = 1; i <= count; i++) if (!(order[i] in ended)) print started[order[i]] }
  ' "$1"
}

# "SECONDS NAME RESULT" for every test that ended, slowest first.
test_times() {
  sed -nE 's/^ *[0-9]+\/[0-9]+ +Test +#[0-9]+: ([^ ]+) [ .]*(\*\*\*)?(.*[^ ]) +([0-9]+\.[0-9]+) sec$/\4 \1 \3/p' "$1" \
    | sort -rn -k1,1
}

# Counts from the per-test lines, for a run cut short before ctest's summary.
count_ended() {
  test_times "$1" | awk -v want="$2" '
    { result = $3 }
    want == "passed" && result == "Passed" { n++ }
    want == "skipped" && result == "Skipped" { n++ }
    want == "failed" && result != "Passed" && result != "Skipped" { n++ }
    END { print n + 0 }
  '
}

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

  bound="$(test_stage_bound "$preset")"
  stage "$preset: test (bound ${bound} s)"
  rc=0
  # timeout signals ctest's whole process group, so the tests and their
  # workers go with it.
  timeout --kill-after=30 "$bound" ctest --preset "$preset" 2>&1 | tee "$log" || rc=$?

  echo "slowest tests ($preset):"
  # awk, not head: head exiting early would SIGPIPE sort, which pipefail turns into an exit.
  test_times "$log" \
    | awk 'NR <= 10 { t = $1; name = $2; $1 = ""; $2 = ""; sub(/^ +/, ""); printf "  %8.2f s  %s (%s)\n", t, name, $0 }'

  # ctest's summary: "100% tests passed, 0 tests failed out of 12"
  summary="$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1 || true)"
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    # Cut short: count what ended, and every test still running as failed.
    hung="$(unfinished_tests "$log")"
    hung_count="$(grep -c . <<<"$hung" || true)"
    echo "test.sh: $preset: the test stage exceeded its bound of ${bound} s; still running:" >&2
    if [ "$hung_count" -gt 0 ]; then
      sed 's/^/  /' <<<"$hung" >&2
    else
      echo "  (none: every test that started had ended; ctest itself hung)" >&2
      hung_count=1
    fi
    total_passed=$((total_passed + $(count_ended "$log" passed)))
    total_skipped=$((total_skipped + $(count_ended "$log" skipped)))
    total_failed=$((total_failed + $(count_ended "$log" failed) + hung_count))
  elif [ -n "$summary" ]; then
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

# The plain build a user makes: no preset, -DBUILD_TESTING=OFF, installed.
stage "plain build"
if bash scripts/test-plain-build.sh; then
  total_passed=$((total_passed + 1))
else
  echo "test.sh: the plain build failed" >&2
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
