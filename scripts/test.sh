#!/usr/bin/env bash
# The README's test command: installs what the suite needs, builds with warnings as
# errors, runs every test through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --tests
scripts/build.sh
cd "${BUILD_DIR:-build}"
ctest -j2 --output-on-failure --timeout 300
