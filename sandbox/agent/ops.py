"""What the agent answers: one function per op, each returning a JSON-ready dict.

`memory` is what the stair-stepper's /debug/memory serves (the allocator's counters, RSS, the
interpreter's counters) plus the pid and `extra`, where more counters can be registered;
`trim` asks the allocator for memory back and reports before, after and how long it took, as
/debug/trim does; `collect` runs a full garbage collection and reports what it found and what
that freed (the harness asks for it only on request, before its trim); `hello` (alias `ping`)
says which process this is.

More counters go into `extra`: a module of this package registers a cheap, JSON-ready reader
with `register_extra(name, read)`; a reader that raises shows as {"error": "..."} under its name,
and the rest of the reply is unaffected. pymalloc's arenas and blocks are there from the start,
as extra["pymalloc"] (pymalloc.py: renewed at most once a second, and within 1 % of a CPU).
"""

from __future__ import annotations

import gc
import os
import sys
import time

from . import allocator, process, protocol, pymalloc

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing into the host
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_EXTRA: dict[str, Callable[[], Any]] = {}


class BadRequest(Exception):
    """The request is not one the agent can answer; the message says why."""


def register_extra(name: str, read: Callable[[], Any]) -> None:
    """Add `read()` (JSON-ready, cheap) to every `memory` reply as `extra[name]`."""
    _EXTRA[name] = read


def unregister_extra(name: str) -> None:
    _EXTRA.pop(name, None)


register_extra("pymalloc", pymalloc.reading)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _difference(before: int | None, after: int | None) -> int | None:
    return None if before is None or after is None else before - after


def memory_state() -> dict[str, Any]:
    """The allocator's snapshot plus this process's RSS."""
    return {**allocator.snapshot().to_dict(), "rss_bytes": process.rss_bytes()}


def extra() -> dict[str, Any]:
    """Every registered extra counter; one that fails reads as {"error": "..."}."""
    values: dict[str, Any] = {}
    for name, read in list(_EXTRA.items()):
        try:
            values[name] = read()
        except Exception as exc:
            values[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return values


def memory(count_objects: bool = False, fresh: bool = False) -> dict[str, Any]:
    """The `memory` op: the allocator's counters, RSS, Python's counters, extra, pid; with
    `fresh`, pymalloc's reading is taken now rather than reused."""
    started = time.perf_counter()
    if fresh:
        pymalloc.expire()
    state = memory_state()
    state["python"] = process.python_stats(count_objects=count_objects)
    state["extra"] = extra()
    state["pid"] = os.getpid()
    state["took_ms"] = _ms(started)
    return state


def trim() -> dict[str, Any]:
    """The `trim` op: release the allocator's free memory; what it called, before and after."""
    started = time.perf_counter()
    before = memory_state()
    release = allocator.release_free_memory()
    after = memory_state()
    return {
        "called": release.called if release else None,
        "result": release.result if release else None,
        "before": before,
        "after": after,
        "released": {
            "held_bytes": _difference(before["held_bytes"], after["held_bytes"]),
            "rss_bytes": before["rss_bytes"] - after["rss_bytes"],
        },
        "took_ms": _ms(started),
    }


def _pymalloc_used() -> int | None:
    """pymalloc's bytes in objects now (a fresh reading: a fraction of a millisecond, see
    pymalloc.py); None when pymalloc is off or its report cannot be read."""
    try:
        figures = pymalloc.read()
    except Exception:
        return None
    used = figures.get("used_bytes")
    return used if isinstance(used, int) else None


def collect() -> dict[str, Any]:
    """The `collect` op: a full collection (gc.collect()), what it found and what it freed.

    `unreachable` is gc.collect()'s return value (the unreachable objects it found: garbage
    that only a full collection frees when it sits in reference cycles); `counts_before` is
    gc.get_count() before it (allocations since the last collection, per generation);
    `generations` gc.get_stats() after it; `garbage` len(gc.garbage) after it (objects kept
    there by DEBUG_SAVEALL, or uncollectable). The allocator's state and RSS (`before`,
    `after`) and pymalloc's bytes in objects (`pymalloc_used`) are read on both sides, and
    `collect_ms` is the collection alone. Objects' finalizers run in this (the agent's) thread.
    """
    started = time.perf_counter()
    counts_before = list(gc.get_count())
    before = memory_state()
    py_before = _pymalloc_used()
    collect_started = time.perf_counter()
    unreachable = gc.collect()
    collect_ms = _ms(collect_started)
    after = memory_state()
    py_after = _pymalloc_used()
    pymalloc.expire()  # the cached reading predates the collection
    return {
        "unreachable": unreachable,
        "counts_before": counts_before,
        "generations": [dict(generation) for generation in gc.get_stats()],
        "garbage": len(gc.garbage),
        "before": before,
        "after": after,
        "pymalloc_used": {"before": py_before, "after": py_after},
        "freed": {
            "in_use_bytes": _difference(before["in_use_bytes"], after["in_use_bytes"]),
            "held_bytes": _difference(before["held_bytes"], after["held_bytes"]),
            "rss_bytes": before["rss_bytes"] - after["rss_bytes"],
            "pymalloc_used_bytes": _difference(py_before, py_after),
        },
        "collect_ms": collect_ms,
        "took_ms": _ms(started),
    }


def hello() -> dict[str, Any]:
    """The `hello` op: which process, which interpreter, which allocator."""
    backend = allocator.backend()
    return {
        "protocol": protocol.PROTOCOL_VERSION,
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "python": ".".join(str(part) for part in sys.version_info[:3]),
        "implementation": sys.implementation.name,
        "executable": sys.executable,
        "argv": list(sys.argv),
        "allocator": backend.name,
        "library": backend.library,
    }


def answer(request: Any) -> dict[str, Any]:
    """The reply to a decoded request; BadRequest if it is not a known op."""
    if not isinstance(request, dict) or not isinstance(request.get("op"), str):
        raise BadRequest('a request is a JSON object with an "op", e.g. {"op": "memory"}')
    op = request["op"]
    if op == "memory":
        count_objects = request.get("gc_objects", False)
        fresh = request.get("fresh", False)
        if not isinstance(count_objects, bool) or not isinstance(fresh, bool):
            raise BadRequest('"gc_objects" and "fresh" must be true or false')
        result = memory(count_objects, fresh)
    elif op == "trim":
        result = trim()
    elif op == "collect":
        result = collect()
    elif op in ("hello", "ping"):
        result = hello()
    else:
        raise BadRequest(f"unknown op {op[:40]!r}; the agent knows {', '.join(protocol.OPS)}")
    return {"ok": True, "op": op, "result": result}
