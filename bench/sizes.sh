#!/usr/bin/env bash
# The .wasm size per optimisation level (issue 4: ≤ 600 KB including RSA; speed first).
# Builds the release cdylib for wasm32-wasip1 once per setting, into bench/out/sizes-target so the
# normal build is untouched, and prints a Markdown table. The shipped setting is Cargo.toml's:
# the filter's crate at 3, dependencies at z except sha2 and curve25519-dalek at 3.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1 >&2
export CARGO_TARGET_DIR="$PWD/bench/out/sizes-target"
build() { # name, cargo --config overrides…
  local name=$1; shift
  local args=()
  for c in "$@"; do args+=(--config "$c"); done
  cargo build -q --release --locked --target wasm32-wasip1 "${args[@]}" >&2
  printf '| %s | %s |\n' "$name" "$(wc -c <"$CARGO_TARGET_DIR/wasm32-wasip1/release/token_exchange_filter.wasm")"
}
all() { # a TOML value: 3 as is, "s"/"z" quoted
  local v=$1; case $v in s|z) v="'$v'" ;; esac
  echo "profile.release.opt-level=$v" "profile.release.package.\"*\".opt-level=$v" \
    "profile.release.package.sha2.opt-level=$v" "profile.release.package.curve25519-dalek.opt-level=$v"; }
echo "| opt-level | .wasm bytes |"
echo "|---|---:|"
build "shipped: crate 3, deps z (sha2, curve25519-dalek 3)"
for l in ${LEVELS:-3 2 s z}; do
  # shellcheck disable=SC2046
  build "everything $l" $(all "$l")
done
