#!/usr/bin/env bash
# The whole test suite, as CI runs it: services up, formatting, lints, every test, and the
# offline checks of the deploy kit.
# Usage: scripts/test.sh            (from anywhere inside the repository)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
bash scripts/deploy-lint.sh
