#!/usr/bin/env bash
# The README's first command: installs what gatewatch needs, builds it, and runs the
# daemon on the default offline config (examples/local.toml) until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
TARGET=gatewatch scripts/build.sh
mkdir -p build
config=${GATEWATCH_CONFIG:-examples/local.toml}
echo "gatewatch: running with $config; http://127.0.0.1:9464/healthz — Ctrl-C stops"
exec build/daemon/gatewatch run --config "$config"
