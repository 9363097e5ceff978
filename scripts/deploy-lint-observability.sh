#!/usr/bin/env bash
# Offline checks of the observability kit: Prometheus rules, their unit tests, the Grafana
# dashboard and the runbooks. Installs missing tools from package registries only:
#   promtool (Debian package `prometheus`), yamllint and PyYAML (PyPI).
#
#   1. promtool check rules deploy/prometheus/alerts.yaml
#   2. promtool test rules deploy/prometheus/tests/*.yaml
#   3. yamllint (config deploy/prometheus/yamllint.yaml, given with -c) on deploy/prometheus/
#   4. every alert: for, severity, summary, description, a runbook_url under the fixed base whose
#      file exists in docs/runbooks/ and is listed in docs/runbooks/README.md, a promtool test
#      case where it fires and one where it does not
#   5. the dashboard: valid JSON, schemaVersion >= 36, unique panel ids, datasource/job/
#      instance/route variables, every datasource reference is ${datasource}, every query parses
#      (promtool, with the Grafana variables substituted)
#   6. metric names: every palisade_*/process_* name in the rules and the dashboard is served
#      by a running $LINT_PALISADE_BIN on /metrics; the reverse, served metrics used nowhere, is
#      a warning only. The catalogue config has a [databases.lint] (SQLite in the temp dir) and
#      a retention [jobs.lint-cleanup] every minute, and the check waits for one of its runs, so
#      every palisade_job_* family is on the page; a job family used but absent before that
#      first run is a warning (they are meant to be there at 0 from start-up). Then
#      `palisade jobs list` and `palisade jobs run --dry-run`, which the runbooks use.
#
# Environment: LINT_PALISADE_BIN (the binary to read the metric catalogue from; default
# /work/bin/palisade if it exists, else target/release/palisade, else target/debug/palisade);
# OBS_LINT_EXTRA_CONFIG (optional: a TOML file appended to the catalogue config, for families
# that appear only when configured). Not PALISADE_*: palisade reads every such variable as a
# config override, so the binary runs with all of them removed but the overrides set here.
set -euo pipefail
cd "$(dirname "$0")/.."

rules=deploy/prometheus/alerts.yaml
tests_dir=deploy/prometheus/tests
dashboard=deploy/grafana/palisade.json
runbooks=docs/runbooks
if [[ -z ${LINT_PALISADE_BIN:-} ]]; then
  for candidate in target/release/palisade target/debug/palisade /work/bin/palisade; do
    if [[ -x $candidate ]]; then LINT_PALISADE_BIN=$candidate; break; fi
  done
  LINT_PALISADE_BIN=${LINT_PALISADE_BIN:-target/release/palisade}
fi
# Palisade reads every PALISADE_* variable as a config override and refuses unknown ones:
# the binary runs with all of them removed but the overrides set here.
palisade_env=(env)
while IFS= read -r var; do palisade_env+=(-u "$var"); done < <(compgen -e | grep '^PALISADE_' || true)

say() { echo "lint-observability: $*"; }
die() { echo "lint-observability: FAIL: $*" >&2; exit 1; }

as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }

# promtool comes with the Debian package `prometheus`, whose install would start a Prometheus
# server: a policy-rc.d that refuses service starts is put in place for the install (only if
# none exists), and a server that started anyway is stopped.
install_promtool() {
  say "installing promtool (apt-get install prometheus)"
  local policy=/usr/sbin/policy-rc.d own_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod 755 "$policy"
    own_policy=1
  fi
  local ok=0
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus >/dev/null ||
    { as_root apt-get update -qq >/dev/null &&
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus >/dev/null; } || ok=$?
  if [[ $own_policy == 1 ]]; then as_root rm -f "$policy"; fi
  [[ $ok == 0 ]] || die "apt-get install prometheus failed"
  if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
    say "stopping the prometheus service the package started"
    as_root systemctl stop prometheus
  elif [[ -f /run/prometheus.pid ]]; then
    say "stopping the prometheus server the package started (pid $(cat /run/prometheus.pid))"
    as_root kill "$(cat /run/prometheus.pid)" || true
  fi
}

