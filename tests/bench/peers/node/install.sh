#!/usr/bin/env bash
# Installs the Node peers' pinned dependencies (piscina, tinypool: package-lock.json) into
# tests/bench/peers/node/node_modules with `npm ci`, only when node_modules is missing or was
# installed from another package.json / package-lock.json. Idempotent and quiet when up to date.
# Node.js and npm come from Debian (`apt-get install nodejs npm`, run here as root if node is absent).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: node or npm is missing; install them with: sudo apt-get install -y nodejs npm" >&2
    exit 1
  fi
  echo "install.sh: installing Debian's nodejs and npm" >&2
  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm; } >&2
fi

major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 20 ]; then
  echo "install.sh: piscina 5 needs Node.js 20 or newer; this is $(node --version)" >&2
  exit 1
fi

# The stamp records what node_modules was installed from; anything else means reinstall.
want="$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1) node-$(node --version)"
stamp=node_modules/.procpool-install-stamp
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
   [ -d node_modules/piscina ] && [ -d node_modules/tinypool ]; then
  exit 0
fi

echo "install.sh: npm ci in $(pwd)" >&2
npm ci --no-audit --no-fund >&2
echo "$want" >"$stamp"
