#!/usr/bin/env bash
# The price of single host calls (bench/hostcalls.py): bench/hostcalls.sh [rounds=5] [setup …]
set -euo pipefail
cd "$(dirname "$0")/.."
bench/prepare.sh
exec .venv/bin/python bench/hostcalls.py "$@"
