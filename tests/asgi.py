"""Driving the app straight through ASGI, for what TestClient cannot set (client address,
chunking that the test controls)."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import ASGIApp, Message


def http_scope(
    method: str,
    path: str,
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    client: tuple[str, int] | None = ("127.0.0.1", 1234),
) -> dict[str, Any]:
    """An ASGI HTTP scope for one request to a server on 127.0.0.1:3000 (with that Host header
    unless `headers` has one)."""
    headers = list(headers or [])
    if not any(name == b"host" for name, _ in headers):
        headers.append((b"host", b"127.0.0.1:3000"))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": client,
        "server": ("127.0.0.1", 3000),
    }


def status_of(app: ASGIApp, scope: dict[str, Any], body: bytes = b"") -> int:
    """Send one request with `body` through `app`; the response's status."""
    status = 0

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    async def call() -> None:
        await app(scope, receive, send)

    asyncio.run(call())
    return status
