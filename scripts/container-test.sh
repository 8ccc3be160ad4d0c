#!/usr/bin/env bash
# Builds the gatewatch image with podman and checks it from the outside:
#   1. installs podman, buildah, runc and debootstrap if missing (apt-get; root);
#   2. makes the base image docker.io/library/debian:bookworm-slim once, with debootstrap
#      (no image registry is needed; docs/building.md "Containers without a
#      Docker engine");
#   3. podman build --pull=never --format docker -t gatewatch:dev -f deploy/Dockerfile .
#      (the build stage compiles and runs the fast unit tests);
#   4. runs the image with -p 127.0.0.1:PORT:9464 and waits (bounded) for /healthz and
#      /metrics from the host, checks the image's HEALTHCHECK reports healthy, that it
#      runs as the non-root user and writes its database to the volume;
#   5. stops it with SIGTERM (podman stop) and checks it exits 0 quickly;
#   6. prints the timings and removes the container and its volume.
# Slow (the image compiles the project: 10+ minutes on 2 busy cores), so it is not part
# of .ci/run. Environment:
#   PORT          host port on 127.0.0.1 (default: a free one)
#   IMAGE         image tag (default gatewatch:dev)
#   JOBS          build parallelism inside the image (default 2)
#   STATE_DIR     containers.conf and the debootstrap tree (default /var/tmp/gatewatch-container)
#   REBUILD_BASE  1 = remake the base image even if it exists
#   KEEP_IMAGE    0 = remove the built image at the end (default: keep it)
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-gatewatch:dev}
BASE=docker.io/library/debian:bookworm-slim
STATE_DIR=${STATE_DIR:-/var/tmp/gatewatch-container}
JOBS=${JOBS:-2}
name="gatewatch-ct-$$"
failures=()
declare -A took

