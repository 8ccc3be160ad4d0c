#!/usr/bin/env bash
# Configures and builds gatewatch. Environment:
#   BUILD_DIR (default build), BUILD_TYPE (default RelWithDebInfo),
#   WERROR=ON|OFF (default ON), SANITIZE=ON|OFF (default OFF), TARGET (default all)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" \
  -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" \
  -DGATEWATCH_WERROR="${WERROR:-ON}" \
  -DGATEWATCH_SANITIZE="${SANITIZE:-OFF}" >/dev/null
cmake --build "$build_dir" -j"${JOBS:-2}" ${TARGET:+--target "$TARGET"}
