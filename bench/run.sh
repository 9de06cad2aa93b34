#!/usr/bin/env bash
# The benchmark, one command: installs wrk (Debian) if missing, builds the filter and the
# do-nothing proxy-wasm floor, runs bench/bench.py. See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bench/prepare.sh
exec .venv/bin/python bench/bench.py "$@"
