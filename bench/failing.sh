#!/usr/bin/env bash
# What clients see when the upstream fails, with and without a circuit breaker, in one run:
#
#   bench/failing.sh [SECONDS]         (default 5 s of load per gateway)
#
# Layout: the test kit's upstream (`palisade-upstream`) on 127.0.0.1:18200; every request asks
# it for a 503 after 100 ms (`?status=503&latency=100ms`), an upstream that is down but slow to
# say so. Two Palisade gateways in front: :18202 with the default retries only, :18204 with a
# breaker (50 % of at least 20 calls in 10 s, open 5 s) and a static fallback. hey sends GETs
# over 20 connections for SECONDS to each; this prints the answers clients got, their latency,
# and how many requests reached the upstream. Loopback only; every process started here is
# stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-5}
if ! command -v hey >/dev/null; then
  echo "bench/failing.sh: installing hey" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hey >/dev/null
fi

cargo build --release --locked -p palisade -p palisade-testkit
target=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release
work=$(mktemp -d -t palisade-failing.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

config() {  # PORT EXTRA
  cat <<TOML
[server]
listen = "127.0.0.1:$1"
[ops]
listen = "127.0.0.1:$(($1 + 1))"
[log]
access_log = false
[lifecycle]
drain_delay = "0s"
grace_period = "2s"
[upstreams.app]
endpoints = ["127.0.0.1:18200"]
required = false
$2
[[routes]]
name = "api"
path = "/"
upstream = "app"
timeout = "2s"
TOML
}
config 18202 "" > "$work/plain.toml"
config 18204 '[upstreams.app.breaker]
min_requests = 20
[upstreams.app.fallback]
status = 503
body = "{\"error\":\"temporarily unavailable\"}"' > "$work/breaker.toml"

"$target/palisade-upstream" --listen 127.0.0.1:18200 >"$work/upstream.log" 2>&1 & pids+=($!)
"$target/palisade" run --config "$work/plain.toml" >"$work/plain.log" 2>&1 & pids+=($!)
"$target/palisade" run --config "$work/breaker.toml" >"$work/breaker.log" 2>&1 & pids+=($!)
for port in 18200 18203 18205; do
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/live" && break; sleep 0.1; done
done

upstream_requests() {  # the gateway's ops port: requests it sent upstream (answered by it)
  curl -s "http://127.0.0.1:$1/metrics" |
    awk '/^palisade_http_requests_total/ {n += $NF} /^palisade_http_rejections_total.*circuit-open/ {c += $NF}
         END {printf "%d %d", n, c}'
}

printf '%-10s %8s %8s %8s %8s %10s %s\n' gateway requests p50_ms p95_ms p99_ms rps "statuses; answered by the breaker"
for target_port in "default 18202" "breaker 18204"; do
  read -r name port <<< "$target_port"
  timeout $((seconds + 60)) hey -z "${seconds}s" -c 20 "http://127.0.0.1:$port/?status=503&latency=100ms" > "$work/hey.$name.txt"
  read -r total open <<< "$(upstream_requests $((port + 1)))"
  statuses=$(awk '/Status code distribution/ {on=1; next} on && /\[/ {printf "%s %s; ", $1, $2} on && /^$/ {on=0}' "$work/hey.$name.txt")
  awk -v name="$name" -v statuses="$statuses" -v open="$open" -v total="$total" '
    / 50% in / {p50=$3} / 95% in / {p95=$3} / 99% in / {p99=$3} /Requests\/sec/ {rps=$2}
    END {printf "%-10s %8d %8.1f %8.1f %8.1f %10.0f %s circuit-open: %d\n", name, total, p50*1000, p95*1000, p99*1000, rps, statuses, open}' "$work/hey.$name.txt"
done
echo "(upstream requests are the gateway's answered requests minus circuit-open ones; work dir: $work)"
