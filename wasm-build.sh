#!/usr/bin/env bash
# Builds the filter for Envoy: a size-optimised, stripped, LTO release of the cdylib for
# wasm32-wasip1. Installs the target if it is missing. Prints the artifact path and size.
# `--small`: the size-first build (profile release-small: the filter's own crate at opt-level z
# too), target/wasm32-wasip1/release-small/token_exchange_filter.wasm.
set -euo pipefail
profile=release
if [ "${1:-}" = "--small" ]; then profile=release-small; shift; fi
cd "$(dirname "$0")"
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
  echo "installing the wasm32-wasip1 target" >&2
  rustup target add wasm32-wasip1 >&2
fi
cargo build --profile "$profile" --locked --target wasm32-wasip1 "$@" >&2
out="target/wasm32-wasip1/$profile/token_exchange_filter.wasm"
size=$(wc -c <"$out")
sha=$(sha256sum "$out" | cut -d' ' -f1)
echo "built $out ($size bytes, sha256 $sha: the WasmPlugin's sha256 for this file)" >&2
echo "$PWD/$out"
