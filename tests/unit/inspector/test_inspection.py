"""One look at a process: /proc's part on a real child, gdb's part from recorded answers."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.errors import InspectError, TargetExitedError
from sandbox.inspector import inspection, smaps
from sandbox.inspector.detection import Detection
from sandbox.inspector.gdb_session import Request
from sandbox.inspector.pymalloc import Pymalloc
from sandbox.inspector.snapshot import Snapshot
from sandbox.units import MIB

DATA = Path(__file__).resolve().parents[2] / "data"

GLIBC_RAW = {
    "arena": 1_204_224,
    "ordblks": 58,
    "smblks": 0,
    "hblks": 3,
    "hblkhd": 67_514_368,
    "usmblks": 0,
    "fsmblks": 0,
    "uordblks": 1_102_624,
    "fordblks": 101_600,
    "keepcost": 78_528,
}


def glibc_answer(**extra: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "attach_ms": 40.5,
        "thread": 123,
        "malloc_owner": "/lib/x86_64-linux-gnu/libc.so.6",
        "family": "glibc",
        "counters": {"raw": dict(GLIBC_RAW), "source": "mallinfo2()", "took_ms": 0.8},
        "python": {
            "version": "3.11.7",
            "allocated_blocks": 25_140,
            "pymalloc_in_use": True,
            "pymalloc_stats": (DATA / "pymalloc_stats_3.11.txt").read_text(),
        },
        "detached": True,
        "stopped_ms": 61.25,
        **extra,
    }


@pytest.fixture
def base() -> Snapshot:
    memory = smaps.summarise(smaps.parse((DATA / "smaps_small.txt").read_text()))
    detection = Detection("glibc", None, (), None, True)
    return Snapshot(7, "python app.py", "2026-01-01T00:00:00.000Z", "glibc", detection, memory)


@pytest.fixture
def child() -> Iterator[int]:
    code = "import sys; print('ready', flush=True); sys.stdin.read()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    yield proc.pid
    proc.communicate(b"")


def test_from_a_glibc_answer(base: Snapshot) -> None:
    s = inspection.from_answer(base, glibc_answer(), trim=False)
    assert s.counters is not None
    assert (s.counters.in_use_bytes, s.counters.held_bytes) == (68_616_992, 68_718_592)
    assert s.counters.free_kept_bytes == 101_600
    assert s.counters.source == "mallinfo2()"
    assert s.counters.note is not None and s.counters.note.startswith("free chunks whose pages")
    assert s.python is not None
    assert (s.python.version, s.python.allocated_blocks) == ("3.11.7", 25_140)
    assert s.python.pymalloc == Pymalloc(3, 3_145_728, 2_192_432, 296_560, 3)
    assert (s.stopped_ms, s.attach_ms, s.owner, s.problem) == (
        61.25,
        40.5,
        "/lib/x86_64-linux-gnu/libc.so.6",
        None,
    )
    assert s.trim is None


def test_from_a_trim_answer(base: Snapshot) -> None:
    after = dict(GLIBC_RAW, arena=1_126_400)
    answer = glibc_answer(
        release={
            "called": "malloc_trim(0)",
            "result": 1,
            "rss_before_bytes": 300 * MIB,
            "rss_after_bytes": 60 * MIB,
        },
        counters_after={"raw": after, "source": "mallinfo2()"},
    )
    t = inspection.from_answer(base, answer, trim=True).trim
    assert t is not None
    assert (t.called, t.result, t.returned_bytes) == ("malloc_trim(0)", 1, 240 * MIB)
    assert (t.held_before_bytes, t.held_after_bytes) == (68_718_592, 68_640_768)
    assert t.to_dict()["returned_bytes"] == 240 * MIB


def test_an_unknown_allocator_is_a_problem(base: Snapshot) -> None:
    answer = {
        "version": 1,
        "family": "libsomemalloc.so",
        "malloc_owner": "/opt/libsomemalloc.so",
        "python": None,
        "stopped_ms": 30.0,
        "detached": True,
    }
    s = inspection.from_answer(base, answer, trim=False)
    assert (s.allocator, s.counters, s.python) == ("libsomemalloc.so", None, None)
    assert s.problem == (
        "malloc in process 7 comes from /opt/libsomemalloc.so, an allocator inspect cannot read "
        "(it reads glibc, jemalloc, tcmalloc, mimalloc); only the RSS split was measured"
    )


def test_counters_that_could_not_be_read_are_a_problem(base: Snapshot) -> None:
    answer = glibc_answer(counters={"raw": {}, "error": 'No symbol "mallinfo2" in context.'})
    s = inspection.from_answer(base, answer, trim=False)
    assert s.counters is not None and s.counters.held_bytes is None
    assert s.problem is not None
    assert s.problem.startswith(
        'glibc\'s counters could not be read in process 7: No symbol "mallinfo2" in context.'
    )


def test_python_notes(base: Snapshot) -> None:
    off = glibc_answer(
        python={"version": "3.11.7", "allocated_blocks": 0, "pymalloc_in_use": False}
    )
    p = inspection.from_answer(base, off, trim=False).python
    assert p is not None and p.pymalloc is None
    assert p.note == "pymalloc is not in use (PYTHONMALLOC=malloc or a debug allocator)"
    new = glibc_answer(python={"version": "3.12.1", "note": "CPython 3.12 and later need the GIL"})
    p = inspection.from_answer(base, new, trim=False).python
    assert p is not None and (p.allocated_blocks, p.note) == (
        None,
        "CPython 3.12 and later need the GIL",
    )


def test_take_without_attaching(child: int) -> None:
    def no_session(request: Request) -> dict[str, Any]:
        raise AssertionError("must not attach")

    s = inspection.take(child, attach=False, session=no_session)
    assert s.pid == child and s.allocator == "glibc"
    assert s.memory.rss_bytes > 0 and s.command.endswith("sys.stdin.read()")
    assert (s.counters, s.python, s.stopped_ms, s.problem) == (None, None, None, None)
    assert s.to_dict()["format"] == "sandbox-inspect"


def test_take_retries_while_every_thread_is_in_the_allocator(
    child: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inspection, "BUSY_PAUSE_S", 0.0)
    answers = [{"error": "busy"}, {"error": "busy"}, glibc_answer()]
    requests: list[Request] = []

    def session(request: Request) -> dict[str, Any]:
        requests.append(request)
        return answers.pop(0)

    s = inspection.take(child, trim=True, session=session)
    assert s.counters is not None and len(requests) == 3
    assert (requests[0].pid, requests[0].trim, requests[0].expected_family) == (
        child,
        True,
        "glibc",
    )
    assert s.problem == f"nothing was asked of glibc in process {child}"  # no release answer


def test_take_gives_up_when_always_busy(child: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inspection, "BUSY_PAUSE_S", 0.0)
    with pytest.raises(InspectError) as info:
        inspection.take(child, session=lambda request: {"error": "busy"})
    assert str(info.value) == (
        f"every thread of process {child} was inside the allocator on 3 attempts; "
        "try again (a call then could wait for a lock forever)"
    )


def test_take_a_missing_process() -> None:
    with pytest.raises(TargetExitedError, match=r"^no process with PID 4194305$"):
        inspection.take(2**22 + 1)
