#!/usr/bin/env bash
# Builds Neutrino (release) and runs it. With no arguments it serves the Networking API on
# http://127.0.0.1:9696 with its embedded SQLite database in ./.neutrino; any arguments go to
# `neutrino` instead (try `bash scripts/run.sh --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$#" -eq 0 ]; then set -- serve --data-dir "$PWD/.neutrino"; fi
exec cargo run --quiet --release -p neutrino -- "$@"
