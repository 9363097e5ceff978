#!/usr/bin/env bash
# Palisade against NGINX and HAProxy, side by side in one run of ../shared/bench/proxy-compare.sh.
#
#   bench/compare.sh plain   Palisade as a plain proxy (no access log, audit off): compare with row `nginx`
#   bench/compare.sh full    the full default stack (JSON access log, request id, trace context,
#                            metrics, audit on): compare with row `nginx_full`
#   bench/compare.sh post    the plain proxy, every request a POST with a 1 KiB JSON body
#                            (proxy-compare --post 1024): compare with row `nginx`
#   bench/compare.sh limited the full default stack plus a per-IP policy and a tiered per-user
#                            policy on the route (never exhausted by this load): compare with
#                            row `nginx_full`, which runs limit_req
#   bench/compare.sh resilient the full default stack plus a breaker with a fallback on the
#                            upstream and a concurrency limit with a queue on the route
#                            (retries are on in every variant): compare with row `nginx_full`
#   bench/compare.sh upload  the plain proxy, every request a POST with a 1 MiB body
#                            (proxy-compare --post 1048576): throughput and peak RSS (`rss_l`)
#                            against row `nginx`, which buffers such bodies to temporary files
#
# Builds release, writes the config into the run's work dir, runs 1 worker thread, pinned layout
# (load generator on CPU 0, upstream and proxies on CPU 1), 5 reps. Extra arguments go to
# proxy-compare.sh (e.g. --reps 3 --duration 5). Loopback only; every process is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

variant=${1:-plain}
shift || true
case "$variant" in plain|full|limited|resilient|post|upload) ;; *) echo "usage: bench/compare.sh plain|full|limited|resilient|post|upload [proxy-compare options]" >&2; exit 2 ;; esac
compare=${PROXY_COMPARE:-../shared/bench/proxy-compare.sh}
[[ -r "$compare" ]] || { echo "bench/compare.sh: $compare not found (set PROXY_COMPARE)" >&2; exit 2; }

cargo build --release --locked -p palisade
bin=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release/palisade
work=$(mktemp -d -t palisade-bench.XXXXXX)

post=()
case "$variant" in
  plain) access_log=false; audit=off; ops_port=19190 ;;
  full) access_log=true; audit=stdout; ops_port=19191 ;;
  limited) access_log=true; audit=stdout; ops_port=19194 ;;
  resilient) access_log=true; audit=stdout; ops_port=19195 ;;
  post) access_log=false; audit=off; ops_port=19192; post=(--post 1024) ;;
  upload) access_log=false; audit=off; ops_port=19193; post=(--post 1048576) ;;
esac
cat > "$work/palisade.toml" <<TOML
[server]
worker_threads = 1
[ops]
listen = "127.0.0.1:$ops_port"
[log]
format = "json"
level = "info"
access_log = $access_log
[audit]
sink = "$audit"
[lifecycle]
drain_delay = "0s"
grace_period = "2s"
[upstreams.app]
endpoints = ["127.0.0.1:18080"]
pool_max_idle_per_endpoint = 256
[[routes]]
name = "all"
path = "/"
upstream = "app"
TOML
if [[ $variant == limited ]]; then
  sed -i 's/^upstream = "app"$/upstream = "app"\nrate_limits = ["per-ip", "per-user"]/' "$work/palisade.toml"
  cat bench/limits.toml >> "$work/palisade.toml"
fi
if [[ $variant == resilient ]]; then
  sed -i 's/^upstream = "app"$/upstream = "app"\nconcurrency_limit = 1000\nqueue = 100/' "$work/palisade.toml"
  printf '[upstreams.app.breaker]\nmin_requests = 20\n[upstreams.app.fallback]\nstatus = 503\nbody = "{}"\n' >> "$work/palisade.toml"
fi
"$bin" validate --config "$work/palisade.toml"

bash "$compare" \
  --workdir "$work" --layout pinned --reps 5 --duration 10 --warmup 3 \
  --targets direct,nginx,nginx_full,haproxy,nginx_aa \
  --extra-name "palisade_$variant" \
  --extra-cmd "env PALISADE_SERVER__LISTEN=127.0.0.1:{PORT} PALISADE_UPSTREAMS__APP__ENDPOINTS='[\"{UPSTREAM}\"]' $bin run --config $work/palisade.toml" \
  "${post[@]}" "$@"
