"""`sandbox inspect --watch`: look at a process every few seconds, then say where growth went
and where it is going.

Where it went: last look minus first, split as `sandbox compare` splits it (`verdict`). Where
it is going: the runs' growth read over the looks, in time (`watch_read`): whether RSS, live and
kept-but-free level off or climb, a forecast with its interval, and with a limit, when RSS
reaches it.

JSON (`Watch.to_dict`, format "sandbox-inspect-watch", version 2):

    format, version     "sandbox-inspect-watch", 2
    pid                 the process
    duration_s          seconds from the first look to the last
    interval_s          the planned seconds between looks
    interrupted         true when Ctrl-C ended the watch early
    samples             [{t_s, snapshot}]: t_s from the first look; snapshot as `inspect --json`
    growth              {duration_s, rss_bytes, in_use_bytes, held_bytes, free_kept_bytes,
                        outside_bytes, pymalloc_bytes}: last look minus first (null: < 2 looks)
    reads               [{quantity, state, model, weak, looks, runs, rise_bytes, forecast,
                        interval, contenders, held_out_rms_bytes, per_minute_bytes,
                        level_bytes}]: the growth read of RSS, live and kept-but-free (those
                        every look measured; [] with < 2 looks). state: levels, climbing,
                        slowing, falling, unsure (contenders disagree: cannot tell) or few
                        looks; model: linear, saturating, sublinear or null; looks: the looks
                        read (at most 100, spread over the watch); weak: at most 4 of them;
                        runs: 1 (one process); rise_bytes: last look read minus first;
                        forecast {t_s, bytes, low_bytes, high_bytes} at t_s = twice the
                        watch's length, or null; interval: 0.9 when low < high, else null;
                        held_out_rms_bytes: each curve's error on looks it was not fitted on;
                        per_minute_bytes: the straight line's slope when it is the curve read;
                        level_bytes: where the saturating curve levels off, when it is
    limit               with --limit: {limit_bytes, words, reach: {after_s, soonest_s,
                        latest_s} (seconds from the last look; latest_s null: the interval's
                        bottom never gets there) or null (not climbing, or already past)}; else
                        null
    verdict             one line in the words of `sandbox compare`'s verdict, with the reads'
                        few words before its `->`
    stopped_ms          {median, max, n} over the looks that attached, or null
History: 2 added reads and limit (and the reads' words to the verdict).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sandbox.analysis.stair_read import StairRead
from sandbox.errors import TargetExitedError
from sandbox.inspector import inspection, watch_read
from sandbox.inspector.snapshot import Snapshot
from sandbox.inspector.verdict import Growth, sentence

FORMAT = "sandbox-inspect-watch"
VERSION = 2


@dataclass(frozen=True)
class Sample:
    t_s: float
    """Seconds since the first look started."""
    snapshot: Snapshot

    def to_dict(self) -> dict[str, Any]:
        return {"t_s": self.t_s, "snapshot": self.snapshot.to_dict()}


@dataclass(frozen=True)
class Watch:
    pid: int
    interval_s: float
    samples: tuple[Sample, ...]
    interrupted: bool = False
    limit_bytes: float | None = None
    """--limit: say when RSS, climbing, would reach it."""

    @cached_property
    def reads(self) -> tuple[StairRead, ...]:
        """The growth read of each quantity over the looks (`watch_read`)."""
        return watch_read.reads(self._times, self._looks)

    @property
    def _times(self) -> list[float]:
        return [s.t_s for s in self.samples]

    @property
    def _looks(self) -> list[Snapshot]:
        return [s.snapshot for s in self.samples]

    def read_lines(self) -> list[str]:
        """The reads for people (`watch_read.lines`)."""
        return watch_read.lines(self.reads, self._times, self._looks, self.limit_bytes)

    @property
    def growth(self) -> Growth | None:
        if len(self.samples) < 2:
            return None
        return growth(self.samples[0], self.samples[-1])

    @property
    def python(self) -> bool:
        return any(s.snapshot.python is not None for s in self.samples)

    @property
    def verdict(self) -> str:
        found = self.growth
        if found is None:
            return f"pid {self.pid}: one look only, nothing to compare"
        allocator = self.samples[-1].snapshot.allocator
        words = watch_read.verdict_words(self.reads)
        return sentence(f"pid {self.pid} ({allocator})", allocator, found, self.python, words)

    def stopped_ms(self) -> dict[str, float] | None:
        stops = [s.snapshot.stopped_ms for s in self.samples if s.snapshot.stopped_ms is not None]
        if not stops:
            return None
        return {"median": statistics.median(stops), "max": max(stops), "n": len(stops)}

    def to_dict(self) -> dict[str, Any]:
        found = self.growth
        return {
            "format": FORMAT,
            "version": VERSION,
            "pid": self.pid,
            "duration_s": found.duration_s if found else 0.0,
            "interval_s": self.interval_s,
            "interrupted": self.interrupted,
            "samples": [s.to_dict() for s in self.samples],
            "growth": found.to_dict() if found else None,
            "reads": [r.to_dict() for r in self.reads],
            "limit": self._limit_dict(),
            "verdict": self.verdict,
            "stopped_ms": self.stopped_ms(),
        }

    def _limit_dict(self) -> dict[str, Any] | None:
        if self.limit_bytes is None or not self.samples:
            return None
        return watch_read.limit_dict(self.reads, self._looks, self.limit_bytes)


def growth(first: Sample, last: Sample) -> Growth:
    """Last look minus first; a counter missing from either look is None."""
    a, b = first.snapshot, last.snapshot
    in_use = held = pymalloc_growth = pymalloc_used = None
    if a.counters and b.counters:
        in_use = _diff(b.counters.in_use_bytes, a.counters.in_use_bytes)
        held = _diff(b.counters.held_bytes, a.counters.held_bytes)
    pa = a.python.pymalloc if a.python else None
    pb = b.python.pymalloc if b.python else None
    if pa and pb:
        pymalloc_growth = pb.arena_bytes - pa.arena_bytes
        pymalloc_used = pb.allocated_bytes - pa.allocated_bytes
    return Growth(
        duration_s=last.t_s - first.t_s,
        rss_bytes=b.memory.rss_bytes - a.memory.rss_bytes,
        in_use_bytes=in_use,
        held_bytes=held,
        pymalloc_bytes=pymalloc_growth,
        pymalloc_used_bytes=pymalloc_used,
    )


def _diff(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a - b


def plan(duration_s: float, interval_s: float) -> list[float]:
    """Planned times of the looks: 0, interval, 2 x interval, ..., and `duration_s` itself."""
    if interval_s <= 0:
        raise ValueError("interval_s must be > 0")
    times = [0.0]
    while times[-1] + interval_s < duration_s - 1e-9:
        times.append(times[-1] + interval_s)
    if duration_s > 0:
        times.append(duration_s)
    return times


def watch(
    pid: int,
    duration_s: float,
    interval_s: float,
    *,
    attach: bool = True,
    limit_bytes: float | None = None,
    on_sample: Callable[[Sample], None] | None = None,
    take: Callable[..., Snapshot] = inspection.take,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Watch:
    """Look at `pid` at the planned times; Ctrl-C between looks ends the watch early.

    Raises InspectError (TargetExitedError when the process exits during the watch).
    """
    samples: list[Sample] = []
    start = clock()
    interrupted = False
    for planned in plan(duration_s, interval_s):
        wait = start + planned - clock()
        try:
            if wait > 0:
                sleep(wait)
        except KeyboardInterrupt:
            interrupted = True
            break
        t_s = clock() - start
        try:
            snapshot = take(pid, attach=attach)
        except TargetExitedError:
            if not samples:
                raise
            raise TargetExitedError(
                f"process {pid} exited during the watch, after {len(samples)} looks"
            ) from None
        sample = Sample(t_s, snapshot)
        samples.append(sample)
        if on_sample is not None:
            on_sample(sample)
    return Watch(pid, interval_s, tuple(samples), interrupted, limit_bytes)
