"""A bring-your-own-app example: an in-process JSON item cache, FastAPI `def`-endpoint style.

POST /items/{key} stores {"name": str, "values": [number, ...]} plus a derived index (a sorted
copy of the values and their stats), so memory grows with the cache; once CACHE_MAX_ITEMS are
held the oldest item is evicted, so memory plateaus while the heap churns. The work runs in
Starlette's thread pool, like FastAPI `def` endpoints. Bad input gets a 4xx, never a 500.

    uvicorn examples.cache_service.app:app --port 8000
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections import OrderedDict
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


class BadItem(Exception):
    """The request cannot be stored; `status_code` is the 4xx to answer with."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


def env_int(name: str, default: int) -> int:
    """The positive integer in environment variable `name`, or `default` if it is unset."""
    raw = os.environ.get(name, str(default))
    if not raw.strip().isdecimal() or int(raw) < 1:
        raise ValueError(f"{name}={raw!r} is not a positive integer; unset it or fix it")
    return int(raw)


def parse_item(body: bytes) -> dict[str, Any]:
    """The validated item in a JSON body, with its derived index; BadItem(400) if malformed."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # bad JSON, bad UTF-8, too deep
        raise BadItem(400, f"body is not valid JSON: {exc}"[:200]) from None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise BadItem(400, 'body must be a JSON object with a string "name"')
    values = data.get("values")
    not_numbers = BadItem(400, 'body must have a "values" list of finite numbers')
    if not isinstance(values, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    ):
        raise not_numbers
    try:
        floats = [float(v) for v in values]  # OverflowError: an int too big for a float
    except OverflowError:
        raise not_numbers from None
    if not all(math.isfinite(f) for f in floats):  # NaN, Infinity, 1e999
        raise not_numbers
    ordered = sorted(floats)
    stats = {
        "count": len(ordered),
        "min": ordered[0] if ordered else None,
        "max": ordered[-1] if ordered else None,
        "mean": math.fsum(ordered) / len(ordered) if ordered else None,
        "median": ordered[len(ordered) // 2] if ordered else None,
    }
    return {"name": data["name"], "values": values, "index": {"sorted": ordered, "stats": stats}}


async def read_body(request: Request, limit: int) -> bytes:
    """The JSON body, or BadItem(415) for another content type, BadItem(413) if over `limit`."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        raise BadItem(415, f"Content-Type must be application/json, got {content_type!r}")
    declared = request.headers.get("content-length", "0").strip()
    if not declared.isdecimal():  # not isdigit(): "²" is a digit that int() refuses
        raise BadItem(400, f"Content-Length {declared!r} is not a whole number")
    too_big = BadItem(413, f"body is over {limit:,} bytes; send less or raise CACHE_MAX_BODY_BYTES")
    if len(declared) > 18 or int(declared) > limit:  # int() refuses over 4300 digits
        raise too_big
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(max_items: int = 100_000, max_body_bytes: int = 1024 * 1024) -> Starlette:
    """The cache service, holding at most `max_items` items and bodies of `max_body_bytes`."""
    cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
    lock = threading.Lock()  # handlers run in worker threads
    handled = 0  # /items requests answered; only touched on the event loop

    # Parsing and rendering both happen in the worker thread, as with FastAPI `def` endpoints.
    def store(key: str, body: bytes) -> JSONResponse:
        item = parse_item(body)
        with lock:
            cache[key] = item
            cache.move_to_end(key)  # a rewrite makes the item the newest
            while len(cache) > max_items:
                cache.popitem(last=False)  # evict the oldest
            count = len(cache)
        return JSONResponse({"key": key, "items": count}, status_code=201)

    def fetch(key: str) -> JSONResponse:
        with lock:
            item = cache.get(key)
        if item is None:
            return JSONResponse({"error": f"no item {key!r}"}, status_code=404)
        return JSONResponse({"key": key, **item})

    async def items(request: Request) -> JSONResponse:
        nonlocal handled
        key: str = request.path_params["key"]
        try:
            if request.method == "GET":
                return await run_in_threadpool(fetch, key)
            body = await read_body(request, max_body_bytes)
            return await run_in_threadpool(store, key, body)
        except BadItem as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status_code)
        finally:
            handled += 1

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "pid": os.getpid()})

    async def stats(request: Request) -> JSONResponse:
        with lock:
            count = len(cache)
        return JSONResponse({"items": count, "requests": handled})

    return Starlette(
        routes=[
            Route("/items/{key}", items, methods=["GET", "POST"]),
            Route("/health", health, methods=["GET"]),
            Route("/stats", stats, methods=["GET"]),
        ]
    )


app = create_app(env_int("CACHE_MAX_ITEMS", 100_000), env_int("CACHE_MAX_BODY_BYTES", 1024 * 1024))
