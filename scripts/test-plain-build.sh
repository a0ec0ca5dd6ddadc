#!/usr/bin/env bash
# Builds and installs procpool the way a user does, with no preset and no options beyond the usual
# two (the default generator and compiler, and none of the dev presets' -Werror):
#   cmake -S . -B BUILD -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF
#   cmake --build BUILD
#   cmake --install BUILD --prefix PREFIX
# from this source tree into temporary directories, then checks the install tree: the headers,
# the three static libraries, the CMake package, the procpool tool and the example workers; that
# the build printed no warning and made no tests, benchmarks or peers; and that the installed
# tool runs the installed increment worker. Prints "plain build: ok" on success; exits non-zero on any failure. The
# temporary directories are removed on exit.
#
# Usage: scripts/test-plain-build.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

fail() { echo "test-plain-build.sh: $*" >&2; exit 1; }
stage() { printf '\n==== %s ====\n' "$*"; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
build="$work/build"
prefix="$work/prefix"

stage "plain build: configure"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF

stage "plain build: build"
# Parallel only to keep CI short; the build is the same as a user's serial one.
cmake --build "$build" --parallel "$(nproc)" 2>&1 | tee "$work/build.log"
# Warnings do not fail a user's build, but this is CI's only -O3 build, and GCC reports some
# (-Wrestrict) only at -O3: what the -Werror presets cannot see must not reach users either.
if grep -q 'warning:' "$work/build.log"; then
  fail "the plain build printed compiler warnings (above)"
fi

stage "plain build: install into $prefix"
cmake --install "$build" --prefix "$prefix"

stage "plain build: check the install tree"
for header in procpool/pool.hpp procpool/worker.hpp procpool/detail/require_cxx20.hpp; do
  [ -f "$prefix/include/$header" ] || fail "header $header not installed"
done
for library in common worker supervisor; do
  [ -n "$(find "$prefix" -name "libprocpool_$library.a" -print -quit)" ] \
    || fail "library libprocpool_$library.a not installed"
done
config="$(find "$prefix" -path '*/cmake/procpool/procpoolConfig.cmake' -print -quit)"
[ -n "$config" ] || fail "no procpoolConfig.cmake under $prefix"
for file in procpoolConfigVersion.cmake procpoolTargets.cmake; do
  [ -f "$(dirname "$config")/$file" ] || fail "$file not installed next to procpoolConfig.cmake"
done
[ -x "$prefix/bin/procpool" ] || fail "bin/procpool not installed"
for example in echo fib increment checksum crashy; do
  [ -x "$prefix/bin/procpool-worker-$example" ] || fail "bin/procpool-worker-$example not installed"
done

# A consumer's build makes the libraries, the tool and the example workers, nothing else.
built_extra="$(find "$build" -type f -perm -u+x \( -name 'procpool_*tests' -o -name 'procpool-bench-*' \
  -o -name 'procpool-peer-*' -o -name 'procpool-soak' -o -name 'procpool-transport-demo' \) -print)"
[ -z "$built_extra" ] || fail "the plain build made tests, benchmarks or peers: $built_extra"

stage "plain build: run the installed tool"
"$prefix/bin/procpool" --version
expected="$(seq 2 101)"
actual="$(seq 1 100 | timeout 60 "$prefix/bin/procpool" map --workers 2 -- \
  "$prefix/bin/procpool-worker-increment")" || fail "procpool map failed (exit $?)"
[ "$actual" = "$expected" ] || fail "procpool map with the installed worker gave wrong results"

echo "plain build: ok"
