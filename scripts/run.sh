#!/usr/bin/env bash
# The README's first command: installs what gatewatch needs, builds it, and runs the
# offline demo (a gateway and two upstreams on loopback that fail on purpose, watched by
# the daemon) until Ctrl-C. With GATEWATCH_CONFIG=file.toml it runs that config instead.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
TARGET=gatewatch scripts/build.sh
if [[ -n "${GATEWATCH_CONFIG:-}" ]]; then
  echo "gatewatch: running with $GATEWATCH_CONFIG — Ctrl-C stops"
  exec build/daemon/gatewatch run --config "$GATEWATCH_CONFIG"
fi
echo "gatewatch: demo on http://127.0.0.1:9464 — phases change every 20 s; Ctrl-C stops"
exec build/daemon/gatewatch demo "$@"
