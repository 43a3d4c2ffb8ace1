"""/debug/*: what the allocator and the interpreter say about the server's memory, from inside.

Loopback clients only (anyone else gets 403): these routes allocate, trim and walk the heap. All
but /debug/objects run on the event loop, never in the worker pool, so they answer while the
pool is saturated. /debug/objects walks every object with pympler (seconds on a big heap): it
runs in its own one-thread limiter so it neither waits behind busy workers nor stalls the loop
(it still competes for the GIL), and concurrent calls queue behind each other.
"""

from __future__ import annotations

import functools
import ipaddress
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sandbox.agent import ops
from sandbox.server import introspect

MAX_HOLD_MIB = 64 * 1024
MAX_OBJECTS_LIMIT = 1000
DEFAULT_OBJECTS_LIMIT = 20

Endpoint = Callable[[Request], Awaitable[JSONResponse]]


class _BadQuery(Exception):
    pass


def is_loopback(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback; False for names and None."""
    if host is None:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # e.g. Starlette TestClient's "testclient": not an address, so refused
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _loopback_only(endpoint: Endpoint) -> Endpoint:
    @functools.wraps(endpoint)
    async def guarded(request: Request) -> JSONResponse:
        host = request.client.host if request.client else None
        if not is_loopback(host):
            return JSONResponse(
                {
                    "error": f"/debug answers loopback clients only, not {host or 'unknown'}; "
                    "send the request from the server's own host (e.g. to 127.0.0.1)"
                },
                status_code=403,
            )
        try:
            return await endpoint(request)
        except _BadQuery as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    return guarded


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
        mib = _whole(request, "mib", None, 0, MAX_HOLD_MIB)
        started = time.perf_counter()
        total = ballast.hold(mib)
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
