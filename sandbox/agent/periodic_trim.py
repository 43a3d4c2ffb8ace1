"""The periodic trim: every SANDBOX_AGENT_TRIM_EVERY_S seconds a daemon thread asks the
allocator for its free memory back (malloc_trim(0) under glibc, or the allocator's own release),
off the event loop, as a service would deploy it. A trim can block for tens of milliseconds, so
each one's duration is recorded; `memory` replies carry them as extra["periodic_trim"].

Started by the agent's sitecustomize when the variable is set; after a fork the child starts
its own thread (the parent's does not survive the fork).
"""

from __future__ import annotations

import os
import threading
import time

from . import allocator, ops

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

EVERY_ENV = "SANDBOX_AGENT_TRIM_EVERY_S"
_THREAD_NAME = "sandbox-periodic-trim"


class Trimmer:
    """Counts and times the trims of one process."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self.count = 0
        self.total_ms = 0.0
        self.max_ms = 0.0
        self.last_ms = None  # type: float | None
        self.called = None  # type: str | None
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def trim_once(self) -> None:
        started = time.perf_counter()
        release = allocator.release_free_memory()
        took_ms = (time.perf_counter() - started) * 1000
        with self._lock:
            self.count += 1
            self.total_ms += took_ms
            self.max_ms = max(self.max_ms, took_ms)
            self.last_ms = took_ms
            self.called = release.called if release else None

    def reading(self) -> dict[str, Any]:
        with self._lock:
            return {
                "every_s": self.every_s,
                "count": self.count,
                "called": self.called,
                "total_ms": round(self.total_ms, 3),
                "max_ms": round(self.max_ms, 3),
                "last_ms": None if self.last_ms is None else round(self.last_ms, 3),
            }

    def loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.trim_once()
            except Exception as exc:  # the host program goes on whatever happens here
                os.write(2, f"sandbox agent: periodic trim failed: {exc!r}\n".encode())

    def start(self) -> None:
        thread = threading.Thread(target=self.loop, name=_THREAD_NAME, daemon=True)
        thread.start()

    def stop(self) -> None:
        self._stop.set()


_current = None  # type: Trimmer | None


def every_s(environ: Any = None) -> float | None:
    """The period the environment asks for; None when unset, empty, not a number or <= 0."""
    raw = (os.environ if environ is None else environ).get(EVERY_ENV, "")
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if value > 0 else None


def start_from_environ() -> Trimmer | None:
    """Start the trimming thread if SANDBOX_AGENT_TRIM_EVERY_S asks for one."""
    global _current
    period = every_s()
    if period is None:
        return None
    _current = Trimmer(period)
    _current.start()
    ops.register_extra("periodic_trim", _current.reading)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_restart_in_child)
    return _current


def _restart_in_child() -> None:
    global _current
    if _current is None:
        return
    _current = Trimmer(_current.every_s)
    _current.start()
    ops.register_extra("periodic_trim", _current.reading)
