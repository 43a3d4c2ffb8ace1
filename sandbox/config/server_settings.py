"""The contract between the harness and the server it starts: the stair-stepper's settings, read
from its environment (the harness builds that environment), and the other variables both read.

Both sides import this module; it imports nothing of either.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from sandbox.errors import ConfigError
from sandbox.units import MIB

Handler = Literal["sync", "async"]
HANDLERS: tuple[Handler, ...] = ("sync", "async")
LeakKind = Literal["small", "large"]
LEAK_KINDS: tuple[LeakKind, ...] = ("small", "large")


# Where our launcher writes the path of the library whose `malloc` the server calls (dladdr).
OWNER_FILE_ENV = "SANDBOX_MALLOC_OWNER_FILE"

DEBUG_HEADER = "X-Sandbox-Debug"
"""Every POST to /debug/* must carry this header (value 1). A web page cannot add a custom
header to a cross-site request without a CORS preflight, which the server never approves, so a
page in the browser of someone on this machine cannot make the server hold or trim memory."""


@dataclass(frozen=True)
class ServeLimits:
    """How long a client may take to send its request, and how many the server takes at once.

    The stair-stepper and `--app` run with these (uvicorn and its h11 protocol, with the request
    deadlines of `sandbox/server/protocol.py`): the local ones by default, the exposed ones when
    the server listens beyond loopback (`--expose`).
    """

    header_timeout_s: float = 10.0
    """The request line and headers must arrive within this, from the connection's start (or
    the previous response's end); then the connection is closed."""
    body_timeout_s: float = 30.0
    """The whole body must arrive within this, from the end of the headers; then 408 and the
    connection is closed."""
    keep_alive_s: int = 5
    """An idle keep-alive connection is closed after this (uvicorn's timeout_keep_alive)."""
    max_header_bytes: int = 16 * 1024
    """The request line and headers may not exceed this (h11_max_incomplete_event_size)."""
    max_connections: int | None = None
    """Connections and requests in progress beyond this get 503 (uvicorn's limit_concurrency);
    None: no limit (the harness alone loads a loopback server)."""

    def describe(self) -> str:
        """One line for the start-up message and the README."""
        limit = (
            f"at most {self.max_connections} connections at once (503 past them), "
            if self.max_connections is not None
            else ""
        )
        return (
            f"{limit}request headers within {self.header_timeout_s:g} s and up to "
            f"{self.max_header_bytes // 1024} KiB, a body within {self.body_timeout_s:g} s, "
            f"idle keep-alive {self.keep_alive_s} s"
        )


LOCAL_LIMITS = ServeLimits()
EXPOSED_LIMITS = ServeLimits(max_connections=128)
"""128: room for the README's `-u 64` remote Locust workers. Past the connections, the worker
threads (THREADS) bound the requests being processed, and MAX_BODY_BYTES each body."""


@dataclass(frozen=True)
class ServerSettings:
    """How POST /widgets behaves."""

    handler: Handler = "sync"
    """sync: work and time.sleep in a worker thread (like a FastAPI `def` endpoint);
    async: work on the event loop and await asyncio.sleep."""
    sleep_ms: int = 150
    """Simulated downstream latency per request; the request's objects stay alive meanwhile."""
    threads: int = 40
    """Worker threads for the sync handler (glibc gives busy threads their own arenas)."""
    max_body_bytes: int = 8 * MIB
    """Request bodies over this get 413."""
    # The known truths (sandbox/server/truths.py), all off by default.
    leak_bytes: int = 0
    """Bytes each accepted request leaves behind for good (0: no leak)."""
    leak_kind: LeakKind = "small"
    """small: objects of 256 bytes (pymalloc's, unless PYTHONMALLOC=malloc); large: 16 KiB
    buffers, which go to malloc's heap (over pymalloc's 512 bytes, under mmap's threshold)."""
    cache_docs: int = 0
    """Parsed request bodies kept, the oldest evicted past this many (0: no cache)."""
    pin_objects: int = 0
    """Small objects (100-400 bytes) kept from among each request's garbage, 4 a request, the
    oldest let go past this many in all (0: no pinning)."""

    def __post_init__(self) -> None:
        if self.handler not in HANDLERS:
            raise ConfigError(_expected("handler", self.handler, f"one of: {', '.join(HANDLERS)}"))
        if self.leak_kind not in LEAK_KINDS:
            raise ConfigError(
                _expected("leak_kind", self.leak_kind, f"one of: {', '.join(LEAK_KINDS)}")
            )
        for name, minimum in (
            ("sleep_ms", 0),
            ("threads", 1),
            ("max_body_bytes", 1),
            ("leak_bytes", 0),
            ("cache_docs", 0),
            ("pin_objects", 0),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(_expected(name, value, f"a whole number >= {minimum}"))

    @property
    def truths(self) -> bool:
        """Whether any known truth (a leak, a cache, pinning) is on."""
        return self.leak_bytes > 0 or self.cache_docs > 0 or self.pin_objects > 0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ServerSettings:
        """Read HANDLER, SLEEP_MS, THREADS, MAX_BODY_BYTES and the truths' LEAK_BYTES,
        LEAK_KIND, CACHE_DOCS and PIN_OBJECTS; unset ones keep their default."""
        defaults = cls()
        handler = environ.get("HANDLER", defaults.handler)
        if handler not in HANDLERS:
            raise ConfigError(_expected("HANDLER", handler, f"one of: {', '.join(HANDLERS)}"))
        leak_kind = environ.get("LEAK_KIND", defaults.leak_kind)
        if leak_kind not in LEAK_KINDS:
            raise ConfigError(_expected("LEAK_KIND", leak_kind, f"one of: {', '.join(LEAK_KINDS)}"))
        return cls(
            handler=handler,
            sleep_ms=_whole(environ, "SLEEP_MS", defaults.sleep_ms, 0),
            threads=_whole(environ, "THREADS", defaults.threads, 1),
            max_body_bytes=_whole(environ, "MAX_BODY_BYTES", defaults.max_body_bytes, 1),
            leak_bytes=_whole(environ, "LEAK_BYTES", defaults.leak_bytes, 0),
            leak_kind=leak_kind,
            cache_docs=_whole(environ, "CACHE_DOCS", defaults.cache_docs, 0),
            pin_objects=_whole(environ, "PIN_OBJECTS", defaults.pin_objects, 0),
        )

    def to_environ(self) -> dict[str, str]:
        """The environment variables that make `from_environ` return these settings."""
        return {
            "HANDLER": self.handler,
            "SLEEP_MS": str(self.sleep_ms),
            "THREADS": str(self.threads),
            "MAX_BODY_BYTES": str(self.max_body_bytes),
            "LEAK_BYTES": str(self.leak_bytes),
            "LEAK_KIND": self.leak_kind,
            "CACHE_DOCS": str(self.cache_docs),
            "PIN_OBJECTS": str(self.pin_objects),
        }


def _expected(name: str, value: object, expectation: str) -> str:
    return f"{name} has value {value!r}; expected {expectation}"


def _whole(environ: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    text = environ.get(name)
    if text is None:
        return default
    digits = text.strip()
    if not (digits.isascii() and digits.isdigit()) or int(digits) < minimum:
        raise ConfigError(_expected(name, text, f"a whole number >= {minimum}"))
    return int(digits)


def is_loopback_name(name: str) -> bool:
    """`localhost` or a loopback IP address (127.0.0.0/8, ::1, IPv4-mapped 127.x)."""
    if name.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def exposure_error(host: str, expose: bool) -> str | None:
    """Why the server may not bind `host` (None: it may): beyond loopback needs --expose."""
    if expose or is_loopback_name(host):
        return None
    return (
        f"--host {host} is beyond loopback: anyone who can reach it can make this server "
        "allocate (some 50 times each request body, in up to THREADS requests at once); add "
        f"--expose to serve there anyway, on a network you trust (then: "
        f"{EXPOSED_LIMITS.describe()})"
    )
