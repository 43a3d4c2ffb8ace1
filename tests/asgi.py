"""Driving the app straight through ASGI, for what TestClient cannot set (client address,
chunking that the test controls)."""

from __future__ import annotations

from typing import Any


def http_scope(
    method: str,
    path: str,
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    client: tuple[str, int] | None = ("127.0.0.1", 1234),
) -> dict[str, Any]:
    """An ASGI HTTP scope for one request to a server on 127.0.0.1:3000."""
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
        "headers": headers or [],
        "client": client,
        "server": ("127.0.0.1", 3000),
    }
