"""The run loop: which phase the run is in, how long it has run, and the wait between steps that
checks the watchdog and reports progress on every tick."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sandbox.measure.sampler import Live

POLL_S = 0.2


@dataclass(frozen=True)
class Progress:
    """What the run is doing now, for a progress display."""

    phase: str
    batch: int
    batches: int
    elapsed_s: float
    rss_bytes: int
    requests_done: int
    rps: float


ProgressCallback = Callable[[Progress], None]


class PhaseMarker(Protocol):
    def mark(self, name: str) -> None:
        """Close the current phase and open `name` now."""


class Guard(Protocol):
    def check(self, phase: str) -> None:
        """Raise to end the run."""


def report_progress(
    on_progress: ProgressCallback | None,
    phase: str,
    batch: int,
    batches: int,
    elapsed_s: float,
    live: Live,
) -> None:
    """Hand the latest readings to the progress display, if there is one."""
    if on_progress:
        on_progress(
            Progress(phase, batch, batches, elapsed_s, live.rss_bytes, live.requests_done, live.rps)
        )


class RunLoop:
    """Phases are marked on the sampler; every check asks the watchdog, then reports progress."""

    def __init__(
        self,
        sampler: PhaseMarker,
        watchdog: Guard,
        live: Live,
        batches: int,
        on_progress: ProgressCallback | None,
        *,
        t0: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        poll_s: float = POLL_S,
    ) -> None:
        self.sampler = sampler
        self.watchdog = watchdog
        self.live = live
        self.batches = batches
        self.on_progress = on_progress
        self.t0 = t0
        self.clock = clock
        self.sleep = sleep
        self.poll_s = poll_s
        self.phase = "start"
        self.batch = 0
        """The batch under way, or the last one (0 before the first)."""
        self.after_check: Callable[[], None] | None = None
        """Called after every check that passed (the runner's checkpoint)."""

    def now(self) -> float:
        """Seconds since the run started."""
        return self.clock() - self.t0

    def mark(self, phase: str, batch: int | None = None) -> None:
        self.phase = phase
        if batch is not None:
            self.batch = batch
        self.sampler.mark(phase)

    def check(self) -> None:
        """Raise (the watchdog's Stopped) if the run cannot go on; else checkpoint and report
        progress."""
        self.watchdog.check(self.phase)
        if self.after_check is not None:
            self.after_check()
        report_progress(
            self.on_progress, self.phase, self.batch, self.batches, self.now(), self.live
        )

    def hold(self, phase: str, seconds: float) -> None:
        """Open `phase` and stay in it for `seconds` (baseline, pauses, idle)."""
        self.mark(phase)
        self.wait(seconds)

    def wait(self, seconds: float) -> None:
        """Wait `seconds`, checking every `poll_s` (and once at the start, even for 0 s)."""
        deadline = self.clock() + seconds
        while True:
            self.check()
            left = deadline - self.clock()
            if left <= 0:
                return
            self.sleep(min(self.poll_s, left))
