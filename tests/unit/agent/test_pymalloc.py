"""The agent's pymalloc reading: the parser on reports captured from 3.11 and 3.8, both sources
live in this process, the fd 2 capture (restored, other writers passed on), the cache and its
cost bound, PYTHONMALLOC=malloc, and every interpreter on this machine (3.8 to the newest)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sandbox.agent import ops, pymalloc
from tests.unit.agent.test_standalone import AGENT, find_python

DATA = Path(__file__).resolve().parents[2] / "data" / "pymalloc"


def fixture(name: str) -> str:
    return (DATA / f"debugmallocstats-{name}.txt").read_text()


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    pymalloc.forget()
    yield
    pymalloc.forget()


# --- the parser -----------------------------------------------------------------------------


def test_parse_a_311_report() -> None:
    assert pymalloc.parse(fixture("3.11")) == {
        "arenas": 4,
        "arena_bytes": 4_194_304,
        "used_bytes": 3_494_880,
        "free_bytes": 327_600,
        "unused_pool_bytes": 278_528,
        "overhead_bytes": 11_280 + 16_480 + 65_536,
        "pools": 235,
        "blocks": 35_514,
        "pool_bytes": 16_384,
        "arena_size_bytes": 1_048_576,
        "highwater_arenas": 4,
    }


def test_parse_a_38_report_with_its_smaller_arenas_and_pools() -> None:
    figures = pymalloc.parse(fixture("3.8"))
    assert figures is not None
    assert (figures["arenas"], figures["arena_size_bytes"], figures["pool_bytes"]) == (
        6,
        262_144,
        4096,
    )
    assert (figures["used_bytes"], figures["free_bytes"], figures["pools"]) == (
        1_308_512,
        63_648,
        343,
    )
    assert figures["blocks"] == 14_484  # the size-class table's blocks in use, summed


@pytest.mark.parametrize("name", ["3.11", "3.8"])
def test_the_parts_add_up_to_the_arenas(name: str) -> None:
    f = pymalloc.parse(fixture(name))
    assert f is not None
    parts = f["used_bytes"] + f["free_bytes"] + f["unused_pool_bytes"] + f["overhead_bytes"]
    assert parts == f["arena_bytes"] == f["arenas"] * f["arena_size_bytes"]


def test_the_arena_maps_counters_after_the_first_total_are_not_read() -> None:
    text = fixture("3.11").replace(
        "# bytes lost to arena map root", "# bytes in allocated blocks"
    )  # the same name, in the arena map's part
    figures = pymalloc.parse(text)
    assert figures is not None and figures["used_bytes"] == 3_494_880


def test_a_report_without_pymalloc_has_no_figures() -> None:
    """sys._debugmallocstats() under PYTHONMALLOC=malloc prints only the free lists."""
    assert "free PyDictObjects" in fixture("3.11-malloc")
    assert pymalloc.parse(fixture("3.11-malloc")) is None
    assert pymalloc.parse("") is None


def test_a_report_missing_a_total_has_no_figures() -> None:
    text = "\n".join(
        line for line in fixture("3.11").splitlines() if "available blocks" not in line
    )
    assert pymalloc.parse(text) is None


def test_other_writers_lines_are_told_from_the_report() -> None:
    report = fixture("3.11")
    lines = report.splitlines(keepends=True)
    mixed = "".join([*lines[:40], "INFO: request done\n", *lines[40:], "Traceback (most recent"])
    ours, theirs = pymalloc.split_foreign(mixed)
    assert ours == report
    assert theirs == "INFO: request done\nTraceback (most recent"
    assert pymalloc.split_foreign(fixture("3.8")) == (fixture("3.8"), "")


# --- live, in this process ------------------------------------------------------------------


@pytest.mark.parametrize("source", [pymalloc.SOURCE_CTYPES, pymalloc.SOURCE_STDERR])
def test_used_bytes_follow_small_objects_made_and_freed(source: str) -> None:
    before = pymalloc.read(source)
    made = [b"x" * 100 + str(i).encode() for i in range(100_000)]  # 144 bytes each: 136 + 8
    grown = pymalloc.read(source)
    del made
    freed = pymalloc.read(source)
    assert before["source"] == source
    expected = 100_000 * 144
    assert grown["used_bytes"] - before["used_bytes"] == pytest.approx(expected, rel=0.05)
    assert abs(freed["used_bytes"] - before["used_bytes"]) < 0.05 * expected
    assert grown["arenas"] > before["arenas"]


def test_both_sources_read_the_same_heap() -> None:
    by_ctypes = pymalloc.read(pymalloc.SOURCE_CTYPES)
    by_stderr = pymalloc.read(pymalloc.SOURCE_STDERR)
    assert by_ctypes["arenas"] == by_stderr["arenas"]
    assert by_ctypes["used_bytes"] == pytest.approx(by_stderr["used_bytes"], rel=0.02)


def test_the_fd_2_capture_puts_fd_2_back(capfd: pytest.CaptureFixture[str]) -> None:
    before = os.fstat(2)
    pymalloc.read(pymalloc.SOURCE_STDERR)
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
    os.write(2, b"still here\n")
    assert capfd.readouterr().err == "still here\n"  # nothing of the report leaked out


def test_what_others_write_to_fd_2_meanwhile_reaches_the_real_stderr(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stand-in for sys._debugmallocstats() writes the report and, as another thread would
    during the window, a line of its own, both to fd 2."""
    report = fixture("3.11")
    cut = report.index("\n", 1500) + 1  # between two lines (a line cut in two is lost)

    def debugmallocstats() -> None:
        os.write(2, report[:cut].encode())
        os.write(2, b"WARNING: from another thread\n")
        os.write(2, report[cut:].encode())

    monkeypatch.setattr(sys, "_debugmallocstats", debugmallocstats)
    monkeypatch.setattr(pymalloc, "report_via_ctypes", _not_exported)
    reading = pymalloc.read()
    assert reading["source"] == pymalloc.SOURCE_STDERR
    assert reading["used_bytes"] == 3_494_880
    assert capfd.readouterr().err == "WARNING: from another thread\n"


