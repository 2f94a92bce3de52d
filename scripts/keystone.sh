#!/usr/bin/env bash
# A real Keystone (OpenStack Identity v3) for the tests of `neutrino serve --auth keystone`.
#
#   bash scripts/keystone.sh install       installs Keystone into the virtualenv .venv
#   bash scripts/keystone.sh start         starts a throw-away instance on 127.0.0.1 and prints
#                                          "<url> <admin password> <dir>"
#   bash scripts/keystone.sh stop <dir>    stops it and removes its directory
#
# The virtualenv is shared with other tools (python-openstackclient, openstacksdk): it is created
# when absent and otherwise only ever has packages added. An instance keeps everything in its
# directory: SQLite database, fernet keys, logs; it serves Keystone's WSGI application with the
# standard library's server (scripts/keystone_server.py). With NEUTRINO_KEYSTONE_WATCH_PID set,
# the server also exits when that process does, so a killed test leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$PWD/.venv"
# Releases of the 2025-2026 cycles; a newer major is tried only after someone reads its notes.
keystone_requirement='keystone>=27,<31'

install() {
    if [ -x "$venv/bin/keystone-manage" ]; then
        return 0
    fi
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        echo "keystone: installing python3 and python3-venv" >&2
        apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3 python3-venv >&2
    fi
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv" >&2
    fi
    echo "keystone: installing $keystone_requirement into $venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check "$keystone_requirement" >&2
}

start() {
    install
    local dir password
    dir=$(mktemp -d /tmp/neutrino-keystone.XXXXXX)
    password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
    mkdir -p "$dir/fernet-keys" "$dir/fernet-receipts" "$dir/credential-keys"
    cat >"$dir/keystone.conf" <<CONF
[DEFAULT]
log_file = $dir/keystone.log
[database]
connection = sqlite:///$dir/keystone.db
[token]
provider = fernet
expiration = 3600
[identity]
# bcrypt's minimum: users are created and authenticated many times in tests.
password_hash_rounds = 4
[fernet_tokens]
key_repository = $dir/fernet-keys
[fernet_receipts]
key_repository = $dir/fernet-receipts
[credential]
key_repository = $dir/credential-keys
CONF
    local manage=("$venv/bin/keystone-manage" --config-file "$dir/keystone.conf")
    {
        "${manage[@]}" db_sync
        "${manage[@]}" fernet_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"
        "${manage[@]}" credential_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"
        "${manage[@]}" bootstrap --bootstrap-password "$password" --bootstrap-region-id RegionOne
    } >"$dir/setup.log" 2>&1 || { echo "keystone: setup failed, see $dir/setup.log" >&2; tail -n 20 "$dir/setup.log" >&2; exit 1; }
    setsid "$venv/bin/python" scripts/keystone_server.py "$dir/keystone.conf" "$dir/port" \
        "${NEUTRINO_KEYSTONE_WATCH_PID:-}" </dev/null >"$dir/server.log" 2>&1 &
    echo $! >"$dir/pid"
    local url=""
    for _ in $(seq 1 300); do
        if [ -s "$dir/port" ]; then
            url="http://127.0.0.1:$(cat "$dir/port")"
            if "$venv/bin/python" - "$url/v3" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2)
PY
            then
                echo "$url $password $dir"
                return 0
            fi
        fi
        if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    echo "keystone: the server did not come up, see $dir/server.log" >&2
    tail -n 20 "$dir/server.log" >&2
    kill "$(cat "$dir/pid")" 2>/dev/null || true
    exit 1
}

stop() {
    local dir=$1
    case "$dir" in
        /tmp/neutrino-keystone.*) ;;
        *) echo "keystone: not an instance directory: $dir" >&2; exit 2 ;;
    esac
    if [ -f "$dir/pid" ]; then
        kill "$(cat "$dir/pid")" 2>/dev/null || true
    fi
    rm -rf "$dir"
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop "${2:?usage: keystone.sh stop <dir>}" ;;
    *) echo "usage: keystone.sh install | start | stop <dir>" >&2; exit 2 ;;
esac
