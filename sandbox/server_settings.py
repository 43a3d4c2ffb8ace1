"""The contract between the harness and the server it starts: the stair-stepper's settings, read
from its environment (the harness builds that environment), and the other variables both read.

Both sides import this module; it imports nothing of either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from sandbox.errors import ConfigError

Handler = Literal["sync", "async"]
HANDLERS: tuple[Handler, ...] = ("sync", "async")
LeakKind = Literal["small", "large"]
LEAK_KINDS: tuple[LeakKind, ...] = ("small", "large")

MIB = 1024 * 1024

# Where our launcher writes the path of the library whose `malloc` the server calls (dladdr).
OWNER_FILE_ENV = "SANDBOX_MALLOC_OWNER_FILE"


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
