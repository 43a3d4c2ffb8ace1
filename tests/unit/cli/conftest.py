"""Fixtures of the command tests that run `run` or `experiment` in this process."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def keep_sigterm() -> Iterator[None]:
    """`run` and `experiment` turn SIGTERM into KeyboardInterrupt; don't leave that to pytest."""
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


@pytest.fixture
def repository_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run from an empty folder, so the commands read the repository's benchmark.yml."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
