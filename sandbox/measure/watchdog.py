"""The run's watchdog: it ends a run whose server died, hung or passed the memory cap, or whose
sampling threads failed (their figures would be silently stale); once they are stopped, it says
what they did after the last check.

It reads the sampler, the probe and the server through the small protocols below, and a clock,
so the rules can be tested with fakes; `ServerGroup` is the real server.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sandbox.results.model import Status
from sandbox.system.processes import describe_exit, silent_state


class Stopped(Exception):
    """The run ended early; `status` says why, `detail` in words."""

    def __init__(self, status: Status, detail: str) -> None:
        super().__init__(detail)
        self.status: Status = status
        self.detail = detail


class Flag(Protocol):
    def is_set(self) -> bool: ...


class SamplingThread(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def error(self) -> BaseException | None:
        """What the thread raised, if it did."""

    @property
    def stuck_s(self) -> float | None:
        """Set when the thread did not stop within that many seconds of being asked."""


class Sampler(SamplingThread, Protocol):
    @property
    def cap_hit(self) -> Flag:
        """Set once RSS passed the cap (the sampler has then already killed the server)."""

    @property
    def gone(self) -> Flag:
        """Set when the server's process disappeared."""


class Probe(SamplingThread, Protocol):
    @property
    def answered_at(self) -> float:
        """When the server last answered (on the watchdog's clock)."""

    def is_alive(self) -> bool: ...


class Server(Protocol):
    def poll(self) -> int | None:
        """The exit code, or None while it runs."""

    def kill(self) -> None: ...

    def state(self) -> str:
        """Why it might be silent, as ` (process state T: stopped)`, or ``."""


class Limits(Protocol):
    @property
    def max_rss_bytes(self) -> int | None: ...

    @property
    def hang_timeout_s(self) -> float: ...


@dataclass(frozen=True)
class ServerGroup:
    """The real server: its process, and the process group it leads (workers, memray, ...)."""

    proc: subprocess.Popen[bytes]

    def poll(self) -> int | None:
        return self.proc.poll()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def state(self) -> str:
        return silent_state(self.proc.pid)


class Watchdog:
    """`check(phase)` raises Stopped when the run cannot go on; it kills a hung server."""

    def __init__(
        self,
        sampler: Sampler,
        probe: Probe,
        server: Server,
        limits: Limits,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sampler = sampler
        self.probe = probe
        self.server = server
        self.limits = limits
        self.clock = clock
        self.reported: set[str] = set()
        """The threads whose failure ended the run (already in its status detail)."""

    def check(self, phase: str) -> None:
        """Raise Stopped if a sampling thread failed, the server passed the memory cap, died,
        or answered nothing for longer than the hang timeout (in that order)."""
        for thread in (self.sampler, self.probe):
            if thread.error is not None:
                self.reported.add(thread.name)
                raise Stopped("failed", f"the {thread.name} thread failed: {thread.error!r}")
        # Before the death check: the sampler kills the server at the cap.
        if self.sampler.cap_hit.is_set():
            cap = self.limits.max_rss_bytes or 0
            raise Stopped(
                "memory-cap",
                f"the server's RSS passed --max-rss {cap / 2**20:.0f} MiB during {phase}; "
                "it was stopped",
            )
        code = self.server.poll()
        if code is not None or self.sampler.gone.is_set():
            raise Stopped("server-died", f"the server {describe_exit(code)} during {phase}")
        silent_s = self.clock() - self.probe.answered_at
        if silent_s > self.limits.hang_timeout_s and self.probe.is_alive():
            state = self.server.state()  # before the kill: T (stopped), D, ...
            self.server.kill()
            raise Stopped(
                "server-hung",
                f"the server answered nothing for {self.limits.hang_timeout_s:g} s during "
                f"{phase}{state}; it was killed",
            )

    def after_stop(self) -> list[str]:
        """Notes for the result once the threads are stopped: a thread that failed after the
        run's last check (no check saw it), or one that did not stop when asked."""
        notes = []
        for thread in (self.sampler, self.probe):
            if thread.error is not None and thread.name not in self.reported:
                notes.append(
                    f"the {thread.name} thread failed after the run's last check: "
                    f"{thread.error!r}; its last readings are missing"
                )
            if thread.stuck_s is not None:
                notes.append(
                    f"the {thread.name} thread did not stop within {thread.stuck_s:g} s of the "
                    "end of the run; its last readings may be missing"
                )
        return notes
