#!/usr/bin/env bash
# Envoy's memory with the filter next to the do-nothing floor, by worker count (bench/memory.py).
# `--small` builds and measures the size-first build too; `--release` adds Envoy's
# memory_allocator_manager (free heap given back every second).
set -euo pipefail
cd "$(dirname "$0")/.."
bench/prepare.sh
if [[ " $* " == *" --small "* ]]; then ./wasm-build.sh --small >/dev/null; fi
exec .venv/bin/python bench/memory.py "$@"
