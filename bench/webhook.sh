#!/usr/bin/env bash
# End-to-end latency of a signed webhook through Palisade, against the same POST on a route
# without verification, in one run:
#
#   bench/webhook.sh [REQUESTS]        (default 20000 for 1 KiB bodies; a fiftieth of that for 1 MiB)
#
# Layout: an NGINX upstream answering `return 200` on 127.0.0.1:18190; Palisade on :18192 with
# `/hooks` (standard-webhooks, replay off so one signed delivery can be sent many times, tolerance
# 1h) and `/plain` (no webhook). The delivery is signed by `palisade webhook sign`, the command
# users debug with. hey sends REQUESTS over 10 keep-alive connections and reports the latency
# distribution; this prints p50/p95/p99 per route and body size. Loopback only; every process is
# started here and stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."

requests=${1:-20000}
for tool in nginx hey; do
  if ! command -v "$tool" >/dev/null; then
    echo "bench/webhook.sh: installing what is missing ($tool)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light hey >/dev/null
    break
  fi
done

cargo build --release --locked -p palisade
bin=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release/palisade
work=$(mktemp -d -t palisade-webhook.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
printf '{"type":"user.created","data":"%s"}' "$(head -c 1000 /dev/zero | tr '\0' x)" > "$work/small.json"
printf '{"type":"export.ready","data":"%s"}' "$(head -c 1048540 /dev/zero | tr '\0' x)" > "$work/large.json"

mkdir -p "$work/up"
cat > "$work/up/nginx.conf" <<NGINX
daemon off; master_process off; worker_processes 1; error_log $work/up/error.log; pid $work/up/nginx.pid;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $work/up;
  server { listen 127.0.0.1:18190; keepalive_requests 1000000;
    location / { client_max_body_size 10m; return 200 "ok"; } } }
NGINX
cat > "$work/palisade.toml" <<TOML
[server]
listen = "127.0.0.1:18192"
[ops]
listen = "127.0.0.1:18193"
[log]
access_log = false
[lifecycle]
drain_delay = "0s"
grace_period = "2s"
[upstreams.app]
endpoints = ["127.0.0.1:18190"]
pool_max_idle_per_endpoint = 64
[[routes]]
name = "hooks"
path = "/hooks"
upstream = "app"
max_request_body = "2MiB"
[routes.webhook]
scheme = "standard-webhooks"
secrets = ["$secret"]
tolerance = "1h"
replay = "off"
[[routes]]
name = "plain"
path = "/plain"
upstream = "app"
max_request_body = "2MiB"
TOML

nginx -c "$work/up/nginx.conf" & pids+=($!)
"$bin" run --config "$work/palisade.toml" >"$work/palisade.log" 2>&1 & pids+=($!)
for port in 18190 18192; do
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
done

# p50 p95 p99 in ms from hey's latency distribution.
percentiles() {
  awk '/ 50% in / {p50=$3} / 95% in / {p95=$3} / 99% in / {p99=$3} /Requests\/sec/ {rps=$2}
       END {printf "%8.2f %8.2f %8.2f %10.0f\n", p50*1000, p95*1000, p99*1000, rps}' "$1"
}

printf '%-6s %-6s %8s %8s %8s %10s\n' body route p50_ms p95_ms p99_ms rps
for size in small large; do
  n=$requests
  [[ $size == large ]] && n=$((requests / 50))
  headers=()
  while IFS= read -r line; do headers+=(-H "$line"); done < <(
    "$bin" webhook sign --scheme standard-webhooks --secret "$secret" --id msg_bench \
      --body-file "$work/$size.json")
  for route in hooks plain; do
    args=(-m POST -D "$work/$size.json" -T application/json "${headers[@]}")
    timeout 600 hey -n $((n / 10)) -c 10 "${args[@]}" "http://127.0.0.1:18192/$route" >/dev/null
    timeout 1200 hey -n "$n" -c 10 "${args[@]}" "http://127.0.0.1:18192/$route" > "$work/hey.$size.$route.txt"
    # A delivery that did not verify would be a 401: every answer must be a 200.
    if ! grep -q "\[200\]	$n responses" "$work/hey.$size.$route.txt"; then
      echo "not every $route request got 200:" >&2; grep -A3 "Status code" "$work/hey.$size.$route.txt" >&2; exit 1
    fi
    printf '%-6s %-6s %s\n' "$size" "$route" "$(percentiles "$work/hey.$size.$route.txt")"
  done
done
echo "(work dir: $work)"
