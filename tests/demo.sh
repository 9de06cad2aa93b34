#!/usr/bin/env bash
# The demo: build the filter, start Envoy with it, a local IdP and an echo upstream, and show an
# accepted request (with the identity the upstream receives) and refused ones. Pass --serve to
# keep it running.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/bootstrap.sh >/dev/null
./wasm-build.sh >/dev/null
exec .venv/bin/python tests/demo.py "$@"
