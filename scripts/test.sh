#!/usr/bin/env bash
# Installs what is missing, builds everything once and runs the whole test suite: formatting,
# clippy, unit tests of the SDK and of every driver (natively), and the integration tests
# (drivers as real components in the wasmtime host; the API on SQLite and on PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

skip=()
if [ -n "${NEUTRINO_TEST_POSTGRES_URL:-}" ]; then
    echo "test: PostgreSQL tests use NEUTRINO_TEST_POSTGRES_URL"
elif [ "$(id -u)" -eq 0 ]; then
    read -r url pgdir < <(bash scripts/postgres.sh)
    trap 'bash scripts/postgres.sh stop "$pgdir"' EXIT
    export NEUTRINO_TEST_POSTGRES_URL="$url"
    echo "test: started a throw-away PostgreSQL at $url"
else
    echo "################################################################################"
    echo "test: SKIPPING every PostgreSQL test: not root, and NEUTRINO_TEST_POSTGRES_URL unset"
    echo "################################################################################"
    skip=(-- --skip postgres)
fi
cargo test --workspace "${skip[@]}"
if [ "${#skip[@]}" -gt 0 ]; then
    echo "test: PostgreSQL tests were SKIPPED (see above); they run in CI as root"
fi