def _not_exported() -> str:
    raise AttributeError("python: undefined symbol: _PyObject_DebugMallocStats")


def test_without_the_symbol_the_stderr_source_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pymalloc, "report_via_ctypes", _not_exported)
    assert pymalloc.read()["source"] == pymalloc.SOURCE_STDERR
    with pytest.raises(AttributeError):
        pymalloc.read(pymalloc.SOURCE_CTYPES)


def test_an_interpreter_without_either_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pymalloc, "report_via_ctypes", _not_exported)
    monkeypatch.delattr(sys, "_debugmallocstats")
    assert pymalloc.read() == {
        "unavailable": "this Python has no sys._debugmallocstats()",
        "source": pymalloc.SOURCE_STDERR,
    }


def test_the_memory_reply_carries_the_reading() -> None:
    reading = ops.memory()["extra"]["pymalloc"]
    assert reading["source"] == pymalloc.SOURCE_CTYPES
    assert 0 < reading["used_bytes"] < reading["arena_bytes"]
    assert reading["every_s"] >= pymalloc.MIN_EVERY_S
    assert reading["cpu_ms"] >= 0 and reading["age_s"] >= 0


# --- the cache ------------------------------------------------------------------------------


class Clock:
    """Stands in for time.monotonic, time.perf_counter and time.thread_time."""

    def __init__(self) -> None:
        self.now = 100.0
        self.cpu = 5.0

    def monotonic(self) -> float:
        return self.now

    def thread_time(self) -> float:
        return self.cpu


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    clocks = SimpleNamespace(
        monotonic=fake.monotonic, perf_counter=fake.monotonic, thread_time=fake.thread_time
    )
    monkeypatch.setattr("sandbox.agent.pymalloc.time", clocks)  # the module's own `time` only
    return fake


def counting_reads(monkeypatch: pytest.MonkeyPatch, clock: Clock, cpu_s: float) -> list[int]:
    """pymalloc.read replaced: each call costs `cpu_s` of CPU and returns its serial."""
    calls: list[int] = []

    def read(source: str | None = None) -> dict[str, Any]:
        clock.cpu += cpu_s
        calls.append(len(calls))
        return {"arenas": len(calls), "source": "fake"}

    monkeypatch.setattr(pymalloc, "read", read)
    return calls


