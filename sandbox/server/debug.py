"""/debug/*: what the allocator and the interpreter say about the server's memory, from inside.

Guarded (guards.py; anyone else gets 403): loopback clients only, a Host naming this machine,
and on POST the X-Sandbox-Debug header. These routes allocate, trim and walk the heap. They run
on the event loop, never in the worker pool, so they answer while the pool is saturated.
/debug/objects walks every object with pympler (seconds on a big heap): it runs in its own
one-thread limiter so it neither waits behind busy workers nor stalls the loop (it still
competes for the GIL), and concurrent calls queue behind each other. /debug/hold allocates and
touches its blocks (about a second per GiB) HOLD_STEP_MIB at a time, leaving the loop to the
others between steps: on the loop's own thread, because with mimalloc memory freed by one thread but
allocated by another waits on the other's heap, out of /debug/trim's reach (mi_collect collects
the calling thread's heap). It holds at most HOLD_CAP_PERCENT of MemTotal in all (409 past it);
a hold still in progress lands after a /debug/release that came before it finished.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sandbox.agent import ops
from sandbox.server import guards, introspect
from sandbox.units import MIB

MAX_HOLD_MIB = 64 * 1024
HOLD_CAP_PERCENT = 25
"""/debug/hold holds at most this share of MemTotal in all (the sum of every call)."""
HOLD_STEP_MIB = 16
"""/debug/hold allocates this much (some 10-20 ms) at a time,"""
HOLD_PAUSE_S = 0.002
"""then leaves the loop this long to the other requests (a request takes several turns)."""
MAX_OBJECTS_LIMIT = 1000
DEFAULT_OBJECTS_LIMIT = 20

Endpoint = Callable[[Request], Awaitable[JSONResponse]]


class _BadQuery(Exception):
    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code


def _loopback_only(endpoint: Endpoint) -> Endpoint:
    @functools.wraps(endpoint)
    async def guarded(request: Request) -> JSONResponse:
        refused = guards.refusal(request)
        if refused:
            return JSONResponse({"error": refused}, status_code=403)
        try:
            return await endpoint(request)
        except _BadQuery as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status_code)

    return guarded


def memory_total_bytes() -> int:
    """MemTotal: the machine's memory (sysconf reads the same sysinfo() figure)."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def hold_cap_mib() -> int:
    """The most /debug/hold may hold in all, in MiB."""
    return memory_total_bytes() * HOLD_CAP_PERCENT // 100 // MIB


def _whole(request: Request, name: str, default: int | None, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        if default is None:
            raise _BadQuery(f"missing ?{name}=N (a whole number from {low} to {high})")
        return default
    if not (text.strip().isascii() and text.strip().isdigit()) or not low <= int(text) <= high:
        raise _BadQuery(f"?{name}={text!r} is not a whole number from {low} to {high}")
    return int(text)


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "0").strip().lower() in ("1", "true", "yes")


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def memory_state() -> dict[str, Any]:
    """The allocator's snapshot plus this process's RSS (the agent's, so one code path)."""
    return ops.memory_state()


def routes() -> list[Route]:
    """The /debug routes, sharing one ballast (what /debug/hold holds)."""
    introspect.backend()  # detect the allocator now, not on the first request
    ballast = introspect.Ballast()
    pending_mib = 0  # being allocated by a /debug/hold in progress
    objects_limiter: list[anyio.CapacityLimiter] = []  # made on first use, inside the loop

    async def memory(request: Request) -> JSONResponse:
        started = time.perf_counter()
        state = memory_state()
        state["python"] = introspect.python_stats(count_objects=_flag(request, "gc_objects"))
        state["took_ms"] = _ms(started)
        return JSONResponse(state)

    async def trim(request: Request) -> JSONResponse:
        # On the event loop's thread: mimalloc's mi_collect reaches the calling thread's heap.
        return JSONResponse(ops.trim())

    async def hold(request: Request) -> JSONResponse:
        nonlocal pending_mib
        mib = _whole(request, "mib", None, 0, MAX_HOLD_MIB)
        cap_mib = hold_cap_mib()
        if ballast.mib + pending_mib + mib > cap_mib:
            raise _BadQuery(
                f"holding {mib} MiB more would hold {ballast.mib + pending_mib + mib} MiB, over "
                f"the cap of {cap_mib} MiB ({HOLD_CAP_PERCENT} % of MemTotal, "
                f"{memory_total_bytes() // MIB} MiB); POST /debug/release first, or hold less",
                status_code=409,
            )
        started = time.perf_counter()
        part = introspect.Ballast()
        pending_mib += mib
        try:  # a step at a time, letting the loop serve others in between
            for done in range(0, mib, HOLD_STEP_MIB):
                part.hold(min(HOLD_STEP_MIB, mib - done))
                await asyncio.sleep(HOLD_PAUSE_S)
        finally:
            pending_mib -= mib
        total = ballast.add(part)
        return JSONResponse(
            {"added_mib": mib, "held_mib": total, "took_ms": _ms(started)}, status_code=201
        )

    async def release(request: Request) -> JSONResponse:
        return JSONResponse({"released_mib": ballast.release(), "held_mib": ballast.mib})

    async def objects(request: Request) -> JSONResponse:
        limit = _whole(request, "limit", DEFAULT_OBJECTS_LIMIT, 1, MAX_OBJECTS_LIMIT)
        if not objects_limiter:
            objects_limiter.append(anyio.CapacityLimiter(1))
        started = time.perf_counter()
        work = functools.partial(introspect.top_objects, limit)
        rows = await anyio.to_thread.run_sync(work, limiter=objects_limiter[0])
        return JSONResponse({"limit": limit, "types": rows, "took_ms": _ms(started)})

    return [
        Route("/debug/memory", _loopback_only(memory), methods=["GET"]),
        Route("/debug/trim", _loopback_only(trim), methods=["POST"]),
        Route("/debug/hold", _loopback_only(hold), methods=["POST"]),
        Route("/debug/release", _loopback_only(release), methods=["POST"]),
        Route("/debug/objects", _loopback_only(objects), methods=["GET"]),
    ]
