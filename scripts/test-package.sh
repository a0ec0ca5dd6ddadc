#!/usr/bin/env bash
# Tests procpool as an installed CMake package, the way an outside project uses it:
#   1. configures and builds procpool with the `release` preset (build/release, reused if present),
#   2. installs it into a temporary prefix,
#   3. configures and builds tests/package (a worker on procpool::worker, a supervisor on
#      procpool::supervisor) against that prefix with find_package(procpool CONFIG REQUIRED),
#   4. runs the supervisor on the worker and checks the result,
#   5. checks that the installed headers, compiled below C++20, stop at once with one clear message
#      (tests/package/require_cxx20_test.sh).
# Prints "package test: ok" on success; exits non-zero on any failure. The prefix and the consumer
# build are removed on exit.
#
# Usage: scripts/test-package.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

fail() { echo "test-package.sh: $*" >&2; exit 1; }
stage() { printf '\n==== %s ====\n' "$*"; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"
consumer_build="$work/consumer"

stage "package: build procpool (release)"
cmake --preset release
cmake --build --preset release -j "$(nproc)"

stage "package: install into $prefix"
cmake --install build/release --prefix "$prefix"

config="$(find "$prefix" -path '*/cmake/procpool/procpoolConfig.cmake' -print -quit)"
[ -n "$config" ] || fail "no procpoolConfig.cmake under $prefix"
[ -f "$prefix/include/procpool/pool.hpp" ] || fail "headers not installed"
compgen -G "$prefix/bin/procpool-worker-*" >/dev/null || fail "example workers not installed"
# The warnings/sanitizer flags target must stay out of the installed package.
if grep -rq 'build_flags' "$(dirname "$config")"; then
  fail "installed package references procpool::build_flags"
fi
if [ -x "$prefix/bin/procpool" ]; then
  echo "installed: bin/procpool"
else
  echo "note: no bin/procpool installed (the procpool target does not exist in this build)"
fi

stage "package: configure and build tests/package against the install"
cmake -S tests/package -B "$consumer_build" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_COMPILER=g++ \
  -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON
found_dir="$(sed -n 's/^procpool_DIR:PATH=//p' "$consumer_build/CMakeCache.txt")"
case "$found_dir" in
  "$prefix"/*) ;;
  *) fail "find_package(procpool) used '$found_dir', not the install in $prefix" ;;
esac
cmake --build "$consumer_build" -j "$(nproc)"

stage "package: run"
timeout 60 "$consumer_build/consumer_main" "$consumer_build/consumer_worker" \
  || fail "consumer_main failed (exit $?)"
timeout 60 "$consumer_build/consumer_supervisor" \
  || fail "consumer_supervisor failed (exit $?)"

stage "package: the installed headers below C++20"
bash tests/package/require_cxx20_test.sh g++ "$prefix/include" \
  || fail "the C++20 check of the installed headers failed"

echo "package test: ok"
