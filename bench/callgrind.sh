#!/usr/bin/env bash
# The hot path in instructions per request under valgrind's callgrind (bench/callgrind.py):
# repeatable where CPU time on a shared machine is not. Installs valgrind (Debian) if missing.
# `bench/probe.sh` first adds the probe builds (entry, headers, decide) to the table.
set -euo pipefail
cd "$(dirname "$0")/.."
bench/prepare.sh
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; }
exec .venv/bin/python bench/callgrind.py "$@"
