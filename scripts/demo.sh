#!/usr/bin/env bash
# The README's first command: set everything up, then run the short glibc-vs-jemalloc comparison.
# Extra arguments go to `sandbox experiment` (e.g. --repeats 5).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/sandbox experiment experiments/quick.yml "$@"
