#!/usr/bin/env bash
# Makes <repo>/.venv hold the real OpenStack clients (python-openstackclient, openstacksdk) from
# PyPI, for the tests that drive `neutrino serve` with them (host/tests/real_clients.rs). Safe to
# run again: an existing, working venv is reused and only added to (other tests install their
# own packages into the same venv), so a second run takes about a second. Exits non-zero when the
# venv cannot be made (no Python, no way to reach PyPI); scripts/test.sh then skips those tests.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$PWD/.venv"

# Pinned: the tests assert on the clients' output (column names, JSON keys), which a new client
# release may change. Bump deliberately, after running the tests with the new versions.
packages=(python-openstackclient==10.5.0 openstacksdk==4.22.0)

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    # No venv, or one whose interpreter has gone (e.g. the Python it was made from was removed).
    echo "clients-venv: creating $venv"
    python3 -m venv --clear "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check "${packages[@]}"
sdk=$("$venv/bin/python" -c 'import openstack.version, openstackclient; print(openstack.version.__version__)')
cli=$("$venv/bin/openstack" --version 2>&1)
echo "clients-venv: ready ($cli, openstacksdk $sdk)"
