#!/usr/bin/env bash
# Builds Neutrino (release) and runs it. With no arguments it loads the configured mechanism
# drivers in binding order and shows what each declares; any arguments go to `neutrino`
# (try `bash scripts/run.sh --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$#" -eq 0 ]; then set -- drivers; fi
exec cargo run --quiet --release -p neutrino -- "$@"
