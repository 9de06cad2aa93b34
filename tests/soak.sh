#!/usr/bin/env bash
# Bounded soak in a real Envoy at a fixed rate: tests/soak.sh [seconds=45] [tokens=100000] [rate=400].
set -euo pipefail
cd "$(dirname "$0")/.."
tests/bootstrap.sh >/dev/null
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
./wasm-build.sh >/dev/null
exec .venv/bin/python tests/soak.py "$@"
