#!/usr/bin/env bash
# The reliability suite (scripts/reliability.py) against the real daemon, loopback only:
# kill -9 rounds, a faulty webhook receiver, hostile targets, 1,000 slow clients, oversized
# request bodies, a full disk (root only), a locked and a corrupt database.
#   scripts/reliability.sh [--quick] [--binary PATH] [--only CHECK,...] [--keep]
# Without --binary it builds the daemon first (scripts/build.sh, TARGET=gatewatch, in
# BUILD_DIR, default build). Prints one PASS/FAIL/SKIP line per check; exit 1 if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    --binary) binary=${args[i + 1]:-} ;;
    --binary=*) binary=${args[i]#--binary=} ;;
  esac
done
if [[ -z $binary ]]; then
  build_dir=${BUILD_DIR:-build}
  BUILD_DIR=$build_dir TARGET=gatewatch scripts/build.sh >&2
  args+=(--binary "$build_dir/daemon/gatewatch")
fi
exec python3 scripts/reliability.py "${args[@]}"
