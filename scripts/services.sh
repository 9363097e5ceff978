#!/usr/bin/env bash
# Makes sure the real Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432) that Palisade's
# tests use are running: starts them when installed but stopped, installs them from Debian's
# packages when missing (needs root). Also installs promtool, which the metrics tests pipe
# /metrics into. Idempotent; safe to run on every test run.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }
redis_up() { have redis-cli && [[ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" == PONG ]]; }
pg_up() { have pg_isready && pg_isready -q -h 127.0.0.1 -p 5432; }

apt_install() {
  [[ $(id -u) == 0 ]] || { echo "services.sh: need root to install $*" >&2; return 1; }
  [[ -n "${APT_UPDATED:-}" ]] || { apt-get update -qq; APT_UPDATED=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# promtool ships in Debian's `prometheus` package, whose install would also start a Prometheus
# server (init script). Take only the promtool binary out of the package instead.
install_promtool() {
  [[ $(id -u) == 0 ]] || { echo "services.sh: need root to install promtool" >&2; return 1; }
  [[ -n "${APT_UPDATED:-}" ]] || { apt-get update -qq; APT_UPDATED=1; }
  local dir
  dir=$(mktemp -d)
  chown _apt "$dir" 2>/dev/null || true # apt downloads as the _apt user when it can
  (cd "$dir" && apt-get download -qq prometheus)
  dpkg-deb --fsys-tarfile "$dir"/prometheus_*.deb | tar -xO ./usr/bin/promtool >"$dir/promtool"
  install -m 755 "$dir/promtool" /usr/local/bin/promtool
  rm -rf "$dir"
}
have promtool || install_promtool
promtool --version >/dev/null || { echo "services.sh: promtool does not run" >&2; exit 1; }

if ! redis_up; then
  have redis-server || apt_install redis-server redis-tools
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 50); do redis_up && break; sleep 0.1; done
fi
redis_up || { echo "services.sh: Redis is not answering on 127.0.0.1:6379" >&2; exit 1; }

if ! pg_up; then
  have pg_ctlcluster || apt_install postgresql
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  for _ in $(seq 100); do pg_up && break; sleep 0.1; done
fi
pg_up || { echo "services.sh: PostgreSQL is not answering on 127.0.0.1:5432" >&2; exit 1; }
echo "services: redis and postgresql are up; promtool is installed"

# The database the job tests use (crates/palisade-jobs/tests, crates/palisade/tests/jobs.rs).
if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'palisade_test'" | grep -q 1; then
  psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE palisade_test"
fi
echo "services: database palisade_test exists"
