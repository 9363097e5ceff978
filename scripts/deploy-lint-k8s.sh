#!/usr/bin/env bash
# Offline checks of the Kubernetes deploy kit: the Helm chart deploy/helm/palisade and the
# kustomize manifests deploy/kubernetes. No cluster, no Docker engine, no network beyond PyPI
# (for the tools, installed once into a virtualenv).
#
#   scripts/deploy-lint-k8s.sh                 run every check
#   scripts/deploy-lint-k8s.sh --update-base   regenerate deploy/kubernetes/base from the chart
#
# LINT_PALISADE_BIN names the palisade binary whose `validate` checks every rendered config
# (default /work/bin/palisade). The steps, in order:
#   1. yamllint on the chart's values, Chart.yaml, ci/ values, the alerts and deploy/kubernetes;
#   2. the PrometheusRule's source: files/alerts.yaml links to deploy/prometheus/alerts.yaml, and
#      `helm package` stores that file's contents in the archive;
#   3. helm lint --strict and helm template of every ci/*-values.yaml (Helm v4's own engine,
#      linter and values.schema.json validation through helm-python-sdk), and NOTES.txt;
#   4. values the chart must refuse at render time (schema typos, a grace period shorter than
#      the drain, a PDB that blocks drains, a job on an unknown database);
#   5. deploy/kubernetes/base equals a fresh render of the chart's defaults, and
#      deploy/kubernetes/examples/with-jobs one of ci/with-jobs-values.yaml;
#   6. kustomize builds of the base and the production overlay (scripts/kustomize_lite.py, and
#      `kubectl kustomize` too when kubectl is installed, whose build must be identical);
#   7. yamllint on everything rendered;
#   8. kubernetes-validate --strict against Kubernetes 1.30 on everything rendered;
#   9. ServiceMonitor and PrometheusRule against prometheus-operator's CRD schemas;
#  10. checkov (framework kubernetes) on everything rendered: no failed check except those in
#      deploy/helm/palisade/ci/checkov-skips.yaml, each with its reason;
#  11. Palisade's own rules (scripts/deploy_checks.py), including `palisade validate` of every
#      rendered config.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z ${LINT_PALISADE_BIN:-} ]]; then
  for candidate in target/release/palisade target/debug/palisade /work/bin/palisade; do
    if [[ -x $candidate ]]; then LINT_PALISADE_BIN=$candidate; break; fi
  done
fi
PALISADE_BIN="${LINT_PALISADE_BIN:-target/release/palisade}"
chart=deploy/helm/palisade
kube_version=1.30.0
venv="${PALISADE_LINT_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/palisade-deploy-lint/venv}"
# Versions verified together; the virtualenv is rebuilt when this list changes.
requirements=(
  checkov==3.3.30
  kubernetes-validate==1.37.0
  yamllint==1.38.0
  jsonpatch==1.33
  helm-python-sdk==0.2.2
  cloudcoil-models-prometheus-operator==0.80.1.0
)

say() { echo "deploy-lint-k8s: $*"; }
fail() { echo "deploy-lint-k8s: FAILED: $*" >&2; exit 1; }
step() { echo; echo "== deploy-lint-k8s: $*"; }

# --- tools -----------------------------------------------------------------------------------
# Into their own virtualenv: checkov pins versions (boto3, botocore...) that would clash with
# whatever else the machine's Python holds.
if [[ ! -x $venv/bin/python || "$(cat "$venv/.requirements" 2>/dev/null)" != "${requirements[*]}" ]]; then
  say "installing ${requirements[*]} into $venv (pip, PyPI)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${requirements[@]}"
  echo "${requirements[*]}" >"$venv/.requirements"
fi
py="$venv/bin/python"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# Helm's loader logs that it follows files/alerts.yaml's link on every load: expected, dropped.
helm_sdk() {
  local rc=0
  "$py" scripts/helm_sdk.py "$@" 2>"$out/helm.err" || rc=$?
  grep -v 'found symbolic link in path' "$out/helm.err" >&2 || true
  return "$rc"
}

# The committed renders: the base (the chart's defaults) and the maintenance-jobs example.
render_committed() {
  local into=$1
  mkdir -p "$into/base" "$into/examples/with-jobs"
  helm_sdk template "$chart" --base-dir "$into/base"
  helm_sdk template "$chart" -f "$chart/ci/with-jobs-values.yaml" --base-dir "$into/examples/with-jobs"
}
if [[ ${1:-} == --update-base ]]; then
  render_committed deploy/kubernetes
  say "deploy/kubernetes/base and examples/with-jobs regenerated from $chart"
  exit 0
