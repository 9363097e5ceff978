#!/usr/bin/env bash
# The quickstart: builds Palisade and the sample upstream, starts the sample service on
# 127.0.0.1:3000 and Palisade in front of it on the built-in example config (proxy :8080,
# ops :9090; no Redis, no database). Ctrl-C (or SIGTERM to this script) stops Palisade the way
# a deployment would, lets it drain and finish the requests in flight, and only then stops
# the sample service they are waiting on. A second Ctrl-C cuts Palisade's drain short.
set -euo pipefail
cd "$(dirname "$0")/.."

# DEMO_BIN_DIR: a directory that already holds both binaries, skipping the build (the demo's
# own test sets it; not PALISADE_..., which would be read as a config override).
bin=${DEMO_BIN_DIR:-./target/debug}
if [[ -z "${DEMO_BIN_DIR:-}" ]]; then
  cargo build --quiet -p palisade -p palisade-testkit --bin palisade --bin palisade-upstream
fi

# Each child gets a process group of its own (set -m), so the terminal's Ctrl-C reaches only
# this script, which decides the order. Processes are stopped by PID only.
PALISADE_PID=
set -m
"$bin/palisade-upstream" --listen 127.0.0.1:3000 &
UPSTREAM_PID=$!
set +m

# On any exit: Palisade first (if it still runs), then the sample service.
stop_all() {
  if [[ -n "$PALISADE_PID" ]] && kill -0 "$PALISADE_PID" 2>/dev/null; then
    kill -TERM "$PALISADE_PID" 2>/dev/null || true
    wait "$PALISADE_PID" 2>/dev/null || true
  fi
  kill -TERM "$UPSTREAM_PID" 2>/dev/null || true
  wait "$UPSTREAM_PID" 2>/dev/null || true
}
trap stop_all EXIT

cat <<'TXT'

Palisade is starting in front of a sample service. In another terminal, try:

  curl -i localhost:8080/api/hello                        # proxied; see X-Request-Id
  curl -i 'localhost:8080/api/slow?latency=15s'           # past the route's 10s timeout -> 504 problem+json
  head -c 2000000 /dev/zero | curl -i --data-binary @- localhost:8080/api/upload   # over 1MiB -> 413
  curl -s localhost:9090/ready; curl -s localhost:9090/health
  curl -s localhost:9090/metrics | grep palisade_http_requests_total

Ctrl-C stops Palisade gracefully (drain delay 5s, then in-flight requests finish), then the
sample service. A second Ctrl-C skips the rest of the drain.

TXT
set -m
PALISADE_LOG__FORMAT=${PALISADE_LOG__FORMAT:-pretty} "$bin/palisade" run &
PALISADE_PID=$!
set +m

# Pass Ctrl-C / SIGTERM on to Palisade alone; the sample service keeps answering meanwhile.
trap 'kill -INT "$PALISADE_PID" 2>/dev/null || true' INT
trap 'kill -TERM "$PALISADE_PID" 2>/dev/null || true' TERM

# `wait` returns early whenever a trapped signal arrives: keep waiting until Palisade exits.
while :; do
  wait "$PALISADE_PID" && status=0 || status=$?
  kill -0 "$PALISADE_PID" 2>/dev/null || break
done
PALISADE_PID=
exit "$status"
