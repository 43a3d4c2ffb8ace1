#!/usr/bin/env bash
# The README's second command: set everything up, then lint, type check and run the tests.
# Extra arguments go to pytest (e.g. -m "not e2e" for the fast unit tests only).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== ruff"
.venv/bin/ruff check sandbox tests plans benchmarks examples
.venv/bin/ruff format --check sandbox tests plans benchmarks examples
echo "== mypy (strict)"
.venv/bin/mypy
echo "== pytest"
.venv/bin/pytest "$@"
