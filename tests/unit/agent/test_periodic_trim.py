"""The agent's periodic trim: the period from the environment, each trim counted and timed."""

from __future__ import annotations

import time

import pytest

from sandbox.agent import ops, periodic_trim


def test_the_period_comes_from_the_environment() -> None:
    assert periodic_trim.every_s({"SANDBOX_AGENT_TRIM_EVERY_S": "5"}) == 5.0
    assert periodic_trim.every_s({"SANDBOX_AGENT_TRIM_EVERY_S": "0.5"}) == 0.5
    for bad in ("", "0", "-1", "soon"):
        assert periodic_trim.every_s({"SANDBOX_AGENT_TRIM_EVERY_S": bad}) is None
    assert periodic_trim.every_s({}) is None


def test_each_trim_is_counted_and_timed() -> None:
    trimmer = periodic_trim.Trimmer(60.0)

    trimmer.trim_once()
    trimmer.trim_once()

    reading = trimmer.reading()
    assert reading["count"] == 2
    assert reading["called"] == "malloc_trim(0)"  # pytest runs under glibc's malloc
    assert reading["max_ms"] >= reading["last_ms"] >= 0
    assert reading["total_ms"] >= reading["max_ms"]


def test_the_thread_trims_off_the_caller_and_shows_in_memory_replies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SANDBOX_AGENT_TRIM_EVERY_S", "0.05")
    try:
        trimmer = periodic_trim.start_from_environ()
        assert trimmer is not None
        deadline = time.monotonic() + 5
        while trimmer.reading()["count"] < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        trimmer.stop()
        assert trimmer.reading()["count"] >= 2
        assert ops.extra()["periodic_trim"]["every_s"] == 0.05
    finally:
        ops.unregister_extra("periodic_trim")
