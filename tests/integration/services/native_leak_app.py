"""An ASGI app that leaks native memory, as a C extension that mallocs a struct per call and
never frees it would: every GET /work mallocs LEAK_BYTES through ctypes, writes them (so they
are resident) and drops the address. No Python object keeps anything: tracemalloc and object
counters see nothing grow, only malloc's in-use count does.

    sandbox run --app tests.integration.services.native_leak_app:app \\
        --locustfile tests/integration/services/locustfile.py --load soak --duration 2

Any other path answers 200 without leaking (the harness's readiness check polls /).
Standard library only; a bare ASGI callable, so no framework's objects blur the figures.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

LEAK_BYTES = int(os.environ.get("NATIVE_LEAK_BYTES", str(4 * 1024)))
"""Below glibc's mmap threshold (128 KiB), so they come from its heap and its in-use count."""

_libc = ctypes.CDLL(None)  # the process's malloc: the preloaded allocator's, if any
_malloc = _libc.malloc
_malloc.argtypes = [ctypes.c_size_t]
_malloc.restype = ctypes.c_void_p

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def leak() -> None:
    """malloc LEAK_BYTES, write every byte, and forget the address."""
    address = _malloc(LEAK_BYTES)
    if not address:
        raise MemoryError(f"malloc({LEAK_BYTES}) failed")
    ctypes.memset(address, 1, LEAK_BYTES)


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
        leak()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b'{"ok": true}'})