command -v promtool >/dev/null || install_promtool
if ! command -v yamllint >/dev/null; then
  say "installing yamllint (pip install yamllint)"
  python3 -m pip install --quiet yamllint
fi
if ! python3 -c 'import yaml' 2>/dev/null; then
  say "installing PyYAML (pip install pyyaml)"
  python3 -m pip install --quiet pyyaml
fi
command -v curl >/dev/null || die "curl is needed"
say "tools: $(promtool --version 2>&1 | head -1); yamllint $(yamllint --version | awk '{print $2}')"

# 1. Rule syntax and semantics.
say "[1/6] promtool check rules $rules"
promtool check rules "$rules"

# 2. Unit tests of every alert.
say "[2/6] promtool test rules $tests_dir/*.yaml"
promtool test rules "$tests_dir"/*.yaml

# 3. YAML style.
say "[3/6] yamllint -c deploy/prometheus/yamllint.yaml deploy/prometheus/"
yamllint --strict -c deploy/prometheus/yamllint.yaml deploy/prometheus/
say "yamllint clean"

# 4. Alerts: fields, runbooks, test coverage.
say "[4/6] every alert: for, severity, annotations, runbook file, firing and silent test cases"
python3 - "$rules" "$tests_dir" "$runbooks" <<'PY'
import glob, os, sys, yaml
rules_file, tests_dir, runbooks = sys.argv[1:]
base = "https://github.com/palisade-proxy/palisade/blob/main/docs/runbooks/"
errors = []
alerts = {}
for group in yaml.safe_load(open(rules_file))["groups"]:
    for rule in group["rules"]:
        if "alert" in rule:
            name = rule["alert"]
            if name in alerts:
                errors.append(f"{name}: defined twice")
            alerts[name] = rule
readme = open(os.path.join(runbooks, "README.md")).read() if os.path.exists(os.path.join(runbooks, "README.md")) else ""
if not readme:
    errors.append(f"{runbooks}/README.md is missing")
for name, rule in alerts.items():
    if "for" not in rule:
        errors.append(f"{name}: no `for:`")
    if rule.get("labels", {}).get("severity") not in ("critical", "warning"):
        errors.append(f"{name}: labels.severity must be critical or warning")
    ann = rule.get("annotations", {})
    for key in ("summary", "description", "runbook_url"):
        if not ann.get(key):
            errors.append(f"{name}: no annotations.{key}")
    if "{{" not in ann.get("description", ""):
        errors.append(f"{name}: the description has no templated value")
    url = ann.get("runbook_url", "")
    if not url.startswith(base) or not url.endswith(".md"):
        errors.append(f"{name}: runbook_url must be {base}<file>.md, is {url!r}")
    else:
        page = url[len(base):]
        if "/" in page or not os.path.isfile(os.path.join(runbooks, page)):
            errors.append(f"{name}: runbook {runbooks}/{page} does not exist")
        elif f"({page})" not in readme:
            errors.append(f"{name}: {runbooks}/README.md does not link {page}")
        elif name not in open(os.path.join(runbooks, page)).read():
            errors.append(f"{name}: {runbooks}/{page} does not name the alert")
fires, silent = {}, {}
for path in sorted(glob.glob(os.path.join(tests_dir, "*.yaml"))):
    for test in yaml.safe_load(open(path)).get("tests", []):
        for case in test.get("alert_rule_test", []):
            name = case["alertname"]
            if name not in alerts:
                errors.append(f"{path}: tests unknown alert {name}")
            (fires if case.get("exp_alerts") else silent).setdefault(name, path)
for name in alerts:
    if name not in fires:
        errors.append(f"{name}: no promtool test case where it fires")
    if name not in silent:
        errors.append(f"{name}: no promtool test case where it stays silent")
for name in sorted(alerts):
    print(f"  {name:34} {alerts[name]['labels']['severity']:8} for {alerts[name].get('for')}  "
          f"runbook {alerts[name]['annotations']['runbook_url'][len(base):]}  fires: {fires.get(name, '-')}")
if errors:
    sys.exit("lint-observability: FAIL:\n  " + "\n  ".join(errors))
print(f"lint-observability: {len(alerts)} alerts, each with a runbook, a firing and a silent test case")
PY

# 5. Dashboard.
say "[5/6] $dashboard: JSON, panel ids, variables, datasource references, queries parse"
work=$(mktemp -d)
palisade_pid=""
cleanup() {
  if [[ -n $palisade_pid ]] && kill -0 "$palisade_pid" 2>/dev/null; then kill "$palisade_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
python3 - "$dashboard" "$work/dashboard-queries.yaml" <<'PY'
import json, sys, yaml
path, out = sys.argv[1:]
try:
    dash = json.load(open(path))
except ValueError as e:
    sys.exit(f"lint-observability: FAIL: {path} is not valid JSON: {e}")
errors = []
if dash.get("schemaVersion", 0) < 36:
    errors.append(f"schemaVersion {dash.get('schemaVersion')} < 36")
variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
ds = variables.get("datasource")
if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
    errors.append("no `datasource` variable of type datasource with query prometheus")
for name in ("job", "instance", "route"):
    if name not in variables:
        errors.append(f"no `{name}` template variable")
want = "${datasource}"
def ds_ok(ref):
    return isinstance(ref, dict) and ref.get("uid") in (want, "$datasource") and ref.get("type", "prometheus") == "prometheus"
for v in variables.values():
    if v.get("type") == "query" and not ds_ok(v.get("datasource")):
        errors.append(f"variable {v['name']}: datasource must be {want}")
ids, queries = [], []
def walk(panels):
    for p in panels:
        ids.append(p.get("id"))
        if p.get("type") != "row":
            if not ds_ok(p.get("datasource")):
                errors.append(f"panel {p.get('id')} {p.get('title')!r}: datasource must be {want}")
            if not p.get("targets"):
                errors.append(f"panel {p.get('id')} {p.get('title')!r}: no queries")
            for t in p.get("targets", []):
                if not ds_ok(t.get("datasource")):
                    errors.append(f"panel {p.get('id')} {p.get('title')!r} query {t.get('refId')}: datasource must be {want}")
                queries.append((p.get("title"), t.get("refId"), t.get("expr", "")))
        walk(p.get("panels", []))
walk(dash.get("panels", []))
dupes = sorted({i for i in ids if ids.count(i) > 1}, key=str)
if None in ids:
    errors.append("a panel has no id")
if dupes:
    errors.append(f"duplicate panel ids: {dupes}")
# Each query as a recording rule, with Grafana's variables replaced, so promtool parses it.
subst = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h",
         "$job": ".*", "$instance": ".*", "$route": ".*", "${datasource}": ""}
rules = []
for i, (title, ref, expr) in enumerate(queries):
    for k, v in subst.items():
        expr = expr.replace(k, v)
    if "$" in expr:
        errors.append(f"panel {title!r} query {ref}: unknown variable in {expr!r}")
    rules.append({"record": f"dashboard:query_{i}", "expr": expr})
yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(out, "w"))
if errors:
    sys.exit("lint-observability: FAIL:\n  " + "\n  ".join(errors))
print(f"lint-observability: {len(ids)} panels with unique ids, {len(queries)} queries, all on {want}; "
      f"variables: {', '.join(variables)}")
PY
promtool check rules "$work/dashboard-queries.yaml" >/dev/null ||
  { promtool check rules "$work/dashboard-queries.yaml" || true; die "a dashboard query does not parse"; }
say "every dashboard query parses (promtool check rules on them as recording rules)"

# 6. Metric names against a running binary.
say "[6/6] metric names in $rules and $dashboard against the /metrics of $LINT_PALISADE_BIN"
[[ -x $LINT_PALISADE_BIN ]] ||
  die "no executable palisade at $LINT_PALISADE_BIN (build one, or set LINT_PALISADE_BIN)"

# Free ports: a silent upstream (accepts, never answers: route timeouts and load shedding),
# a closed port (refused connections: errors, breaker, ejections), the proxy and ops listeners.
read -r slow_port closed_port proxy_port ops_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')

# The built-in example config (`palisade config example`) creates only some metric families
# before traffic: a route series appears with its first request, a breaker with its upstream.
# This config turns on every feature with a metric (breaker, health check, concurrency limit,
# Redis-backed policy with an unreachable Redis, API keys, a webhook, a per-IP connection cap)
# so that a few requests make every family appear. A retention job on a SQLite database in the
# temp dir, every minute, with one row past its cutoff, makes the palisade_job_* families appear
# and move (the database file and the job's lock file go with the temp dir).
cat > "$work/catalogue.toml" <<EOF
[log]
level = "warn"
access_log = false

[audit]
sink = "off"

[lifecycle]
drain_delay = "0s"
grace_period = "1s"

[server]
max_connections_per_ip = 3

[ops]
ready_check_interval = "1s"

[upstreams.app]
endpoints = ["127.0.0.1:$closed_port"]
connect_timeout = "200ms"

[upstreams.app.breaker]
consecutive_failures = 1
open_for = "60s"

[upstreams.app.health_check]
path = "/healthz"
interval = "1s"
timeout = "200ms"
unhealthy_threshold = 1

[upstreams.slow]
endpoints = ["127.0.0.1:$slow_port"]
required = false

[redis]
url = "redis://127.0.0.1:$closed_port"
timeout = "50ms"

[rate_limits.local]
limit = 100
per = "1m"

[rate_limits.shared]
limit = 100
per = "1m"
backend = "redis"

[auth.api_keys]
[[auth.api_keys.keys]]
id = "lint"
sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

[[routes]]
name = "limited"
path = "/limited"
upstream = "app"
rate_limits = ["local", "shared"]

[[routes]]
name = "slow"
path = "/slow"
upstream = "slow"
timeout = "1s"
concurrency_limit = 1

[[routes]]
name = "private"
path = "/private"
upstream = "app"
auth = "api_key"

[[routes]]
name = "hook"
path = "/hook"
upstream = "app"
[routes.webhook]
scheme = "github"
secrets = ["lint-only-secret"]

[databases.lint]
url = "sqlite://$work/app.db?mode=rwc"

[jobs.lint-cleanup]
database = "lint"
schedule = "* * * * *"
batch_size = 1000

[[jobs.lint-cleanup.delete]]
table = "gpt_authorization_codes"
time_column = "expires_at"
older_than = "30d"
EOF
python3 - "$work/app.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("CREATE TABLE gpt_authorization_codes (id INTEGER PRIMARY KEY, expires_at TEXT NOT NULL)")
db.execute("CREATE INDEX gpt_authorization_codes_expires_at ON gpt_authorization_codes (expires_at)")
db.execute("INSERT INTO gpt_authorization_codes (expires_at) VALUES ('2000-01-01 00:00:00'), ('2999-01-01 00:00:00')")
db.commit()
PY
if [[ -n ${OBS_LINT_EXTRA_CONFIG:-} ]]; then
  say "appending $OBS_LINT_EXTRA_CONFIG to the catalogue config"
  cat "$OBS_LINT_EXTRA_CONFIG" >> "$work/catalogue.toml"
fi
"${palisade_env[@]}" "$LINT_PALISADE_BIN" validate --config "$work/catalogue.toml" --check-db >/dev/null 2>&1 ||
  { "${palisade_env[@]}" "$LINT_PALISADE_BIN" validate --config "$work/catalogue.toml" --check-db || true; die "the catalogue config does not validate"; }

# The silent upstream: a listening socket that is never accepted from; the kernel completes the
# handshakes, so requests wait for their route timeout.
"${palisade_env[@]}" PALISADE_SERVER__LISTEN=127.0.0.1:$proxy_port PALISADE_OPS__LISTEN=127.0.0.1:$ops_port \
  "$LINT_PALISADE_BIN" run --config "$work/catalogue.toml" >"$work/palisade.log" 2>&1 &
palisade_pid=$!
say "started $LINT_PALISADE_BIN (pid $palisade_pid) with proxy 127.0.0.1:$proxy_port, ops 127.0.0.1:$ops_port"

python3 - "$proxy_port" "$ops_port" "$slow_port" "$palisade_pid" "$work" <<'PY'
import os, signal, socket, sys, threading, time, urllib.request, urllib.error
proxy, ops, slow_port, pid, work = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
silent = socket.socket(); silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
silent.bind(("127.0.0.1", slow_port)); silent.listen(64)
def get(url, timeout=5, headers=None):
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout).status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError as e:
        return type(e).__name__
deadline = time.time() + 15
while get(f"http://127.0.0.1:{ops}/live", 1) != 200:
    if time.time() > deadline:
        sys.exit(f"lint-observability: FAIL: {ops}/live did not answer within 15 s; log:\n" + open(f"{work}/palisade.log").read()[-3000:])
    time.sleep(0.1)
def metrics():
    return urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{ops}/metrics", headers={"Accept": "text/plain"}), timeout=5).read().decode()
# The page before any job run: the job families should already be there, at 0.
open(f"{work}/metrics-start.txt", "w").write(metrics())
results = {}
# Two requests at once on the route with concurrency_limit 1: one waits for the silent
# upstream (504), the other is shed (503).
threads = [threading.Thread(target=lambda i=i: results.__setitem__(f"/slow#{i}", get(f"http://127.0.0.1:{proxy}/slow"))) for i in range(2)]
for t in threads: t.start()
for path in ("/limited", "/limited", "/private", "/hook", "/nowhere"):
    results[path] = get(f"http://127.0.0.1:{proxy}{path}")
for t in threads: t.join()
# More connections from one address than max_connections_per_ip.
held = []
for _ in range(5):
    s = socket.create_connection(("127.0.0.1", proxy)); held.append(s)
time.sleep(0.3)
for s in held: s.close()
# A reload that changes a restart-only setting (log.level) leaves a restart pending.
cfg = f"{work}/catalogue.toml"
text = open(cfg).read()
open(cfg, "w").write(text.replace('level = "warn"', 'level = "error"', 1))
os.kill(pid, signal.SIGHUP)
time.sleep(1.5)  # the health check ejects the closed endpoint; the reload lands
print("lint-observability: traffic: " + ", ".join(f"{k} {v}" for k, v in results.items()) + "; 5 connections held; SIGHUP")
# The job runs every minute (or at start-up, if the binary runs an overdue job then): wait for
# its first success, which deletes the expired row, so the job families have moved.
done = 'palisade_job_runs_total{job_name="lint-cleanup",outcome="success"} '
started = time.time()
page = metrics()
while not any(l.startswith(done) and not l.endswith(" 0") for l in page.splitlines()):
    if time.time() - started > 75:
        print("lint-observability: warning: no successful run of jobs.lint-cleanup within 75 s; log:\n"
              + open(f"{work}/palisade.log").read()[-2000:])
        break
    time.sleep(0.5)
    page = metrics()
else:
    print(f"lint-observability: jobs.lint-cleanup ran (waited {time.time() - started:.0f} s)")
open(f"{work}/metrics.txt", "w").write(page)
silent.close()
PY

# Stop the binary by its PID: SIGTERM (graceful), SIGKILL after 10 s.
kill -TERM "$palisade_pid"
for _ in $(seq 100); do kill -0 "$palisade_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$palisade_pid" 2>/dev/null; then say "pid $palisade_pid still running after 10 s: SIGKILL"; kill -KILL "$palisade_pid"; fi
wait "$palisade_pid" 2>/dev/null || true
say "stopped pid $palisade_pid"
palisade_pid=""

# The jobs commands the runbooks use, on the same config and database.
"${palisade_env[@]}" "$LINT_PALISADE_BIN" jobs list --config "$work/catalogue.toml" >"$work/jobs-list.txt" 2>&1 ||
  { cat "$work/jobs-list.txt"; die "palisade jobs list failed"; }
grep -q '^lint-cleanup .*success' "$work/jobs-list.txt" ||
  { cat "$work/jobs-list.txt"; die "palisade jobs list does not show the successful run of lint-cleanup"; }
"${palisade_env[@]}" "$LINT_PALISADE_BIN" jobs run lint-cleanup --dry-run --config "$work/catalogue.toml" >"$work/jobs-dry-run.txt" 2>&1 ||
  { cat "$work/jobs-dry-run.txt"; die "palisade jobs run lint-cleanup --dry-run failed"; }
say "palisade jobs list and jobs run --dry-run work on the catalogue config"

python3 - "$work/metrics.txt" "$rules" "$dashboard" "$work/metrics-start.txt" <<'PY'
import json, os, re, sys, yaml
metrics_path, rules_file, dash_file, start_path = sys.argv[1:]
# The catalogue: `# TYPE` lines, family -> the sample names it serves.
families = {}
for line in open(metrics_path):
    m = re.match(r"# TYPE (\S+) (\S+)", line)
    if not m:
        continue
    name, kind = m.groups()
    if kind == "counter":
        base = name[:-len("_total")] if name.endswith("_total") else name
        samples = {base + "_total"}
    elif kind == "histogram":
        samples = {name + "_bucket", name + "_sum", name + "_count"}
    elif kind == "summary":
        samples = {name, name + "_sum", name + "_count"}
    else:
        samples = {name}
    families[name] = samples
served = set().union(*families.values()) if families else set()
at_start = set()
for line in open(start_path):
    m = re.match(r"([A-Za-z_:][\w:]*)[{ ]", line)
    if m:
        at_start.add(m.group(1))
print(f"lint-observability: /metrics serves {len(families)} families ({len(served)} sample names)")

# Referenced names: identifiers (colons included, so recording-rule names stay whole) that
# start with palisade_ or process_; recording rules defined in the rules file are excluded.
ident = re.compile(r"(?<![\w:\"'])[A-Za-z_:][\w:]*")
def names(expr):
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values and strings
    return {n for n in ident.findall(expr) if re.match(r"(palisade|process)_", n) and ":" not in n}
used = {}
recorded = set()
for group in yaml.safe_load(open(rules_file))["groups"]:
    for rule in group["rules"]:
        if "record" in rule:
            recorded.add(rule["record"])
        for n in names(rule["expr"]):
            used.setdefault(n, set()).add(f"{rules_file}: {rule.get('alert') or rule.get('record')}")
dash = json.load(open(dash_file))
def walk(panels):
    for p in panels:
        for t in p.get("targets", []):
            for n in names(t.get("expr", "")):
                used.setdefault(n, set()).add(f"{dash_file}: {p.get('title')}")
        walk(p.get("panels", []))
walk(dash.get("panels", []))
for v in dash.get("templating", {}).get("list", []):
    q = v.get("query")
    q = q.get("query", "") if isinstance(q, dict) else (q or "")
    for n in names(q):
        used.setdefault(n, set()).add(f"{dash_file}: variable {v['name']}")
for n in list(used):
    if n in recorded:
        del used[n]
missing = []
for n in sorted(used):
    if n in served:
        if n.startswith("palisade_job_") and n not in at_start:
            print(f"lint-observability: warning: {n} appeared only after the job's first run "
                  "(its series should be on the page at 0 from start-up)")
        continue
    missing.append(n)
    print(f"  {n}: MISSING from /metrics, used in {'; '.join(sorted(used[n]))}")
jobs_used = sorted(n for n in used if n.startswith("palisade_job_"))
print(f"lint-observability: {len(used)} metric names referenced ({len(jobs_used)} palisade_job_*), "
      f"{len(used) - len(missing)} served, {len(missing)} missing")
unused = sorted(f for f, samples in families.items() if not samples & set(used))
for f in unused:
    print(f"lint-observability: warning: {f} is served but neither alerted on nor on the dashboard")
if missing:
    sys.exit("lint-observability: FAIL: metric names not served by the binary")
PY
say "ok"
