#!/usr/bin/env bash
# Installs what is missing, builds everything once and runs the whole test suite: formatting,
# clippy, unit tests of the SDK and of every driver (natively), and the integration tests
# (drivers as real components in the wasmtime host).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace
