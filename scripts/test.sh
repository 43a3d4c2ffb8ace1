#!/usr/bin/env bash
# The README's second command: set everything up, then lint, type check and run the tests.
# Extra arguments go to pytest (e.g. -m "not e2e" for the fast unit tests only; -n 0 for one
# process). The tests run in 2 pytest-xdist workers: most of the e2e tests' time is spent waiting
# on their servers, Locust and idle phases, so they overlap well; with 4 on 2 cores the e2e tests
# that time what they measure (a load's shape, a forecast's interval, an interrupt's window) failed
# 4 in 1,874 in a clean clone (2026-12-07), so the suite keeps to the machine's cores; tests that
# share an expensive fixture carry an xdist_group mark for --dist loadgroup to keep each group in
# one worker (not honoured under pytest 9.2 with pytest-xdist 3.8.0: xdist issue #1386).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== ruff"
.venv/bin/ruff check sandbox tests plans benchmarks examples
.venv/bin/ruff format --check sandbox tests plans benchmarks examples
echo "== mypy (strict)"
.venv/bin/mypy
echo "== pytest"
.venv/bin/pytest -n 2 --dist loadfile "$@"
