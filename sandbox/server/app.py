"""The stair-stepper: one allocation-heavy endpoint, plus /health, /stats and /debug/* (debug.py).

POST /widgets parses the JSON body, deep-copies it, re-serialises the copy and holds all of it
for SLEEP_MS (a slow downstream). With the sync handler that happens in a worker thread, like a
FastAPI `def` endpoint: glibc then spreads the garbage over per-thread arenas, which is what
fragments the heap. Bad input gets a 4xx, never a 500; a client that disconnects mid-body is
one line in the log. Asked to (LEAK_BYTES, CACHE_DOCS, PIN_OBJECTS), it also keeps a known truth
from each request (truths.py); /stats says what it keeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.allocators import maps as procmaps
from sandbox.config.server_settings import ServerSettings
from sandbox.server import debug, introspect, workloads
from sandbox.server.protocol import CUT_KEY
from sandbox.server.truths import Keeper

logger = logging.getLogger("uvicorn.error")


class _Reject(Exception):
    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


@dataclass
class _Counters:
    """Touched only from the event loop (single-threaded), so plain ints are enough."""

    done: int = 0
    rejected: int = 0
    in_flight: int = 0


def _work_and_sleep(body: bytes, sleep_s: float, keeper: Keeper | None = None) -> int | str:
    """The widget's size, or why the body was refused.

    A refusal is returned, not raised: an exception crossing from the worker thread into the
    event loop lands in an asyncio future whose traceback refers back to it, a reference cycle
    that keeps this frame's `body` (up to the cap) alive until the cyclic GC happens to run;
    measured, bad 500 KB bodies left 15-20 MiB behind that way.
    """
    try:
        widget = workloads.process(body) if keeper is None else keeper.process(body)
    except workloads.BadRequest as exc:
        return str(exc)
    time.sleep(sleep_s)  # `widget` (and everything it holds) stays alive across the sleep
    return widget.size


def _is_json(content_type: str | None) -> bool:
    if content_type is None:
        return False
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


async def _read_body(request: Request, limit: int) -> bytes:
    """The whole body, or _Reject(413) as soon as it is known to be over `limit` bytes."""
    too_big = _Reject(
        413, f"body is over the {limit:,} byte limit; send less or raise MAX_BODY_BYTES"
    )
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.strip().isascii() and declared.strip().isdigit()):
            raise _Reject(400, f"Content-Length {declared!r} is not a whole number")
        if int(declared) > limit:
            raise too_big
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(settings: ServerSettings) -> Starlette:
    """The stair-stepper ASGI app for `settings`."""
    counters = _Counters()
    limiter: anyio.CapacityLimiter | None = None
    sleep_s = settings.sleep_ms / 1000
    keeper = Keeper(settings) if settings.truths else None  # None: nothing kept, as ever

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal limiter
        # Our own pool, not anyio's shared default, so THREADS is exactly the pool size.
        limiter = anyio.CapacityLimiter(settings.threads)
        yield

    async def handle(body: bytes) -> int:
        if settings.handler == "async":
            widget = workloads.process(body) if keeper is None else keeper.process(body)
            await asyncio.sleep(sleep_s)
            return widget.size  # `widget` stays alive across the sleep
        if limiter is None:
            raise RuntimeError("the app's lifespan did not run; use `with TestClient(app)`")
        work = functools.partial(_work_and_sleep, body, sleep_s, keeper)
        outcome = await anyio.to_thread.run_sync(work, limiter=limiter)
        if isinstance(outcome, str):
            raise workloads.BadRequest(outcome)
        return outcome

    async def widgets(request: Request) -> JSONResponse:
        counters.in_flight += 1
        try:
            content_type = request.headers.get("content-type")
            if not _is_json(content_type):
                got = "none" if content_type is None else repr(content_type)
                raise _Reject(415, f"Content-Type must be application/json, got {got}")
            body = await _read_body(request, settings.max_body_bytes)
            try:
                size = await handle(body)
            except workloads.BadRequest as exc:
                raise _Reject(400, str(exc)) from None
        except _Reject as exc:
            counters.rejected += 1
            return JSONResponse({"error": exc.message}, status_code=exc.status_code)
        finally:
            counters.in_flight -= 1
        counters.done += 1
        return JSONResponse({"id": str(uuid.uuid4()), "size": size}, status_code=201)

    async def health(request: Request) -> JSONResponse:
        libraries = procmaps.allocator_libraries(procmaps.mapped_paths())
        return JSONResponse(
            {
                "status": "ok",
                "pid": os.getpid(),
                "handler": settings.handler,
                "sleep_ms": settings.sleep_ms,
                "threads": settings.threads,
                "max_body_bytes": settings.max_body_bytes,
                "allocator": os.path.basename(libraries[0]) if libraries else "glibc",
                "allocator_libraries": libraries,
                "malloc_owner": introspect.malloc_owner(),
            }
        )

    async def stats(request: Request) -> JSONResponse:
        answer: dict[str, object] = {
            "requests_done": counters.done,
            "requests_rejected": counters.rejected,
            "in_flight": counters.in_flight,
        }
        if keeper is not None:
            answer["kept"] = keeper.kept().to_dict()
        return JSONResponse(answer)

    return Starlette(
        routes=[
            Route("/widgets", widgets, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            Route("/stats", stats, methods=["GET"]),
            *debug.routes(),
        ],
        lifespan=lifespan,
        exception_handlers={ClientDisconnect: _client_gone},
    )


async def _client_gone(request: Request, exc: Exception) -> Response:
    """A client that went away before its body was complete: one line in the log, not a 500
    with a traceback. (A body cut by the deadline was logged by the protocol already.)"""
    if not request.scope.get(CUT_KEY):
        peer = f"{request.client.host}:{request.client.port}" if request.client else "a client"
        logger.warning(
            "client %s disconnected before its body was complete (%s %s)",
            peer,
            request.method,
            request.url.path,
        )
    return Response(status_code=400)  # sent to nobody: the connection is gone
