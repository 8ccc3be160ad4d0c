#!/usr/bin/env bash
# The benchmark (bench/README.md): a loopback nginx fleet, gatewatch with 1,000
# and 10,000 monitors, blackbox_exporter and a bare libcurl loop at the same rate, a mass
# outage. Prints the figures; see bench/README.md.
#   bench/run.sh [--quick] [--wait-quiet MINUTES] [--profile perf|callgrind|syscalls [--profile-out DIR]]
#     --quick          short phases (under 3 minutes once built)
#     --no-build       use the binaries already in BUILD_DIR (no cmake)
#     --profile T      instead: profile gatewatch probing HTTP targets with perf (cpu-clock
#                      samples, 200 probes/s, 30 s), callgrind (25 probes/s, 20 s) or strace -c
#                      (system calls per 1,000 probes, 200 probes/s, 20 s)
#     --wait-quiet M   first wait up to M minutes for the 1-minute load average < 1.0
#     --phases LIST    only these of cmp,cmp800,httpsab,http2k,mixed1k,mixed10k,refused,outage,ceilings (default: all)
#     --gatewatch BIN  run this gatewatch binary instead of BUILD_DIR's (a 'before' build)
# Environment: BUILD_DIR (default build-bench), BENCH_10K_SECONDS (full run, default 150),
#   BENCH_OUTAGE_SECONDS (outage window; default 90, quick 15), BENCH_REFUSED_SECONDS (refused
#   outage; default 120, quick 30), BENCH_OUTAGE_MONITORS (both outages; default 10000),
#   BENCH_KEEP_TMP=1 keeps the temporary directory (configs, logs, databases).
# Needs root (apt-get for missing packages; a private mount namespace gives gatewatch the
# bench CA). Loopback only; everything it starts is stopped on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

quick=()
extra=()
build=1
wait_min=0
while (($#)); do
  case "$1" in
    --quick) quick=(--quick) ;;
    --no-build) build=0 ;;
    --wait-quiet) wait_min=${2:?minutes}; shift ;;
    --profile|--profile-out|--phases|--gatewatch) extra+=("$1" "${2:?value}"); shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "bench: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

if [[ $(id -u) -ne 0 ]]; then
  echo "bench: run as root (packages, mount namespace for the CA bundle)" >&2
  exit 1
fi

# Packages: the build's, then the bench's own (only those missing).
"$root/scripts/install-deps.sh"
missing=()
while read -r pkg _; do
  [[ -z "$pkg" || "$pkg" == \#* ]] && continue
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done <"$here/packages.txt"
if ((${#missing[@]})); then
  echo "bench: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d (if any) keeps the packaged services from starting; stop blackbox anyway
  # if its postinst started it (the bench runs its own on loopback).
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

build_dir=${BUILD_DIR:-$root/build-bench}
if ((build)); then
  cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGATEWATCH_WERROR=ON \
    -DGATEWATCH_BUILD_TESTS=OFF -DGATEWATCH_BUILD_BENCH=ON >/dev/null
  cmake --build "$build_dir" -j"${JOBS:-2}" --target gatewatch bare_loop
fi

if ((wait_min > 0)); then
  deadline=$((SECONDS + wait_min * 60))
  until awk '{exit !($1 < 1.0)}' /proc/loadavg; do
    if ((SECONDS >= deadline)); then
      echo "bench: load average still $(cut -d' ' -f1 /proc/loadavg) after ${wait_min} min; running anyway (figures from a loaded machine)" >&2
      break
    fi
    sleep 15
  done
fi

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
# bench.py stops everything it started (try/finally, SIGINT/SIGTERM); this trap is the
# backstop for its process group if it is killed outright.
child=
pidfile=$(mktemp /tmp/gatewatch-bench-pids.XXXXXX)
export BENCH_PIDFILE=$pidfile
cleanup() {
  if [[ -n "$child" ]] && kill -0 "$child" 2>/dev/null; then kill -TERM "$child"; wait "$child" || true; fi
  # Anything bench.py started and did not stop (it was killed outright): stop it by pid.
  while read -r pid; do
    if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; fi
  done <"$pidfile"
  rm -f "$pidfile"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
python3 "$here/bench.py" --build-dir "$build_dir" "${quick[@]}" "${extra[@]}" &
child=$!
wait "$child"