fi
[[ $# -eq 0 ]] || fail "unknown arguments: $*"

test -x "$PALISADE_BIN" || fail "LINT_PALISADE_BIN=$PALISADE_BIN is not an executable palisade binary"
say "palisade binary: $PALISADE_BIN ($("$PALISADE_BIN" --version))"

# --- 1 ----------------------------------------------------------------------------------------
step "1. yamllint (.yamllint) on the chart's values, Chart.yaml, ci/ and deploy/kubernetes (deploy/prometheus has its own, in deploy-lint-observability.sh)"
"$venv/bin/yamllint" --strict -c .yamllint "$chart/Chart.yaml" "$chart/values.yaml" "$chart/ci" \
  deploy/kubernetes
say "yamllint clean"

# --- 2 ----------------------------------------------------------------------------------------
step "2. the PrometheusRule's rules are deploy/prometheus/alerts.yaml"
[[ -L $chart/files/alerts.yaml ]] || fail "$chart/files/alerts.yaml must be a symlink to ../../../prometheus/alerts.yaml"
[[ $(readlink -f "$chart/files/alerts.yaml") == "$(readlink -f deploy/prometheus/alerts.yaml)" ]] ||
  fail "$chart/files/alerts.yaml does not resolve to deploy/prometheus/alerts.yaml"
"$py" -c 'import sys, yaml; g = yaml.safe_load(open(sys.argv[1]))["groups"]; assert g and all(x.get("rules") for x in g), "no groups/rules"; print("deploy-lint-k8s:", len(g), "group(s),", sum(len(x["rules"]) for x in g), "rule(s); Helm follows the link when it loads the chart")' deploy/prometheus/alerts.yaml

mkdir -p "$out/package"
archive=$(helm_sdk package "$chart" --destination "$out/package") || fail "helm package $chart"
tar -xzOf "$archive" palisade/files/alerts.yaml | cmp -s - deploy/prometheus/alerts.yaml ||
  fail "the packaged chart's files/alerts.yaml is not deploy/prometheus/alerts.yaml"
say "helm package: $(basename "$archive") carries the alerts file's contents"

# --- 3 ----------------------------------------------------------------------------------------
step "3. helm lint --strict and helm template (Helm $("$py" -c 'import helm_python as h; print(h.helm_sdk_version())') SDK, kube $kube_version) of every ci/*-values.yaml"
renders=()
for values in "$chart"/ci/*-values.yaml; do
  name=$(basename "$values" -values.yaml)
  helm_sdk lint "$chart" -f "$values" --kube-version "v$kube_version" | sed "s/^/  $name: /" ||
    fail "helm lint --strict $values"
  helm_sdk template "$chart" -f "$values" >"$out/$name.yaml" || fail "helm template -f $values"
  helm_sdk template "$chart" -f "$values" --notes >"$out/$name.notes" || fail "NOTES.txt with $values"
  say "$name: rendered $(grep -c '^kind:' "$out/$name.yaml") objects; NOTES.txt renders"
  renders+=("$name")
done

# --- 4 ----------------------------------------------------------------------------------------
step "4. values the chart must refuse"
refuse() {
  local what=$1 expect=$2 values=$3
  printf '%s\n' "$values" >"$out/refuse.yaml"
  if helm_sdk template "$chart" -f "$out/refuse.yaml" >/dev/null 2>"$out/refuse.err"; then
    fail "the chart rendered $what"
  fi
  grep -q -- "$expect" "$out/refuse.err" || { cat "$out/refuse.err" >&2; fail "$what: refused without naming \"$expect\""; }
  say "refused: $what"
}
refuse "a misspelt value (replicas)" "replicas" $'replicas: 3'
refuse "a writable root filesystem" "readOnlyRootFilesystem" $'securityContext:\n  readOnlyRootFilesystem: false'
refuse "an HPA below 2 replicas" "minReplicas" $'autoscaling:\n  enabled: true\n  minReplicas: 1'
refuse "terminationGracePeriodSeconds below drain_delay + grace_period" "must be above" $'terminationGracePeriodSeconds: 30'
refuse "a PDB minAvailable equal to the replicas" "must be below replicaCount" $'podDisruptionBudget:\n  minAvailable: 2'
refuse "a job on a database not under config.databases" "is not under config.databases" \
  $'config:\n  jobs:\n    x:\n      database: nope\n      schedule: "0 * * * *"\n      runner: cronjob'
refuse "a cron schedule that is neither 5 fields nor @hourly-like" "schedule" \
  $'config:\n  databases:\n    app:\n      url: "${env:U}"\n  jobs:\n    x:\n      database: app\n      schedule: "hourly"'
refuse "a literal postgres:// URL instead of a secret reference" "url" \
  $'config:\n  databases:\n    app:\n      url: "postgres://u:pw@db/app"'
refuse "sidecar mode without an app image" "sidecar.app.image is required" $'mode: sidecar'

# --- 5 ----------------------------------------------------------------------------------------
step "5. deploy/kubernetes/base and examples/with-jobs equal fresh renders of the chart"
render_committed "$out/committed"
for file in base/palisade.yaml base/monitoring.yaml examples/with-jobs/palisade.yaml examples/with-jobs/monitoring.yaml; do
  diff -u "deploy/kubernetes/$file" "$out/committed/$file" ||
    fail "deploy/kubernetes/$file is out of date: run scripts/deploy-lint-k8s.sh --update-base"
done
say "base and examples/with-jobs in sync with the chart"

# --- 6 ----------------------------------------------------------------------------------------
step "6. kustomize builds of deploy/kubernetes/base, overlays/production and examples/with-jobs"
for dir in base overlays/production examples/with-jobs; do
  name=kustomize-$(basename "$dir")
  if command -v kubectl >/dev/null; then
    kubectl kustomize "deploy/kubernetes/$dir" >"$out/$name.kubectl" || fail "kubectl kustomize $dir"
    "$py" scripts/kustomize_lite.py "deploy/kubernetes/$dir" --compare "$out/$name.kubectl" >"$out/$name.yaml" ||
      fail "scripts/kustomize_lite.py and kubectl kustomize build $dir differently"
    say "$dir: kubectl kustomize and scripts/kustomize_lite.py build the same objects"
  else
    "$py" scripts/kustomize_lite.py "deploy/kubernetes/$dir" >"$out/$name.yaml" || fail "kustomize_lite $dir"
    say "$dir: built by scripts/kustomize_lite.py (no kubectl here to cross-check it)"
  fi
  renders+=("$name")
done

# --- 7 ----------------------------------------------------------------------------------------
step "7. yamllint on everything rendered"
files=()
for name in "${renders[@]}"; do files+=("$out/$name.yaml"); done
"$venv/bin/yamllint" --strict -c .yamllint "${files[@]}"
say "yamllint clean: ${renders[*]}"

# --- 8 ----------------------------------------------------------------------------------------
step "8. kubernetes-validate --strict -k $kube_version on everything rendered"
for name in "${renders[@]}"; do
  "$venv/bin/kubernetes-validate" --strict -k "$kube_version" "$out/$name.yaml" >"$out/kv.log" 2>&1 ||
    { cat "$out/kv.log" >&2; fail "kubernetes-validate $name"; }
  # kubernetes-validate passes kinds it has no schema for with a warning; only the
  # prometheus-operator ones (checked in step 9) may be among them.
  if grep "Couldn't find schema" "$out/kv.log" | grep -v 'api version monitoring.coreos.com/v1 ' >&2; then
    fail "$name: objects without a Kubernetes $kube_version schema"
  fi
  say "$name: $(grep -c ' passed for resource ' "$out/kv.log") objects valid, $(grep -c "Couldn't find schema" "$out/kv.log" || true) CRD objects left to step 9"
done

# --- 9 ----------------------------------------------------------------------------------------
step "9. ServiceMonitor and PrometheusRule against prometheus-operator's CRD schemas"
"$py" scripts/deploy_checks.py crds "${files[@]}"

# --- 10 ---------------------------------------------------------------------------------------
step "10. checkov --framework kubernetes on everything rendered (skips: $chart/ci/checkov-skips.yaml)"
for name in "${renders[@]}"; do
  skips=$("$py" - "$chart/ci/checkov-skips.yaml" "$name" <<'EOF'
import sys, yaml
entries = yaml.safe_load(open(sys.argv[1]))["skips"]
for entry in entries:
    assert entry.get("reason", "").strip(), f"{entry['check']}: a skip needs a reason"
print(",".join(e["check"] for e in entries if sys.argv[2] in e["renders"]))
EOF
  )
  mkdir -p "$out/checkov-$name"
  cp "$out/$name.yaml" "$out/checkov-$name/"
  # --skip-download: no policy metadata from Prisma Cloud (offline; open-source checks only).
  "$venv/bin/checkov" --quiet --compact --skip-download --framework kubernetes \
    -d "$out/checkov-$name" ${skips:+--skip-check "$skips"} >"$out/checkov.log" 2>&1 ||
    { cat "$out/checkov.log" >&2; fail "checkov $name"; }
  summary=$(grep -E 'Passed checks: [0-9]+, Failed checks: 0' "$out/checkov.log") ||
    { cat "$out/checkov.log" >&2; fail "checkov $name: no clean summary"; }
  say "$name: $summary${skips:+ (skipped by reason: $skips)}"
done

# --- 11 ---------------------------------------------------------------------------------------
step "11. Palisade's own rules (scripts/deploy_checks.py) and palisade validate of every config"
"$py" scripts/deploy_checks.py manifests --palisade "$PALISADE_BIN" "${files[@]}"

echo
say "ok: ${renders[*]}"