def test_a_reading_is_kept_for_min_every_s(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = counting_reads(monkeypatch, clock, cpu_s=0.0001)
    first = pymalloc.reading()
    clock.now += pymalloc.MIN_EVERY_S * 0.9
    again = pymalloc.reading()
    clock.now += pymalloc.MIN_EVERY_S * 0.2
    renewed = pymalloc.reading()
    assert calls == [0, 1]
    assert (first["arenas"], again["arenas"], renewed["arenas"]) == (1, 1, 2)
    assert (first["age_s"], again["age_s"], renewed["age_s"]) == (0, 0.45, 0)
    assert first["every_s"] == pymalloc.MIN_EVERY_S
    assert first["cpu_ms"] == 0.1


def test_a_costly_reading_is_renewed_less_often(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At most COST_SHARE of one CPU: 20 ms a reading, every 2 s."""
    calls = counting_reads(monkeypatch, clock, cpu_s=0.020)
    assert pymalloc.reading()["every_s"] == 2.0
    clock.now += 1.9
    pymalloc.reading()
    clock.now += 0.2
    pymalloc.reading()
    assert len(calls) == 2


def test_a_failed_reading_is_kept_too(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def broken(source: str | None = None) -> dict[str, Any]:
        calls.append(1)
        raise ValueError("_PyObject_DebugMallocStats wrote no arena and block totals: ''")

    monkeypatch.setattr(pymalloc, "read", broken)
    first = pymalloc.reading()
    second = pymalloc.reading()
    assert first["error"] == (
        "ValueError: _PyObject_DebugMallocStats wrote no arena and block totals: ''"
    )
    assert second["error"] == first["error"] and len(calls) == 1


def test_forget_drops_the_reading(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = counting_reads(monkeypatch, clock, cpu_s=0.0)
    pymalloc.reading()
    pymalloc.forget()  # what a forked child does
    assert pymalloc.reading()["arenas"] == 2
    assert len(calls) == 2


# --- other interpreters, PYTHONMALLOC=malloc ------------------------------------------------

PROBE = (
    "import json, sys; from copied_agent import pymalloc; "
    "print(json.dumps({s: pymalloc.read(s) for s in (pymalloc.SOURCE_CTYPES, "
    "pymalloc.SOURCE_STDERR)}))"
)


def read_in(python: str, tmp_path: Path, environ: dict[str, str] | None = None) -> Any:
    bare = tmp_path / "bare"
    if not bare.exists():
        shutil.copytree(AGENT, bare / "copied_agent", ignore=shutil.ignore_patterns("__pycache__"))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(bare),
        **(environ or {}),
    }
    done = subprocess.run(
        [python, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # the fd 2 capture let nothing of the report out
    return json.loads(done.stdout)


@pytest.mark.parametrize("minor", range(8, 14))
def test_every_interpreter_reads_its_figures(minor: int, tmp_path: Path) -> None:
    python = find_python(minor)
    if python is None:
        pytest.skip(f"no Python 3.{minor} on this machine")
    readings = read_in(python, tmp_path)
    for source, reading in readings.items():
        assert reading["source"] == source
        assert reading["arenas"] > 0, reading
        assert 0 < reading["used_bytes"] < reading["arena_bytes"]
        arena_size = 1 << 20 if minor >= 10 else 256 << 10
        assert reading["arena_size_bytes"] == arena_size


def test_under_pythonmalloc_malloc_there_are_no_figures_and_it_says_why(tmp_path: Path) -> None:
    readings = read_in(sys.executable, tmp_path, {"PYTHONMALLOC": "malloc"})
    why = (
        "pymalloc is not in use (PYTHONMALLOC=malloc): Python's small objects come from "
        "malloc, so the allocator's counters hold them"
    )
    assert readings == {
        pymalloc.SOURCE_CTYPES: {"unavailable": why, "source": pymalloc.SOURCE_CTYPES},
        pymalloc.SOURCE_STDERR: {"unavailable": why, "source": pymalloc.SOURCE_STDERR},
    }


def test_expire_makes_the_next_reading_a_new_one() -> None:
    pymalloc.forget()
    first = pymalloc.reading()
    again = pymalloc.reading()  # within every_s: the same reading, older
    assert again["age_s"] >= 0 and again.get("took_ms") == first.get("took_ms")
    time.sleep(0.01)
    pymalloc.expire()
    assert pymalloc.reading()["age_s"] == 0.0
