#!/usr/bin/env bash
# Starts a throw-away PostgreSQL cluster for the test suite (installing the server if it is
# missing) and prints `<url> <data dir>`. Needs root (it runs the server as user postgres).
# Stop it with: scripts/postgres.sh stop <data dir>
set -euo pipefail

pgbin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

if [ "${1:-}" = "stop" ]; then
    su postgres -c "$(pgbin)/pg_ctl -D '$2/data' -m immediate stop" >/dev/null 2>&1 || true
    rm -rf "$2"
    exit 0
fi

if [ -z "$(pgbin)" ] || ! id postgres >/dev/null 2>&1; then
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
fi
dir=$(mktemp -d /tmp/neutrino-pg.XXXXXX)
chown postgres "$dir"
port=$(( 20000 + RANDOM % 20000 ))
su postgres -c "$(pgbin)/initdb -D '$dir/data' -A trust -U postgres" >"$dir/initdb.log" 2>&1
su postgres -c "$(pgbin)/pg_ctl -D '$dir/data' -l '$dir/server.log' -w \
    -o \"-p $port -k '$dir' -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off\" start" >&2
echo "postgres://postgres@127.0.0.1:$port/postgres $dir"
