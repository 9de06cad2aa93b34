#!/usr/bin/env bash
# The price of single host calls (bench/hostcalls.py): bench/hostcalls.sh [rounds=5]
set -euo pipefail
cd "$(dirname "$0")/.."
tests/bootstrap.sh >/dev/null
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
./wasm-build.sh >/dev/null
(cd bench/noop && cargo build --release --target wasm32-wasip1 -q)
exec .venv/bin/python bench/hostcalls.py "$@"
