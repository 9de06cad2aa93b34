#!/usr/bin/env bash
# Runs every cargo-fuzz target (or the ones named after the time) for a bounded time (default 20 s
# each; `tests/fuzz.sh 3600` for an hour each, `tests/fuzz.sh 3600 token jwks` for two targets)
# from the committed seed corpus, failing on any crash. Needs the nightly toolchain
# (installed on this project's machines) and cargo-fuzz (installed here if missing).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-20}"
shift || true
if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz: no nightly toolchain on this machine; trying to install it" >&2
  rustup toolchain install nightly --profile minimal >&2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2 >&2
fi
targets="${*:-$(cargo +nightly fuzz list)}"
for t in $targets; do
  mkdir -p "corpus/$t"
  # A scratch copy of the seeds: what the run discovers is not committed.
  work=$(mktemp -d)
  cp -r "corpus/$t/." "$work/"
  echo "== fuzz $t for ${secs}s"
  log="$work.log"
  status=0
  cargo +nightly fuzz run "$t" "$work" -- -max_total_time="$secs" -max_len=16384 -rss_limit_mb=2048 \
    -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY)|panicked|ERROR|Running:|crash-" "$log" || true
  rm -rf "$work"
  if [ "$status" -ne 0 ]; then
    tail -60 "$log" >&2
    echo "fuzz target $t FAILED (exit $status); reproduce with: cd fuzz && cargo +nightly fuzz run $t fuzz/artifacts/$t/<crash>" >&2
    exit 1
  fi
  rm -f "$log"
done
echo "fuzz: every target ran ${secs}s without a crash"
