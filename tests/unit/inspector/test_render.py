"""`sandbox inspect`'s terminal text, exactly."""

from __future__ import annotations

from typing import Any

from sandbox.inspector import render
from sandbox.inspector.detection import Detection
from sandbox.inspector.pymalloc import Pymalloc
from sandbox.inspector.smaps import MemoryMap, Region
from sandbox.inspector.snapshot import Counters, PythonCounters, Snapshot, Trim
from sandbox.inspector.watch import Sample, Watch
from sandbox.units import MIB

JE = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
MEMORY = MemoryMap(
    rss_bytes=100 * MIB,
    anonymous_bytes=90 * MIB,
    file_bytes=10 * MIB,
    swap_bytes=0,
    anon_huge_bytes=0,
    regions=(
        Region("anonymous >= 64 MiB", 1, 96 * MIB, 88 * MIB),
        Region("file-backed", 40, 20 * MIB, 10 * MIB),
    ),
)


def snapshot(**kw: Any) -> Snapshot:
    fields: dict[str, Any] = {
        "pid": 42,
        "command": "python -m app",
        "taken_at": "2026-01-01T00:00:00.000Z",
        "allocator": "jemalloc",
        "detection": Detection("jemalloc", JE, (JE,), JE, True),
        "memory": MEMORY,
        "owner": JE,
        "counters": Counters(
            "jemalloc",
            80 * MIB,
            84 * MIB,
            {"stats.allocated": 80 * MIB, "stats.resident": 84 * MIB},
            'mallctl("stats.*") after mallctl("epoch")',
        ),
        "python": PythonCounters("3.11.7", 1234, Pymalloc(3, 3 * MIB, 2 * MIB, MIB // 2)),
        "stopped_ms": 61.4,
        "attach_ms": 40.2,
        "route": "gdb",
    }
    return Snapshot(**{**fields, **kw})


def test_snapshot_text() -> None:
    assert render.snapshot_text(snapshot()).splitlines() == [
        "process 42: python -m app",
        f"malloc: jemalloc ({JE}; LD_PRELOAD={JE}; malloc resolves to {JE})",
        "RSS 100.0 MiB: anonymous 90.0 MiB, file-backed 10.0 MiB",
        "",
        "  kind of mapping      mappings   size MiB    RSS MiB",
        "  anonymous >= 64 MiB         1       96.0       88.0",
        "  file-backed                40       20.0       10.0",
        "",
        "jemalloc's counters, read inside the process "
        '(mallctl("stats.*") after mallctl("epoch")):',
        "  in use 80.0 MiB, held 84.0 MiB, free memory kept 4.0 MiB",
        "  stats.allocated=83886080 stats.resident=88080384",
        "CPython 3.11.7: 1,234 allocated blocks; pymalloc 3 arenas (3.0 MiB), "
        "2.0 MiB in blocks in use, 0.5 MiB free",
        "the process was stopped 61 ms (attach 40 ms)",
    ]


def test_trim_line() -> None:
    trim = Trim('mallctl("arena.4096.purge")', 0, 100 * MIB, 70 * MIB, 84 * MIB, 60 * MIB)
    assert render.snapshot_text(snapshot(trim=trim)).splitlines()[-2] == (
        'asked for memory back: mallctl("arena.4096.purge") returned 0; RSS 100.0 MiB -> '
        "70.0 MiB: 30.0 MiB came back; held 84.0 MiB -> 60.0 MiB"
    )


def test_not_python_and_not_attached() -> None:
    lines = render.snapshot_text(snapshot(python=None)).splitlines()
    assert lines[-2] == "CPython: not a CPython process (no Py_Version or Py_GetVersion symbol)"
    bare = snapshot(
        owner=None, counters=None, python=None, stopped_ms=None, attach_ms=None, route="proc"
    )
    assert render.snapshot_text(bare).splitlines()[-1] == (
        "allocator counters: not read (not attached: --no-attach)"
    )


def test_the_preflight_line_comes_before_the_stop() -> None:
    verdict = {"passed": True, "summary": "preflight passed: 6 looks at 2 canaries"}
    lines = render.snapshot_text(snapshot(preflight=verdict)).splitlines()
    assert lines[-2:] == [
        "safety: preflight passed: 6 looks at 2 canaries",
        "the process was stopped 61 ms (attach 40 ms)",
    ]


def test_a_look_through_the_agent_never_stopped_the_process() -> None:
    s = snapshot(route="agent", stopped_ms=None, attach_ms=None, phases_ms={"agent": 3.2})
    assert render.snapshot_text(s).splitlines()[-1] == (
        "read by the sandbox's agent inside the process: never stopped (it answered in 3 ms)"
    )


def test_watch_lines() -> None:
    first, last = Sample(0.0, snapshot()), Sample(30.0, snapshot(stopped_ms=80.0))
    assert render.sample_line(first) == (
        "    0.0 s  RSS 100.0 MiB  in use 80.0 MiB  held 84.0 MiB  pymalloc 3.0 MiB  stopped 61 ms"
    )
    end = render.watch_end(Watch(42, 30.0, (first, last), interrupted=True)).splitlines()
    assert end == [
        "interrupted after 2 looks",
        "the growth read over 2 looks in 30 s (x: seconds since the first):",
        "  RSS: +0.0 MiB over the looks (no read)",
        "  live: +0.0 MiB over the looks (no read)",
        "  kept-but-free: +0.0 MiB over the looks (no read)",
        "  fewer than 3 looks: whether memory levels off cannot be told (a leak and a cache look "
        "alike); look 5 or more times (a longer --watch or a shorter --interval)",
        "pid 42 (jemalloc): RSS grew 0 MiB in 30 s; live grew 0 MiB (malloc's in use 0, "
        "pymalloc's objects 0); kept-but-free grew 0 MiB (pymalloc's free 0); too few looks to "
        "tell whether memory levels off -> little growth",
        "stopped per look: median 71 ms, max 80 ms (2 looks)",
    ]


def test_a_command_line_is_shown_on_one_line() -> None:
    assert render.one_line("python -c 'import x\nx.run()'") == "python -c 'import x x.run()'"
    assert render.one_line("a" * 200, limit=10) == "aaaaaaa..."
    text = render.snapshot_text(snapshot(command="python -c '\nimport time\n'"))
    assert text.splitlines()[0] == "process 42: python -c ' import time '"
