#!/usr/bin/env bash
# What every benchmark script needs first: the Python venv with Envoy, wrk (Debian) if missing,
# the filter and the do-nothing floor / host-call lab (bench/noop), both built for wasm32-wasip1.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/bootstrap.sh >/dev/null
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
./wasm-build.sh >/dev/null
(cd bench/noop && cargo build --release --target wasm32-wasip1 -q)
