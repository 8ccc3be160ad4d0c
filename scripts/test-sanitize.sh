#!/usr/bin/env bash
# The test suite under AddressSanitizer + UndefinedBehaviorSanitizer (own build dir).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --tests
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
BUILD_DIR=build-asan SANITIZE=ON BUILD_TYPE=Debug scripts/build.sh
cd build-asan
ctest -j2 --output-on-failure --timeout 600
