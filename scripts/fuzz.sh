#!/usr/bin/env bash
# Fuzzes every target in fuzz/ with libFuzzer (clang, ASan+UBSan), each for a bounded time.
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 600 s; all five targets)
#   PARALLEL=2 scripts/fuzz.sh ...                         (targets at once; default 1)
# Builds in build-fuzz/. Inputs that reach new code are kept in build-fuzz/corpus/TARGET
# (seeded from fuzz/corpus/TARGET; copy good ones back by hand). A crash stops its target
# with the input saved as build-fuzz/artifacts/TARGET-crash-*: add it to
# fuzz/regressions/TARGET/ (tests/fuzz/replay_test.cc replays it) and fix the code.
# Prints one line per target: executions, seconds, corpus size, and crash or not.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(config ingest response url http_request)
if ! command -v clang++ >/dev/null; then
  echo "fuzz: clang++ not found; install it with scripts/install-deps.sh --fuzz" >&2
  exit 1
fi
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGATEWATCH_FUZZ=ON \
  -DGATEWATCH_BUILD_TESTS=OFF -DGATEWATCH_BUILD_BENCH=OFF -DGATEWATCH_WERROR=OFF >/dev/null
cmake --build build-fuzz -j"${JOBS:-2}" --target "${targets[@]/#/fuzz_}" >/dev/null
mkdir -p build-fuzz/artifacts

run_one() {
  local t=$1 max_len=8192
  [[ $t == config ]] && max_len=16384
  mkdir -p "build-fuzz/corpus/$t"
  local log="build-fuzz/$t.log" status=0
  # -timeout: one input taking 10 s is a hang, reported like a crash.
  "./build-fuzz/fuzz/fuzz_$t" -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="build-fuzz/artifacts/$t-" \
    "build-fuzz/corpus/$t" "fuzz/corpus/$t" >"$log" 2>&1 || status=$?
  local execs secs corpus
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  secs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o 'in [0-9]*' | grep -o '[0-9]*' || echo "$seconds")
  corpus=$(find "build-fuzz/corpus/$t" -type f | wc -l)
  if ((status == 0)); then
    echo "fuzz $t: ok, $execs executions in ${secs} s, corpus $corpus inputs, no crash"
  else
    echo "fuzz $t: FAILED (exit $status) after $execs executions; see $log and build-fuzz/artifacts/"
    return 1
  fi
}

failed=0
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if ((running >= ${PARALLEL:-1})); then
    wait -n || failed=1
    running=$((running - 1))
  fi
done
while ((running > 0)); do
  wait -n || failed=1
  running=$((running - 1))
done
exit "$failed"
