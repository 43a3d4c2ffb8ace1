"""An ASGI app whose request data stays alive in reference cycles until a full collection: every
GET /work builds a request record that refers to itself (record -> its context -> the record)
and holds a PAYLOAD_BYTES buffer, then drops it. Only the cyclic garbage collector can free it.

The collector is off (gc.disable() at import): in a long-lived service such garbage sits in the
oldest generation, which CPython collects only when the objects new to it since its last
collection are a quarter of those it holds, so it piles up between rare full collections and
falls when one runs. Off, it piles up for the whole run, and a full collection (sandbox run
--collect-garbage) frees all of it: the same cause, without waiting on the collector's timing.

Any other path answers 200 without keeping anything (the harness's readiness check polls /).
Standard library only; a bare ASGI callable.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

PAYLOAD_BYTES = int(os.environ.get("CYCLES_PAYLOAD_BYTES", str(2 * 1024)))
"""Above pymalloc's 512 bytes: each payload is malloc's, one Python block."""

gc.disable()  # see the module docstring: the cycles wait for a full collection

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class RequestRecord:
    """What a handler keeps about its request; its context points back at it."""

    def __init__(self, path: str, payload: bytes) -> None:
        self.path = path
        self.payload = payload
        self.context: dict[str, Any] = {"record": self, "tags": [path, len(payload)]}


def handle(path: str) -> int:
    """Build the request's record (a cycle), use it, and drop it."""
    record = RequestRecord(path, os.urandom(16) * (PAYLOAD_BYTES // 16))
    return len(record.payload)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    if scope["path"] == "/work":
        handle(scope["path"])
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b'{"ok": true}'})
