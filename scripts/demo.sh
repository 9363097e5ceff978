#!/usr/bin/env bash
# The quickstart: builds Palisade and the sample upstream, starts the sample service on
# 127.0.0.1:3000 and Palisade in front of it on the built-in example config (proxy :8080,
# ops :9090; no Redis, no database). Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet -p palisade -p palisade-testkit --bin palisade --bin palisade-upstream
./target/debug/palisade-upstream --listen 127.0.0.1:3000 &
UPSTREAM_PID=$!
trap 'kill "$UPSTREAM_PID" 2>/dev/null || true; wait "$UPSTREAM_PID" 2>/dev/null || true' EXIT

cat <<'TXT'

Palisade is starting in front of a sample service. In another terminal, try:

  curl -i localhost:8080/api/hello                        # proxied; see X-Request-Id
  curl -i 'localhost:8080/api/slow?latency=15s'           # past the route's 10s timeout -> 504 problem+json
  head -c 2000000 /dev/zero | curl -i --data-binary @- localhost:8080/api/upload   # over 1MiB -> 413
  curl -s localhost:9090/ready; curl -s localhost:9090/health
  curl -s localhost:9090/metrics | grep palisade_http_requests_total

Ctrl-C drains and stops it (drain delay 5s, then in-flight requests finish).

TXT
PALISADE_LOG__FORMAT=${PALISADE_LOG__FORMAT:-pretty} ./target/debug/palisade run
