#!/usr/bin/env bash
# The benchmark, one command: installs wrk (Debian) if missing, builds the filter and the
# do-nothing proxy-wasm floor, runs bench/bench.py. See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/bootstrap.sh >/dev/null
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
./wasm-build.sh >/dev/null
(cd bench/noop && cargo build --release --target wasm32-wasip1 -q)
exec .venv/bin/python bench/bench.py "$@"
