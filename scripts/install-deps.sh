#!/usr/bin/env bash
# Installs the Debian packages gatewatch needs, only those that are missing.
#   scripts/install-deps.sh           build + run
#   scripts/install-deps.sh --tests   build + run + what the test suite drives (nginx, ...)
#   scripts/install-deps.sh --fuzz    build + run + clang and libFuzzer (scripts/fuzz.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

lists=("$here/packages.txt")
for arg in "$@"; do
  case "$arg" in
    --tests) lists+=("$here/test-packages.txt") ;;
    --fuzz) lists+=("$here/fuzz-packages.txt") ;;
    *) echo "install-deps: unknown option $arg (--tests, --fuzz)" >&2; exit 2 ;;
  esac
done

wanted=()
optional=()
for list in "${lists[@]}"; do
  [[ -f "$list" ]] || continue
  while read -r pkg kind _; do
    [[ -z "$pkg" || "$pkg" == \#* ]] && continue
    if [[ "$kind" == "optional" ]]; then optional+=("$pkg"); else wanted+=("$pkg"); fi
  done <"$list"
done

installed() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]; }
missing=()
for pkg in "${wanted[@]}"; do installed "$pkg" || missing+=("$pkg"); done
missing_optional=()
for pkg in "${optional[@]}"; do installed "$pkg" || missing_optional+=("$pkg"); done

if ((${#missing[@]} == 0 && ${#missing_optional[@]} == 0)); then
  echo "install-deps: all $((${#wanted[@]} + ${#optional[@]})) packages present"
  exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then
    sudo=(sudo)
  else
    echo "install-deps: missing packages (${missing[*]}) and not root; run as root" >&2
    exit 1
  fi
fi
echo "install-deps: installing ${missing[*]} ${missing_optional[*]}"
export DEBIAN_FRONTEND=noninteractive
# The gateways' packages start their services from postinst; the tests run them in the
# foreground on their own ports instead. A policy-rc.d that denies every start (exit 101)
# keeps them stopped while installing; one that exists already (containers have one) stays.
policy=/usr/sbin/policy-rc.d
added_policy=0
if [[ ! -e "$policy" ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
  "${sudo[@]}" chmod 755 "$policy"
  added_policy=1
fi
remove_policy() { if ((added_policy)); then "${sudo[@]}" rm -f "$policy"; fi; }
trap remove_policy EXIT
"${sudo[@]}" apt-get update -qq
if ((${#missing[@]} > 0)); then
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
for pkg in "${missing_optional[@]}"; do
  if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$pkg"; then
    echo "install-deps: optional package $pkg could not be installed; its tests report skipped" >&2
  fi
done
