"""uvicorn's h11 protocol with two deadlines per request, against clients that send slowly.

uvicorn closes an idle keep-alive connection (timeout_keep_alive) but waits forever for a client
that opens a connection and sends nothing, or half its headers, or half its body: a few such
clients hold connections (and, past `limit_concurrency`, lock everyone else out). Here:

- headers: the request line and headers must arrive within `header_timeout_s` of the
  connection's start, or of the end of the previous response; else the connection is closed.
- body: the whole body must arrive within `body_timeout_s` of the end of the headers; else the
  client gets 408 (when no response has begun), the connection is closed, and the app sees the
  client disconnect (its scope then holds CUT_KEY, so it need not log the cut a second time).

Either cut is logged in one line. The deadlines come from ServeLimits; `uvicorn_options` gives
uvicorn this protocol with them, and the limits uvicorn has itself.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from typing import Any, cast

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from sandbox.config.server_settings import ServeLimits

CUT_KEY = "sandbox.cut"
"""Set in the request's ASGI scope when its body was cut by the deadline."""

logger = logging.getLogger("uvicorn.error")


class DeadlineProtocol(H11Protocol):
    """H11Protocol, plus the header and body deadlines of `limits`."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: ServeLimits,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting_for: str | None = None
        """`headers`, `body` or None (the request is in; the app is answering)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm("headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.transport.is_closing() or self not in self.connections:  # closed or upgraded
            self._disarm()
        elif self.cycle is not before:  # a new request's headers are in
            if self.cycle.more_body:
                self._arm("body")
            else:
                self._disarm()
        elif self._waiting_for == "body" and not self.cycle.more_body:
            self._disarm()

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():
            self._arm("headers")  # the next request's (a pipelined one disarms it at once)
        super().on_response_complete()

    def _arm(self, what: str) -> None:
        self._disarm()
        seconds = self.limits.header_timeout_s if what == "headers" else self.limits.body_timeout_s
        self._waiting_for = what
        self._deadline = self.loop.call_later(seconds, self._cut)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._waiting_for = None, None

    def _peer(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "a client"

    def _cut(self) -> None:
        what, self._deadline, self._waiting_for = self._waiting_for, None, None
        if self.transport.is_closing():
            return
        if what == "headers":
            logger.warning(
                "cut %s: no complete request headers within %g s",
                self._peer(),
                self.limits.header_timeout_s,
            )
        else:
            cycle = self.cycle
            logger.warning(
                "cut %s: the body of %s %s did not arrive within %g s",
                self._peer(),
                cycle.scope["method"],
                cycle.scope["path"],
                self.limits.body_timeout_s,
            )
            if not cycle.response_started:
                self._send_408()
            cast(dict[str, Any], cycle.scope)[CUT_KEY] = True
            cycle.disconnected = True  # the app's next receive() is http.disconnect
            cycle.message_event.set()
        self.transport.close()

    def _send_408(self) -> None:
        body = json.dumps(
            {
                "error": f"the request body did not arrive within "
                f"{self.limits.body_timeout_s:g} s; the connection is closed"
            }
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        try:
            for event in (
                h11.Response(status_code=408, headers=headers, reason=b"Request Timeout"),
                h11.Data(data=body),
                h11.EndOfMessage(),
            ):
                self.transport.write(self.conn.send(event) or b"")
        except h11.LocalProtocolError:
            pass  # h11 cannot answer in this state: the close alone must do


def uvicorn_options(limits: ServeLimits) -> dict[str, Any]:
    """uvicorn.run's keyword arguments for `limits` (the protocol class with its deadlines)."""
    # A partial, not a class made here: uvicorn pickles its config for worker processes.
    protocol = functools.partial(DeadlineProtocol, limits=limits)
    return {
        "http": cast(type[asyncio.Protocol], protocol),
        "timeout_keep_alive": limits.keep_alive_s,
        "limit_concurrency": limits.max_connections,
        "h11_max_incomplete_event_size": limits.max_header_bytes,
    }
