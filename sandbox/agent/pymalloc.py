"""pymalloc's arenas and blocks, for the `memory` reply's extra["pymalloc"].

pymalloc serves CPython's objects of up to 512 bytes from arenas it maps itself (1 MiB each from
3.10, 256 KiB before): they are in RSS but in none of the allocator's counters. Its figures come
from the report CPython writes with `_PyObject_DebugMallocStats(FILE *)`, the first part of what
`sys._debugmallocstats()` prints:

    # arenas allocated current         =                   81
    81 arenas * 1048576 bytes/arena    =           84,934,656
    # bytes in allocated blocks        =           80,151,344
    # bytes in available blocks        =              870,448
    27 unused pools * 16384 bytes      =              442,368

Two sources, the first that works:

1. `_PyObject_DebugMallocStats` called through ctypes (`pythonapi`, so the GIL is held, as the
   walk over the pools needs) with a FILE of our own on a memfd: fd 2 is never touched, so no
   other thread's output is caught or lost. Every CPython from 3.8 to 3.13 exports it.
2. Otherwise `sys._debugmallocstats()`, which writes to C's stderr: fd 2 is pointed at a memfd
   for the call only (under a lock, the window a few statements wide), then put back. Whole
   lines another thread wrote to fd 2 meanwhile (lines that are not the report's) are written
   on to the real stderr afterwards; a line cut in two by the report's is lost.

Cost: the call walks pools, not blocks, so it grows with the arenas: a whole reading (call and
parse) took 0.09 ms of CPU with 1M small objects alive (82 arenas, Python 3.11) and 0.32 ms
under 3.8 (327 arenas of 256 KiB); by fd 2, 0.4-0.5 ms (benchmarks/pymalloc_snapshot_cost.py).
A reading is kept for MIN_EVERY_S (0.02 % of a CPU at that cost), and longer when it costs
more: renewed at most every cost / COST_SHARE, so under 1 % of one CPU whatever the heap. Each
reply says how old the reading is (`age_s`) and how often it is renewed (`every_s`).

Under PYTHONMALLOC=malloc there is no pymalloc: the reading says so (`unavailable`), with no
figures, not zeros.
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
import threading
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing into the host
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

MIN_EVERY_S = 0.5
"""A reading is renewed at most this often: half the harness's default probe interval (1 s), so
that each probe gets a reading at most that old."""
COST_SHARE = 0.01
"""...and at most this share of one CPU: every max(MIN_EVERY_S, cost / COST_SHARE) seconds."""

SOURCE_CTYPES = "_PyObject_DebugMallocStats"
SOURCE_STDERR = "sys._debugmallocstats"

REQUIRED = ("arenas", "arena_bytes", "used_bytes", "free_bytes")
"""Figures every reading has; the others are None when the report lacks them."""

_COUNTER = re.compile(r"^#\s*(?P<name>[a-z][a-z ]*?)\s*=\s*(?P<value>[\d,]+)$")
_TIMES = re.compile(
    r"^(?P<count>\d+)\s+(?P<what>arenas|unused pools|free pools)\s*\*\s*(?P<size>\d+)\s+"
    r"bytes(?:/arena| each)?\s*=\s*(?P<value>[\d,]+)$"
)
_ROW = re.compile(r"^\d+\s+(?P<size>\d+)\s+(?P<pools>\d+)\s+(?P<blocks>\d+)\s+\d+$")
_TOTAL = re.compile(r"^Total\s*=\s*[\d,]+$")
_COUNTERS = {
    "arenas allocated current": "arenas",
    "arenas highwater mark": "highwater_arenas",
    "bytes in allocated blocks": "used_bytes",
    "bytes in available blocks": "free_bytes",
}
_OVERHEAD = (
    "bytes lost to pool headers",
    "bytes lost to quantization",
    "bytes lost to arena alignment",
)
# The lines sys._debugmallocstats() writes (pymalloc's report, the arena map, the free lists).
_REPORT_LINE = re.compile(
    r"^(?:"
    r"|Small block threshold = \d+, in \d+ size classes\."
    r"|class\s+size\s+num pools\s+blocks in use\s+avail blocks"
    r"|[-\s]+"
    r"|\s*\d+\s+\d+\s+\d+\s+\d+\s+\d+\s*"
    r"|arena map counts"
    r"|[^=\n]*=\s*[\d,]+\s*"
    r")$"
)


class Unavailable(Exception):
    """There are no pymalloc figures to read here; the message says why."""


def parse(text: str) -> dict[str, Any] | None:
    """The figures in pymalloc's report (up to its first `Total` line), or None without them.

    `arenas`, `arena_bytes` (arenas x their size), `used_bytes` (blocks handed out),
    `free_bytes` (free blocks in pools in use); and, when the report has them,
    `unused_pool_bytes` (pools in the arenas holding no block), `overhead_bytes` (pool headers,
    quantization, arena alignment), `pools` and `blocks` (in use, from the size-class table:
    `blocks` counts pymalloc's share of sys.getallocatedblocks()), `pool_bytes`
    and `arena_size_bytes` (the sizes), `highwater_arenas`.
    """
    figures: dict[str, Any] = {
        "arenas": None,
        "arena_bytes": None,
        "used_bytes": None,
        "free_bytes": None,
        "unused_pool_bytes": None,
        "overhead_bytes": None,
        "pools": None,
        "blocks": None,
        "pool_bytes": None,
        "arena_size_bytes": None,
        "highwater_arenas": None,
    }
    overhead: dict[str, int] = {}
    pools = blocks = 0
    table = False
    for raw in text.splitlines():
        line = raw.strip()
        if _TOTAL.match(line):
            break  # the end of pymalloc's part (the arena map's counters follow)
        row = _ROW.match(line)
        if row:
            table = True
            pools += int(row.group("pools"))
            blocks += int(row.group("blocks"))
            continue
        counter = _COUNTER.match(line)
        if counter:
            name, value = counter.group("name"), _number(counter.group("value"))
            if name in _COUNTERS:
                figures[_COUNTERS[name]] = value
            elif name in _OVERHEAD:
                overhead[name] = value
            continue
        times = _TIMES.match(line)
        if times:
            if times.group("what") == "arenas":
                figures["arena_bytes"] = _number(times.group("value"))
                figures["arena_size_bytes"] = int(times.group("size"))
                if figures["arenas"] is None:
                    figures["arenas"] = int(times.group("count"))
            else:
                figures["unused_pool_bytes"] = _number(times.group("value"))
                figures["pool_bytes"] = int(times.group("size"))
    if any(figures[name] is None for name in REQUIRED):
        return None
    if overhead:
        figures["overhead_bytes"] = sum(overhead.values())
    if table:
        figures["pools"] = pools
        figures["blocks"] = blocks
    return figures


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def split_foreign(text: str) -> tuple[str, str]:
    """(the report's lines, the others): what sys._debugmallocstats() wrote, and what other
    threads wrote to fd 2 while it was captured."""
    ours: list[str] = []
    theirs: list[str] = []
    for line in text.splitlines(keepends=True):
        (ours if _REPORT_LINE.match(line.rstrip("\n")) else theirs).append(line)
    return "".join(ours), "".join(theirs)


# --- reading the report ---------------------------------------------------------------------


def _scratch() -> int:
    """A new file descriptor of an anonymous file (a memfd; a temporary file elsewhere)."""
    if hasattr(os, "memfd_create"):
        return os.memfd_create("sandbox-pymalloc", getattr(os, "MFD_CLOEXEC", 1))
    import tempfile

    return os.dup(tempfile.TemporaryFile().fileno())  # the file object's descriptor closes


def _contents(fd: int) -> str:
    size = os.fstat(fd).st_size
    return os.pread(fd, size, 0).decode("ascii", "replace") if size else ""


_functions: tuple[Any, Any, Any] | None = None


def _c_functions() -> tuple[Any, Any, Any]:
    """_PyObject_DebugMallocStats, fdopen, fclose; AttributeError if one is not exported."""
    global _functions
    if _functions is None:
        stats = ctypes.pythonapi._PyObject_DebugMallocStats  # PyDLL: called with the GIL held
        stats.argtypes = [ctypes.c_void_p]
        stats.restype = ctypes.c_int
        libc = ctypes.CDLL(None, use_errno=True)
        fdopen, fclose = libc.fdopen, libc.fclose
        fdopen.argtypes = [ctypes.c_int, ctypes.c_char_p]
        fdopen.restype = ctypes.c_void_p
        fclose.argtypes = [ctypes.c_void_p]
        fclose.restype = ctypes.c_int
        _functions = (stats, fdopen, fclose)
    return _functions


def report_via_ctypes() -> str | None:
    """pymalloc's report, written by CPython into a FILE of ours; None when pymalloc is off
    (the function then writes nothing and returns 0). AttributeError if it is not exported."""
    stats, fdopen, fclose = _c_functions()
    scratch = _scratch()
    try:
        writer = os.dup(scratch)
        stream = fdopen(writer, b"w")
        if not stream:
            error = ctypes.get_errno()
            os.close(writer)
            raise OSError(error, f"fdopen: {os.strerror(error)}")
        try:
            printed = stats(stream)
        finally:
            fclose(stream)  # flushes, and closes `writer`
        text = _contents(scratch)
    finally:
        os.close(scratch)
    return text if printed else None


_capture = threading.Lock()


def report_via_stderr() -> str:
    """What sys._debugmallocstats() writes to fd 2, captured; other lines written meanwhile
    are passed on to the real fd 2."""
    debug: Callable[[], None] | None = getattr(sys, "_debugmallocstats", None)
    if debug is None:
        raise Unavailable("this Python has no sys._debugmallocstats()")
    with _capture:
        try:
            sys.stderr.flush()  # what Python had buffered goes where it was meant to
        except Exception:
            pass
        scratch = _scratch()
        try:
            saved = os.dup(2)
            try:
                os.dup2(scratch, 2)
                try:
                    debug()
                finally:
                    os.dup2(saved, 2)
            finally:
                os.close(saved)
            text = _contents(scratch)
        finally:
            os.close(scratch)
    report, foreign = split_foreign(text)
    if foreign:
        try:
            os.write(2, foreign.encode("ascii", "replace"))
        except OSError:
            pass
    return report


def _off_reason() -> str:
    setting = os.environ.get("PYTHONMALLOC")
    why = f"PYTHONMALLOC={setting}" if setting else "this interpreter does not use it"
    return (
        f"pymalloc is not in use ({why}): Python's small objects come from malloc, "
        "so the allocator's counters hold them"
    )


def read(source: str | None = None) -> dict[str, Any]:
    """A fresh reading: the figures of `parse` and `source`, or `unavailable` (why there are
    none) and `source`. `source` forces one (SOURCE_CTYPES or SOURCE_STDERR); None: the first
    that works."""
    if sys.implementation.name != "cpython":
        return {"unavailable": f"{sys.implementation.name} has no pymalloc", "source": None}
    if source in (None, SOURCE_CTYPES):
        try:
            text = report_via_ctypes()
        except AttributeError:
            if source is not None:
                raise
        else:
            if text is None:
                return {"unavailable": _off_reason(), "source": SOURCE_CTYPES}
            return _figures(text, SOURCE_CTYPES)
    try:
        text = report_via_stderr()
    except Unavailable as exc:
        return {"unavailable": str(exc), "source": SOURCE_STDERR}
    if "arenas allocated" not in text and "bytes in allocated blocks" not in text:
        return {"unavailable": _off_reason(), "source": SOURCE_STDERR}
    return _figures(text, SOURCE_STDERR)


def _figures(text: str, source: str) -> dict[str, Any]:
    figures = parse(text)
    if figures is None:
        head = " / ".join(line.strip() for line in text.splitlines()[:3] if line.strip())
        raise ValueError(f"{source} wrote no arena and block totals: {head[:200]!r}")
    return {**figures, "source": source}


# --- the cached reading, the agent's extra --------------------------------------------------


class _Cached:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value: dict[str, Any] | None = None
        self.read_at = 0.0
        self.every_s = MIN_EVERY_S


_cached = _Cached()


def reading() -> dict[str, Any]:
    """The latest reading, renewed when older than `every_s`, with `age_s` (its age),
    `every_s`, `took_ms` and `cpu_ms` (what renewing it cost, wall and this thread's CPU).
    A reading that failed is {"error": "..."} (and kept as long as one that worked)."""
    cached = _cached
    with cached.lock:
        now = time.monotonic()
        if cached.value is None or now - cached.read_at >= cached.every_s:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                value = read()
            except Exception as exc:  # kept like a reading: not retried on every request
                value = {"error": f"{type(exc).__name__}: {exc}"}
            cpu_s, wall_s = time.thread_time() - cpu, time.perf_counter() - wall
            value["took_ms"] = round(wall_s * 1000, 3)
            value["cpu_ms"] = round(cpu_s * 1000, 3)
            cached.value, cached.read_at = value, now
            cached.every_s = max(MIN_EVERY_S, cpu_s / COST_SHARE)
        return {
            **cached.value,
            "age_s": round(now - cached.read_at, 3),
            "every_s": round(cached.every_s, 3),
        }


def expire() -> None:
    """Make the next reading a new one, whatever its age (the harness's probe at a batch's end
    asks for one: a reading up to `every_s` old would predate the batch's last requests)."""
    with _cached.lock:
        _cached.read_at = float("-inf")


def forget() -> None:
    """Drop the cached reading (a forked child has its own heap from now on)."""
    global _cached, _capture
    _cached, _capture = _Cached(), threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=forget)
