#!/usr/bin/env bash
# The README's first command: set everything up, then run the short glibc-vs-jemalloc comparison
# until its after-idle RSS is decided (--until-verdict: from 3 repeats on, at most 8).
# Extra arguments go to `sandbox experiment` (e.g. --max-repeats 6); with --repeats N it runs
# exactly N repeats instead.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
for arg in "$@"; do
  case "$arg" in
    --repeats|--repeats=*) exec .venv/bin/sandbox experiment experiments/quick.yml "$@" ;;
  esac
done
exec .venv/bin/sandbox experiment experiments/quick.yml --until-verdict "$@"
