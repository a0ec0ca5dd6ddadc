#!/usr/bin/env bash
# Builds and runs the procpool demo.
#
# The demo is the TRANSPORT demo (target procpool-transport-demo): two
# processes exchange a million messages through the shared-memory ring and
# print the message rate. Built with the `release` preset.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
cmake --preset release
cmake --build --preset release -j "$(nproc)" --target procpool-transport-demo

./build/release/tests/bench/procpool-transport-demo
