#!/usr/bin/env bash
# User-space instructions per request of Palisade and of NGINX as a proxy, in the same run, under
# valgrind's callgrind: repeatable counts that decide small changes where CPU time is too noisy.
#
#   bench/callgrind.sh [REQUESTS]      (default 20000; GET, then POST with a 1 KiB JSON body)
#   FULL=1 bench/callgrind.sh          the full default stack (access log, audit)
#   LIMITS=1 bench/callgrind.sh        every request also counted against a per-IP policy and a
#                                      tiered per-user policy (never exhausted by this load)
#   RESILIENCE=1 bench/callgrind.sh    the upstream has a circuit breaker and a fallback and the
#                                      route a concurrency limit with a queue (retries are on in
#                                      every mode: they are the default)
#   AUTH=1 bench/callgrind.sh          every request carries an HS256 JWT that the route verifies
#                                      (auth = "jwt"); NGINX gets the same header and ignores it
#
# Layout: an NGINX upstream answering `return 200` with a 100-byte body on 127.0.0.1:18180; NGINX
# (master_process off, 1 worker, upstream keep-alive) on :18181 and Palisade (1 worker thread,
# access log and audit off, or the full stack with FULL=1) on :18182, each under callgrind. For
# each proxy and method: warm up, zero the counters (callgrind_control -z), send REQUESTS requests
# over 10 keep-alive connections with hey, dump (callgrind_control -d), and divide. Loopback only;
# every process is started here and stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."

requests=${1:-20000}
full=${FULL:-0}
limits=${LIMITS:-0}
auth=${AUTH:-0}
resilience=${RESILIENCE:-0}
for tool in nginx hey valgrind callgrind_control; do
  if ! command -v "$tool" >/dev/null; then
    echo "bench/callgrind.sh: installing what is missing ($tool)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light hey valgrind >/dev/null
    break
  fi
done

cargo build --release --locked -p palisade
bin=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release/palisade
work=$(mktemp -d -t palisade-callgrind.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

printf '{"order":"%s"}' "$(head -c 1012 /dev/zero | tr '\0' x)" > "$work/body.json"  # 1024 bytes
body100=$(printf 'x%.0s' $(seq 1 100))

mkdir -p "$work/up" "$work/px"
cat > "$work/up/nginx.conf" <<NGINX
daemon off; master_process off; worker_processes 1; error_log $work/up/error.log; pid $work/up/nginx.pid;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $work/up; proxy_temp_path $work/up;
  server { listen 127.0.0.1:18180; keepalive_requests 1000000;
    location / { client_max_body_size 10m; return 200 "$body100"; } } }
NGINX
cat > "$work/px/nginx.conf" <<NGINX
daemon off; master_process off; worker_processes 1; error_log $work/px/error.log; pid $work/px/nginx.pid;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $work/px; proxy_temp_path $work/px;
  upstream app { server 127.0.0.1:18180; keepalive 64; }
  server { listen 127.0.0.1:18181; keepalive_requests 1000000;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
NGINX
if [[ $full == 1 ]]; then access_log=true; audit=stdout; else access_log=false; audit=off; fi
cat > "$work/palisade.toml" <<TOML
[server]
listen = "127.0.0.1:18182"
worker_threads = 1
[ops]
listen = "127.0.0.1:18183"
[log]
access_log = $access_log
[audit]
sink = "$audit"
[lifecycle]
drain_delay = "0s"
grace_period = "2s"
[upstreams.app]
endpoints = ["127.0.0.1:18180"]
pool_max_idle_per_endpoint = 64
[[routes]]
name = "all"
path = "/"
upstream = "app"
TOML
if [[ $limits == 1 ]]; then
  sed -i 's/^upstream = "app"$/upstream = "app"\nrate_limits = ["per-ip", "per-user"]/' "$work/palisade.toml"
  cat bench/limits.toml >> "$work/palisade.toml"
fi

if [[ $resilience == 1 ]]; then
  sed -i 's/^upstream = "app"$/upstream = "app"\nconcurrency_limit = 1000\nqueue = 100/' "$work/palisade.toml"
  printf '[upstreams.app.breaker]\nmin_requests = 20\n[upstreams.app.fallback]\nstatus = 503\nbody = "{}"\n' >> "$work/palisade.toml"
fi
headers=()
if [[ $auth == 1 ]]; then
  # A 32-byte secret as an oct JWK, and a token signed with it (valid for a day).
  token=$(python3 - "$work/jwt.json" <<'PY'
import base64, hashlib, hmac, json, sys, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
secret = b"palisade-bench-secret-0123456789abcdef"
json.dump({"kty": "oct", "k": b64(secret), "alg": "HS256"}, open(sys.argv[1], "w"))
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"sub": "bench-user", "plan": "pro", "exp": int(time.time()) + 86400}).encode())
sig = b64(hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest())
print(f"{head}.{body}.{sig}")
PY
)
  sed -i 's/^upstream = "app"$/upstream = "app"\nauth = "jwt"/' "$work/palisade.toml"
  printf '[auth.jwt]\nkeys_file = "%s"\nalgorithms = ["HS256"]\n' "$work/jwt.json" >> "$work/palisade.toml"
  headers=(-H "Authorization: Bearer $token")
fi

nginx -c "$work/up/nginx.conf" & pids+=($!)
valgrind --tool=callgrind --callgrind-out-file="$work/nginx.%p.out" \
  nginx -c "$work/px/nginx.conf" 2>"$work/nginx.valgrind.log" & pids+=($!); nginx_pid=$!
valgrind --tool=callgrind --callgrind-out-file="$work/palisade.%p.out" \
  "$bin" run --config "$work/palisade.toml" >"$work/palisade.log" 2>"$work/palisade.valgrind.log" & pids+=($!); palisade_pid=$!

wait_for() { for _ in $(seq 1 600); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.1; done; echo "port $1 never answered" >&2; exit 1; }
wait_for 18180; wait_for 18181; wait_for 18182

# Instructions (Ir) counted since the last zeroing, from a dump of process PID.
measure() {  # PID PORT METHOD
  local pid=$1 port=$2 method=$3 args=("${headers[@]}")
  [[ $method == POST ]] && args+=(-m POST -D "$work/body.json" -T application/json)
  timeout 600 hey -n 2000 -c 10 "${args[@]}" "http://127.0.0.1:$port/" >/dev/null
  callgrind_control -z "$pid" >/dev/null
  timeout 1200 hey -n "$requests" -c 10 "${args[@]}" "http://127.0.0.1:$port/" > "$work/hey.$port.$method.txt"
  callgrind_control -d "$pid" >/dev/null
  sleep 1
  local dump
  dump=$(ls -t "$work"/*."$pid".out.* 2>/dev/null | head -1)
  awk '/^summary:|^totals:/ {print $2; exit}' "$dump"
}

printf '%-10s %-6s %14s %12s\n' proxy method instructions per_request
for method in GET POST; do
  for target in "nginx $nginx_pid 18181" "palisade $palisade_pid 18182"; do
    read -r name pid port <<< "$target"
    ir=$(measure "$pid" "$port" "$method")
    printf '%-10s %-6s %14s %12.0f\n' "$name" "$method" "$ir" "$(echo "$ir / $requests" | bc -l)"
  done
done
echo "(work dir: $work)"
