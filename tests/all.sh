#!/usr/bin/env bash
# Every test: lints, native unit and vector tests, the wasm build, Envoy config validation,
# and the end-to-end suite in a real Envoy. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/bootstrap.sh --with-oldest-envoy
echo "== clippy (native + wasm32; unwrap/expect/panic are denied outside tests)"
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo clippy --locked --release --target wasm32-wasip1 -- -D warnings
echo "== unit and vector tests (native)"
cargo test --locked --workspace
echo "== wasm build"
./wasm-build.sh >/dev/null
echo "== fuzzing (each target ${TEF_FUZZ_SECONDS:-20}s from the seed corpus)"
tests/fuzz.sh "${TEF_FUZZ_SECONDS:-20}"
command -v docker-compose >/dev/null || { apt-get update -qq && apt-get install -y -qq docker-compose >/dev/null; }  # compose `config` check only
# wrk: the live-configuration e2e test and the soak drive load with it.
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
echo "== end to end, real Envoy 1.40"
.venv/bin/python -m pytest tests/e2e -q -p no:cacheprovider "$@"
echo "== end to end again on the oldest supported Envoy (1.36.2)"
ENVOY_BIN="$PWD/.venv-envoy-1.36/bin/envoy" .venv/bin/python -m pytest tests/e2e -q -p no:cacheprovider "$@"
echo "== the size-first build (./wasm-build.sh --small, profile release-small), end to end on Envoy 1.40"
small="$(./wasm-build.sh --small)"  # its own statement: set -e stops on a failed build
TEF_WASM="$small" .venv/bin/python -m pytest tests/e2e -q -p no:cacheprovider "$@"
echo "== bounded soak (${TEF_SOAK_SECONDS:-45}s at 400 req/s, 100000 distinct tokens through 20000 cache slots)"
.venv/bin/python tests/soak.py "${TEF_SOAK_SECONDS:-45}" 100000 400
