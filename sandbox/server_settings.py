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

    def __post_init__(self) -> None:
        if self.handler not in HANDLERS:
            raise ConfigError(_expected("handler", self.handler, f"one of: {', '.join(HANDLERS)}"))
        for name, minimum in (("sleep_ms", 0), ("threads", 1), ("max_body_bytes", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(_expected(name, value, f"a whole number >= {minimum}"))

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ServerSettings:
        """Read HANDLER, SLEEP_MS, THREADS and MAX_BODY_BYTES; unset ones keep their default."""
        defaults = cls()
        handler = environ.get("HANDLER", defaults.handler)
        if handler not in HANDLERS:
            raise ConfigError(_expected("HANDLER", handler, f"one of: {', '.join(HANDLERS)}"))
        return cls(
            handler=handler,
            sleep_ms=_whole(environ, "SLEEP_MS", defaults.sleep_ms, 0),
            threads=_whole(environ, "THREADS", defaults.threads, 1),
            max_body_bytes=_whole(environ, "MAX_BODY_BYTES", defaults.max_body_bytes, 1),
        )

    def to_environ(self) -> dict[str, str]:
        """The environment variables that make `from_environ` return these settings."""
        return {
            "HANDLER": self.handler,
            "SLEEP_MS": str(self.sleep_ms),
            "THREADS": str(self.threads),
            "MAX_BODY_BYTES": str(self.max_body_bytes),
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
