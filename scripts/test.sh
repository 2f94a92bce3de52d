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
skipped=()
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
    skip+=(--skip postgres)
    skipped+=("PostgreSQL tests (they run in CI as root)")
fi
# The --auth keystone tests start a real Keystone themselves (scripts/keystone.sh); install it
# here, once, so that only a machine where it cannot be installed at all skips them.
if ! bash scripts/keystone.sh install; then
    echo "################################################################################"
    echo "test: SKIPPING the real Keystone tests: Keystone could not be installed (see above)"
    echo "################################################################################"
    skip+=(--skip real_keystone)
    skipped+=("real Keystone tests (Keystone could not be installed)")
fi
if [ "${#skip[@]}" -gt 0 ]; then
    cargo test --workspace -- "${skip[@]}"
else
    cargo test --workspace
fi
for s in "${skipped[@]}"; do
    echo "test: SKIPPED: $s; see above"
done
