# The README's two commands: `make demo` (set up, then the short glibc-vs-jemalloc comparison)
# and `make test` (set up, then lint, type check and the test suite).
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint typecheck unit e2e

setup:
	@scripts/setup.sh

demo: setup
	$(BIN)/sandbox experiment experiments/quick.yml

lint: setup
	$(BIN)/ruff check sandbox tests plans
	$(BIN)/ruff format --check sandbox tests plans

typecheck: setup
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest -q

unit: setup
	$(BIN)/pytest -q -m "not e2e"

e2e: setup
	$(BIN)/pytest -q -m e2e