log() { printf 'container-test: %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; failures+=("$*"); }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

if [[ $(id -u) -ne 0 ]]; then
  echo "container-test: run as root (rootful podman, debootstrap, apt-get)" >&2
  exit 2
fi

# --- 1. tools --------------------------------------------------------------------
t=$(now)
missing=()
for pkg in podman buildah runc debootstrap curl; do
  [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" == "install ok installed" ]] ||
    missing+=("$pkg")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
took[install]=$(since "$t")

# crun fails here (ulimits, hybrid cgroups): runc, and explicit ulimits.
mkdir -p "$STATE_DIR"
cat >"$STATE_DIR/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
EOF
export CONTAINERS_CONF="$STATE_DIR/containers.conf"

# --- 2. base image ----------------------------------------------------------------
t=$(now)
if [[ "${REBUILD_BASE:-0}" == 1 ]] || ! podman image exists "$BASE"; then
  mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  rootfs="$STATE_DIR/rootfs"
  rm -rf "$rootfs"
  log "debootstrap bookworm from $mirror (once)"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$STATE_DIR/debootstrap.log" 2>&1 ||
    { tail -20 "$STATE_DIR/debootstrap.log" >&2; exit 1; }
  # Like the official slim image: no apt caches, no docs.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | podman import --quiet --change 'CMD ["/bin/bash"]' - localhost/bookworm-minbase:12 >/dev/null
  podman tag localhost/bookworm-minbase:12 "$BASE"
  rm -rf "$rootfs"
  took[debootstrap]=$(since "$t")
else
  log "base image $BASE present"
  took[debootstrap]="0 (present)"
fi

# --- 3. image ----------------------------------------------------------------------
t=$(now)
log "podman build -t $IMAGE (compiles and runs the unit tests inside; slow)"
build_log="$STATE_DIR/build.log"
print_timings() {
  echo "container-test timings (s):"
  local k
  for k in install debootstrap build healthz metrics stop; do
    printf '  %-12s %s\n' "$k" "${took[$k]:--}"
  done
}
if ! podman build --pull=never --format docker --build-arg JOBS="$JOBS" \
    -t "$IMAGE" -f deploy/Dockerfile . >"$build_log" 2>&1; then
  tail -40 "$build_log" >&2
  took[build]="$(since "$t") (failed)"
  log "build failed (full log: $build_log)"
  print_timings
  exit 1
fi
took[build]=$(since "$t")
# The build stage's unit tests: one doctest summary line per test binary.
grep -E '^\[doctest\] test cases:' "$build_log" | sed 's/^/container-test: build stage /' >&2 || true
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
log "image $IMAGE: $((size / 1024 / 1024)) MiB"

# --- 4. run -------------------------------------------------------------------------
cleanup() {
  podman rm -f -v "$name" >/dev/null 2>&1 || true
  if [[ "${KEEP_IMAGE:-1}" == 0 ]]; then podman rmi "$IMAGE" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

if [[ -z "${PORT:-}" ]]; then
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 19464)
fi
base_url="http://127.0.0.1:$PORT"
t=$(now)
# Without systemd, podman logs "unable to get systemd connection" for the HEALTHCHECK
# timer: expected; the check is run by hand below (podman healthcheck run).
podman run -d --name "$name" -p "127.0.0.1:$PORT:9464" "$IMAGE" >/dev/null

# wait_for SECONDS DESCRIPTION COMMAND...: polls every 0.2 s, bounded.
wait_for() {
  local limit=$1 what=$2
  shift 2
  local deadline=$((SECONDS + limit))
  while ((SECONDS < deadline)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  fail "$what not within ${limit}s"
  return 1
}
metrics_ok() { curl -fsS --max-time 2 "$base_url/metrics" | grep -q '^gatewatch_'; }

if wait_for 30 "/healthz answering 200 on $base_url" curl -fsS --max-time 2 "$base_url/healthz"; then
  took[healthz]=$(since "$t")
  log "/healthz answered after ${took[healthz]} s"
fi
if wait_for 30 "/readyz answering 200" curl -fsS --max-time 2 "$base_url/readyz"; then
  log "/readyz: $(curl -sS --max-time 2 "$base_url/readyz" | head -c 200)"
fi
if wait_for 30 "/metrics serving gatewatch_* series" metrics_ok; then
  took[metrics]=$(since "$t")
  log "/metrics: $(curl -fsS --max-time 2 "$base_url/metrics" | grep -c '^gatewatch_') gatewatch_* samples after ${took[metrics]} s"
else
  log "/metrics answered: $(curl -sS -o /dev/null -w '%{http_code}' --max-time 2 "$base_url/metrics" || true)"
fi

# The image's HEALTHCHECK (gatewatch check .../healthz) must report healthy.
health_status() {
  podman inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Healthcheck.Status}}{{end}}' "$name" 2>/dev/null
}
healthy() { podman healthcheck run "$name" && [[ "$(health_status)" == healthy ]]; }
if wait_for 30 "HEALTHCHECK reporting healthy" healthy; then
  log "health status: $(health_status)"
else
  log "health status: $(health_status || true)"
fi

uid=$(podman exec "$name" id -u 2>/dev/null || echo "?")
[[ "$uid" == 10001 ]] || fail "the daemon runs as uid $uid, expected 10001 (gatewatch)"
if ! podman exec "$name" test -s /var/lib/gatewatch/gatewatch.db; then
  fail "no database in the volume /var/lib/gatewatch"
fi

# --- 5. stop: SIGTERM, drain, exit 0 -----------------------------------------------
t=$(now)
podman stop -t 20 "$name" >/dev/null
took[stop]=$(since "$t")
code=$(podman inspect --format '{{.State.ExitCode}}' "$name")
[[ "$code" == 0 ]] || fail "exit code after SIGTERM was $code, expected 0"
awk -v s="${took[stop]}" 'BEGIN { exit !(s < 10) }' || fail "stop took ${took[stop]} s (expected < 10 s)"
log "stopped with SIGTERM in ${took[stop]} s, exit code $code; last log lines:"
podman logs --tail 5 "$name" 2>&1 | sed 's/^/    /' >&2

# --- 6. report -----------------------------------------------------------------------
print_timings
if ((${#failures[@]})); then
  echo "container-test: ${#failures[@]} check(s) failed:"
  printf '  - %s\n' "${failures[@]}"
  exit 1
fi
echo "container-test: OK"
