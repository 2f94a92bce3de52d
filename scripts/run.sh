#!/usr/bin/env bash
# Builds Neutrino (release) and runs it. With no arguments it serves the Networking API on
# http://127.0.0.1:9696 (NEUTRINO_LISTEN to change it) with its embedded SQLite database in
# ./.neutrino and, as root, the agent for this host with examples/all-in-one.toml (the Linux
# bridge driver, which needs nothing but the kernel); any arguments go to `neutrino` instead
# (try `bash scripts/run.sh --help`). NEUTRINO_BIN runs that binary instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$#" -eq 0 ]; then
    set -- serve --data-dir "$PWD/.neutrino" --config "$PWD/examples/all-in-one.toml"
fi
if [ -n "${NEUTRINO_BIN:-}" ]; then
    exec "$NEUTRINO_BIN" "$@"
fi
bash scripts/setup.sh
# Not --quiet: the first build takes minutes, and cargo's progress shows that it is working.
echo "run: building neutrino (release; the first build takes several minutes)" >&2
exec cargo run --release -p neutrino -- "$@"
