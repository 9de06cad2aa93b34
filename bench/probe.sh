#!/usr/bin/env bash
# Hot-path breakdown: builds the filter with compile-time probes and compares, interleaved:
# floor → +reading the headers → +deciding → +applying (the real build). `bench/probe.sh EdDSA`
# (or RS256, ES256): the cold path; `bench/probe.sh shared`: every request a shared-data hit.
set -euo pipefail
cd "$(dirname "$0")/.."
bench/prepare.sh
mkdir -p bench/out
for p in entry headers decide; do
  TEF_PROBE=$p cargo build --release --locked --target wasm32-wasip1 --target-dir target/probe-$p -q
  cp target/probe-$p/wasm32-wasip1/release/token_exchange_filter.wasm bench/out/tef-probe-$p.wasm
done
exec .venv/bin/python bench/probe.py "$@"
