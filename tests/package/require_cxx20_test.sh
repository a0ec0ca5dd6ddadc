#!/usr/bin/env bash
# Checks that every public procpool header, compiled below C++20, stops at once with the one
# message of procpool/detail/require_cxx20.hpp instead of a cascade of unrelated errors, and that
# the same headers compile at C++20.
#   1. every public header includes procpool/detail/require_cxx20.hpp as its first #include;
#   2. a file including just that header, compiled with -std=c++17, fails with
#      "procpool needs C++20" as its first error and at most two errors in all;
#   3. a consumer including procpool/pool.hpp and procpool/worker.hpp compiles with -std=c++20.
# scripts/test-package.sh runs it on the installed headers.
#
# Usage: tests/package/require_cxx20_test.sh CXX INCLUDE_DIR...
set -euo pipefail

[ "$#" -ge 2 ] || { echo "usage: require_cxx20_test.sh CXX INCLUDE_DIR..." >&2; exit 2; }
cxx="$1"
shift
include_flags=()
for dir in "$@"; do include_flags+=("-I$dir"); done

guard='procpool/detail/require_cxx20.hpp'
message='procpool needs C++20 (-std=c++20)'
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "require_cxx20_test: $*" >&2; failures=$((failures + 1)); }

headers=()
for dir in "$@"; do
  while IFS= read -r path; do headers+=("${path#"$dir"/}"); done \
    < <(find "$dir/procpool" -name '*.hpp' | sort)
done
[ "${#headers[@]}" -gt 1 ] || { echo "require_cxx20_test: no headers under $*" >&2; exit 1; }

for header in "${headers[@]}"; do
  [ "$header" = "$guard" ] && continue
  for dir in "$@"; do [ -f "$dir/$header" ] && file="$dir/$header"; done
  first_include="$(grep -m 1 -E '^[[:space:]]*#[[:space:]]*include' "$file" || true)"
  case "$first_include" in
    *"\"$guard\""* | *"<$guard>"*) ;;
    *) fail "$header: the first #include is '$first_include', not $guard" ;;
  esac

  printf '#include <%s>\n' "$header" >"$work/one.cpp"
  if "$cxx" -std=c++17 -fsyntax-only "${include_flags[@]}" "$work/one.cpp" >"$work/out" 2>&1; then
    fail "$header: compiled with -std=c++17"
    continue
  fi
  first_error="$(grep -m 1 -E '(fatal )?error:' "$work/out" || true)"
  errors="$(grep -cE '(fatal )?error:' "$work/out" || true)"
  case "$first_error" in
    *"$message"*) ;;
    *) fail "$header at -std=c++17: the first error is '$first_error'" ;;
  esac
  [ "$errors" -le 2 ] || fail "$header at -std=c++17: $errors errors, not the one message"
done

# The positive control: the guard lets C++20 through, and a consumer's includes compile.
printf '#include <procpool/pool.hpp>\n#include <procpool/worker.hpp>\nint main() {}\n' \
  >"$work/consumer.cpp"
if ! "$cxx" -std=c++20 -fsyntax-only "${include_flags[@]}" "$work/consumer.cpp" \
  >"$work/out" 2>&1; then
  cat "$work/out" >&2
  fail "procpool/pool.hpp and procpool/worker.hpp do not compile with -std=c++20"
fi

if [ "$failures" -ne 0 ]; then
  echo "require_cxx20_test: $failures failure(s)" >&2
  exit 1
fi
echo "require_cxx20_test: ok (${#headers[@]} headers)"
