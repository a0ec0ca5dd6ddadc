#!/usr/bin/env bash
# Installs the Debian packages procpool needs to build and test. Idempotent:
# packages already installed are left alone, and apt is not touched at all when
# nothing is missing.
#
# Extra packages (for later scripts) can be requested with
#   PROCPOOL_EXTRA_PACKAGES="pkg1 pkg2" scripts/setup.sh
#
# Boost comes from the versioned 1.81 packages only. Never add an unversioned
# libboost-*-dev package: those pull Boost 1.74, which conflicts with
# libboost1.81-dev.
set -euo pipefail

packages=(
  build-essential
  cmake
  ninja-build
  g++
  clang
  # libFuzzer and clang's sanitizer runtimes, and llvm-symbolizer for their reports
  # (scripts/fuzz.sh); clang itself does not pull them in with --no-install-recommends.
  libclang-rt-14-dev
  llvm
  clang-format
  git
  pkg-config
  libboost1.81-dev
  libboost-filesystem1.81-dev
  libboost-json1.81-dev
  libboost-program-options1.81-dev
  # procpool run / check: the config file (toml++, linked through pkg-config)
  libtomlplusplus-dev
  libgtest-dev
  libgmock-dev
  libbenchmark-dev
  # The daemon's tests: curl scrapes /metrics, tmux runs `procpool top` in a terminal.
  curl
  tmux
)

# Word splitting is intended: the variable is a space-separated list.
# shellcheck disable=SC2206
extra=(${PROCPOOL_EXTRA_PACKAGES:-})
for pkg in "${extra[@]}"; do
  case "$pkg" in
    libboost*1.81-dev) ;;
    libboost*-dev)
      echo "setup.sh: refusing unversioned Boost package '$pkg' (it pulls Boost 1.74);" \
           "use the 1.81 variant, e.g. libboost-<name>1.81-dev" >&2
      exit 2
      ;;
  esac
  packages+=("$pkg")
done

missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done

# promtool, Prometheus' own parser of the text format, checks the daemon's /metrics
# (tests/tool/daemon_metrics_test.cpp). It comes in Debian's prometheus package, which would
# also install and start a Prometheus server: only the promtool binary is taken out of the
# package, into build/tools/ (CMake finds it there; nothing is installed system-wide).
fetch_promtool() {
  local root tools work
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  tools="$root/build/tools"
  [ -x "$tools/promtool" ] && return 0
  mkdir -p "$tools"
  work="$(mktemp -d)"
  if ! (cd "$work" && apt-get download prometheus >/dev/null 2>&1 ||
        { [ "$(id -u)" -eq 0 ] && apt-get update >/dev/null 2>&1 &&
          apt-get download prometheus >/dev/null 2>&1; }); then
    rm -rf "$work"
    echo "setup.sh: could not download Debian's prometheus package (for promtool)" >&2
    return 1
  fi
  dpkg-deb --fsys-tarfile "$work"/prometheus_*.deb | tar -x -C "$work" ./usr/bin/promtool
  mv "$work/usr/bin/promtool" "$tools/promtool"
  rm -rf "$work"
  echo "setup.sh: promtool in $tools"
}

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup.sh: all ${#packages[@]} packages already installed, nothing to do"
  fetch_promtool
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: missing packages: ${missing[*]}" >&2
  echo "setup.sh: not root; install them with:" >&2
  echo "sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

# Keep apt's chatter out of the way; show it only if something goes wrong.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! { apt-get update &&
       DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
   } >"$log" 2>&1; then
  cat "$log" >&2
  echo "setup.sh: failed to install: ${missing[*]}" >&2
  exit 1
fi
echo "setup.sh: installed ${#missing[@]} package(s): ${missing[*]}"
fetch_promtool
