#!/usr/bin/env bash
# Installs what is missing, builds everything once and runs the whole test suite: formatting,
# clippy, unit tests of the SDK and of every driver (natively), and the integration tests
# (drivers as real components in the wasmtime host; the API on SQLite and on PostgreSQL; the
# real `openstack` CLI and openstacksdk against `neutrino serve`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# One build, no incremental caches: they only cost disk on a fresh clone.
export CARGO_INCREMENTAL=0
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

banner() {
    echo "################################################################################"
    echo "$1"
    echo "################################################################################"
}

filters=()
if [ -n "${NEUTRINO_TEST_POSTGRES_URL:-}" ]; then
    echo "test: PostgreSQL tests use NEUTRINO_TEST_POSTGRES_URL"
elif [ "$(id -u)" -eq 0 ]; then
    read -r url pgdir < <(bash scripts/postgres.sh)
    trap 'bash scripts/postgres.sh stop "$pgdir"' EXIT
    export NEUTRINO_TEST_POSTGRES_URL="$url"
    echo "test: started a throw-away PostgreSQL at $url"
else
    banner "test: SKIPPING every PostgreSQL test: not root, and NEUTRINO_TEST_POSTGRES_URL unset"
    filters+=(--skip postgres)
fi

# The real OpenStack clients in <repo>/.venv (made once, reused after). Without them the client
# tests skip themselves, each with a SKIP line counted below.
if ! bash scripts/clients-venv.sh; then
    export NEUTRINO_CLIENTS_UNAVAILABLE="scripts/clients-venv.sh could not make the venv (is PyPI reachable?)"
    banner "test: SKIPPING the OpenStack client tests: $NEUTRINO_CLIENTS_UNAVAILABLE"
fi

# The --auth keystone tests start a real Keystone themselves (scripts/keystone.sh); install it
# here, once, so that only a machine where it cannot be installed at all skips them.
if ! bash scripts/keystone.sh install; then
    banner "test: SKIPPING the real Keystone tests: Keystone could not be installed (see above)"
    filters+=(--skip real_keystone)
fi

log=$(mktemp)
trap 'rm -f "$log"; [ -z "${pgdir:-}" ] || bash scripts/postgres.sh stop "$pgdir"' EXIT
cargo test --workspace --no-fail-fast -- "${filters[@]}" 2>&1 | tee "$log"

# Tests that could not run print `SKIP <binary>::<test>: <why>` (past the harness's capture) and
# return; the harness counts them as passed, so they are taken out of the passed count here. The
# line may follow the harness's own progress output, so it is matched anywhere on a line.
skip_re='SKIP [A-Za-z0-9_]+::.*'
skipped=$(grep -cE "$skip_re" "$log" || true)
read -r passed failed filtered < <(sed -nE \
    's/^test result: .* ([0-9]+) passed; ([0-9]+) failed; [0-9]+ ignored; [0-9]+ measured; ([0-9]+) filtered out.*/\1 \2 \3/p' \
    "$log" | awk '{p+=$1; f+=$2; x+=$3} END {print p+0, f+0, x+0}')
if [ "$skipped" -gt 0 ] || [ "$filtered" -gt 0 ]; then
    banner "test: SKIPPED: $filtered filtered out (see above), $skipped at run time:
$(grep -oE "$skip_re" "$log" || true)"
fi
echo "test: $((passed - skipped)) passed, $failed failed, $((skipped + filtered)) skipped"
