"""The stair-step read: what each batch added, and whether memory levels off or keeps climbing.

A run sends its load in batches; at each batch's end three figures are read (the last sample or
probe at or before the end):
- RSS;
- live: what the application has allocated and not freed = malloc's in-use count + pymalloc's
  bytes in objects (pymalloc's part is 0 when pymalloc is off: its objects are then malloc's);
- kept-but-free: what the allocators hold that no object uses = malloc's held - in use +
  pymalloc's arena bytes outside objects.

The rule, for one quantity (`read`):
- x = requests done at each batch's end, in thousands (Locust's counts, summed batch by batch);
  y = the quantity there. The window is the last k batch ends: all of them up to 4 batches,
  else max(4, ceil(n / 2)) - the first batches hold the one-off growth of warm-up;
- slope = least squares over the window, in bytes per 1,000 requests, with a 95 % Student t
  interval (k - 2 degrees of freedom);
- over the window's requests (R thousand) the interval would add lo * R to hi * R;
- "still climbing" when lo > 0 and lo * R >= MATERIAL_BYTES: the slope is surely above 0, and
  even the slowest rate the interval allows adds MATERIAL_BYTES over the window;
- "falling" likewise below 0 (hi < 0 and hi * R <= -MATERIAL_BYTES);
- else "levels off at ≈ <mean over the window>" when -M < lo * R and hi * R < M, with M the
  larger of MATERIAL_BYTES and MATERIAL_SHARE of the window's mean level: even the fastest rate
  the interval allows adds less than M over another window;
- else "cannot tell" (the interval is too wide), with it shown;
- with fewer than 3 batches there is no interval: one batch cannot tell a leak from a cache.

A group's read pools its runs' windows (each run's own x), so repeats narrow the interval.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sandbox.analysis import tdist
from sandbox.results.model import Columns, Number, RunResult
from sandbox.units import MIB, mib_figure

MATERIAL_BYTES = 4 * MIB
"""The least change over the window that counts as climbing (or falling)."""
MATERIAL_SHARE = 0.10
"""A level holds when the interval's fastest rate adds less than this share of the window's
mean level (or MATERIAL_BYTES, when that is larger) over another window."""
MIN_BATCHES = 3
"""Fewer batch ends give no interval for the slope."""
CONFIDENCE = 0.95

State = Literal["levels", "climbing", "falling", "unsure", "few batches"]
QUANTITIES = ("RSS", "live", "kept-but-free")
FEW_BATCHES = (
    f"fewer than {MIN_BATCHES} batches: whether memory levels off cannot be told (a leak and a "
    f"cache look alike); run {MIN_BATCHES} or more (--batches)"
)


@dataclass(frozen=True)
class Step:
    """The figures at one batch's end (None: not measured)."""

    batch: int
    requests: int
    """Requests done from the start of the run to this batch's end."""
    rss_bytes: float
    live_bytes: float | None
    kept_free_bytes: float | None
    pymalloc_free_bytes: float | None
    """pymalloc's part of kept-but-free; None when pymalloc is off or unread."""

    def value(self, quantity: str) -> float | None:
        return {
            "RSS": self.rss_bytes,
            "live": self.live_bytes,
            "kept-but-free": self.kept_free_bytes,
        }[quantity]


@dataclass(frozen=True)
class Stairs:
    """One run's batch ends, and the figures at the end of its baseline (batch 0)."""

    start: Step
    steps: tuple[Step, ...]
    rps: float | None
    """Requests per second over the batches (Locust's), for the time to a limit."""


@dataclass(frozen=True)
class Slope:
    per_1000_bytes: float
    low: float
    high: float
    points: int
    """Batch ends fitted (over all the runs read)."""


@dataclass(frozen=True)
class StairRead:
    """One quantity's read (see the module docstring for the rule)."""

    quantity: str
    state: State
    slope: Slope | None
    level_bytes: float
    """The mean over the window (the last value, without an interval)."""
    material_bytes: float
    window_requests: float
    """Requests spanned by the window, per run (median)."""
    rise_bytes: float
    """From the end of the baseline to the last batch's end (median over runs)."""

    def short(self) -> str:
        """A few words for a plot: levels off / climbing, with the figure."""
        if self.slope is None:
            return f"{self.quantity}: too few batches to tell"
        if self.state == "levels":
            return f"{self.quantity} levels off at ≈ {mib_figure(self.level_bytes)} MiB"
        if self.state == "climbing":
            return (
                f"{self.quantity} still climbing "
                f"{mib_figure(self.slope.per_1000_bytes, _decimals(self.slope))} MiB / 1,000 req"
            )
        if self.state == "falling":
            return f"{self.quantity} falling"
        return f"{self.quantity}: cannot tell whether it levels off"

    def answer(self) -> str:
        """The plain answer, with the interval behind it."""
        if self.slope is None:
            return (
                f"{self.quantity}: {_delta(self.rise_bytes, 0.0)} MiB over the batches (no slope)"
            )
        interval = _slope_text(self.slope)
        if self.state == "levels":
            level = mib_figure(self.level_bytes)
            return f"{self.quantity}: levels off at ≈ {level} MiB (slope {interval})"
        if self.state == "climbing":
            return f"{self.quantity}: still climbing {interval}"
        if self.state == "falling":
            return f"{self.quantity}: falling {interval}"
        return f"{self.quantity}: cannot tell whether it levels off (slope {interval})"


def _at_or_before(t: Sequence[Number], values: Sequence[Number], end: float) -> float | None:
    before = [v for ts, v in zip(t, values, strict=True) if ts <= end]
    return float(before[-1]) if before else None


def _live_and_kept(probes: Columns, end: float) -> tuple[float | None, float | None, float | None]:
    """(live, kept-but-free, pymalloc's free) at `end`."""
    pt = probes.get("t_s", [])

    def get(name: str) -> float | None:
        column = probes.get(name)
        return _at_or_before(pt, column, end) if column and len(column) == len(pt) else None

    in_use, held = get("alloc_in_use_bytes"), get("alloc_held_bytes")
    py_used, py_free = get("pymalloc_used_bytes"), get("pymalloc_free_bytes")
    live = None if in_use is None else in_use + (py_used or 0.0)
    kept = None if in_use is None or held is None else held - in_use + (py_free or 0.0)
    return live, kept, py_free


def stairs(result: RunResult) -> Stairs | None:
    """The run's batch ends; None when it has no batch that ended or no baseline."""
    phases = {p.name: p for p in result.phases}
    batches = sorted(
        (p for p in result.phases if p.name.startswith("batch-")),
        key=lambda p: int(p.name.removeprefix("batch-")),
    )
    baseline = phases.get("baseline")
    t, rss = result.samples.get("t_s", []), result.samples.get("rss_bytes", [])
    if not batches or baseline is None or not rss or len(t) != len(rss):
        return None
    requests = {b.index: b.requests for b in result.load.stats}

    def step(batch: int, end: float, done: int) -> Step | None:
        value = _at_or_before(t, rss, end)
        if value is None:
            return None
        live, kept, py_free = _live_and_kept(result.probes, end)
        return Step(batch, done, value, live, kept, py_free)

    start = step(0, baseline.end_s, 0)
    if start is None:
        return None
    out, done = [], 0
    for phase in batches:
        index = int(phase.name.removeprefix("batch-"))
        done += requests.get(index, 0)
        s = step(index, phase.end_s, done)
        if s is not None:
            out.append(s)
    seconds = sum(b.requests / b.rps for b in result.load.stats if b.rps > 0)
    rps = done / seconds if seconds > 0 and done > 0 else None
    return Stairs(start, tuple(out), rps)


def window(n: int) -> int:
    """How many of n batch ends the slope is fitted over."""
    return n if n <= 4 else max(4, math.ceil(n / 2))


def fit(points: Sequence[tuple[float, float]]) -> Slope | None:
    """Least-squares slope of y on x with its 95 % t interval; None with fewer than 3 points
    or no spread in x."""
    n = len(points)
    if n < MIN_BATCHES:
        return None
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx <= 0:
        return None
    b = sum((x - mx) * (y - my) for x, y in points) / sxx
    a = my - b * mx
    sse = sum((y - a - b * x) ** 2 for x, y in points)
    se = math.sqrt(sse / (n - 2) / sxx)
    half = tdist.ppf(0.5 + CONFIDENCE / 2, n - 2) * se
    return Slope(b, b - half, b + half, n)


def read(runs: Sequence[Stairs], quantity: str) -> StairRead | None:
    """The read of `quantity` over one run's or a group's stairs; None when it was not
    measured (no in-use count: live and kept-but-free)."""
    usable = [r for r in runs if r.steps and all(s.value(quantity) is not None for s in r.steps)]
    if not usable or usable[0].start.value(quantity) is None:
        return None
    points: list[tuple[float, float]] = []
    spans, rises, levels = [], [], []
    for r in usable:
        last = r.steps[-window(len(r.steps)) :]
        ys = [float(s.value(quantity) or 0.0) for s in last]
        points.extend((s.requests / 1000, y) for s, y in zip(last, ys, strict=True))
        spans.append((last[-1].requests - last[0].requests) / 1000)
        levels.append(statistics.fmean(ys))
        start = r.start.value(quantity)
        rises.append(ys[-1] - (start if start is not None else ys[0]))
    level = statistics.fmean(levels)
    material = max(MATERIAL_BYTES, MATERIAL_SHARE * abs(level))
    span = statistics.median(spans)
    few = min(len(r.steps) for r in usable) < MIN_BATCHES
    slope = None if few else fit(points)
    rise = statistics.median(rises)
    if slope is None:
        return StairRead(quantity, "few batches", None, level, material, span, rise)
    lo, hi = slope.low * span, slope.high * span
    state: State
    if slope.low > 0 and lo >= MATERIAL_BYTES:
        state = "climbing"
    elif slope.high < 0 and hi <= -MATERIAL_BYTES:
        state = "falling"
    elif -material < lo and hi < material:
        state = "levels"
    else:
        state = "unsure"
    return StairRead(quantity, state, slope, level, material, span, rise)


def steps_table(s: Stairs) -> list[str]:
    """What each batch added: one line per batch, RSS / live / kept-but-free in MiB."""
    lines = []
    prev = s.start
    for step in s.steps:
        rss = _delta(step.rss_bytes, prev.rss_bytes)
        parts = [f"batch {step.batch} ({step.requests:,} requests so far): RSS {rss}"]
        if step.live_bytes is not None and prev.live_bytes is not None:
            parts.append(f"live {_delta(step.live_bytes, prev.live_bytes)}")
        if step.kept_free_bytes is not None and prev.kept_free_bytes is not None:
            parts.append(f"kept-but-free {_delta(step.kept_free_bytes, prev.kept_free_bytes)}")
        lines.append(", ".join(parts) + " MiB")
        prev = step
    return lines


@dataclass(frozen=True)
class Reach:
    """When a still-climbing quantity would reach a limit at the measured rate."""

    limit_bytes: float
    requests: float
    """Requests from the last batch's end, at the fitted slope."""
    requests_low: float
    """... at the interval's fastest rate (the soonest)."""
    seconds: float | None
    """At the measured request rate; None when unknown."""

    def words(self, what: str) -> str:
        soonest = f"{self.requests_low:,.0f} at the fastest rate the interval allows"
        when = f"in ≈ {self.requests:,.0f} requests (from {soonest})"
        if self.seconds is not None:
            when += f", ≈ {_duration(self.seconds)} at the measured rate"
        return f"{what} would reach {mib_figure(self.limit_bytes)} MiB {when}"


def reach(r: StairRead, now_bytes: float, limit_bytes: float, rps: float | None) -> Reach | None:
    """When `r` (climbing) would get from `now_bytes` to `limit_bytes`; None when it is not
    climbing or already past the limit."""
    if r.state != "climbing" or r.slope is None or now_bytes >= limit_bytes:
        return None
    left = limit_bytes - now_bytes
    requests = left / r.slope.per_1000_bytes * 1000
    soonest = left / r.slope.high * 1000
    return Reach(limit_bytes, requests, soonest, requests / rps if rps else None)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _delta(a: float, b: float) -> str:
    """A signed change in MiB, one decimal, without a `-0.0`."""
    text = f"{(a - b) / MIB:+.1f}"
    return "+0.0" if text == "-0.0" else text


def _decimals(slope: Slope) -> int:
    """Decimals that the interval supports: two significant digits of its half-width (none
    for a half-width of 10 MiB or more, two at most); two for an exact figure."""
    half = (slope.high - slope.low) / 2 / MIB
    if not math.isfinite(half) or half <= 0:
        return 2
    return min(2, max(0, 1 - math.floor(math.log10(half))))


def _slope_text(slope: Slope) -> str:
    d = _decimals(slope)
    return (
        f"{mib_figure(slope.per_1000_bytes, d)} "
        f"[{mib_figure(slope.low, d)}, {mib_figure(slope.high, d)}] MiB per 1,000 requests"
    )


@dataclass(frozen=True)
class GroupStairs:
    """A group's stair read, as compare shows it."""

    label: str
    lines: tuple[str, ...]


def limit_of(runs: Sequence[RunResult], limit_bytes: float | None) -> float | None:
    """The RSS limit to project to: `limit_bytes` (--limit), else the runs' peak_rss threshold,
    else their growth threshold on top of the median baseline (thresholds are in MiB)."""
    if limit_bytes is not None:
        return limit_bytes
    checks = [c for r in runs for c in r.thresholds]
    peak = [c.limit for c in checks if c.name == "peak_rss"]
    if peak:
        return min(peak) * MIB
    growth = [c.limit for c in checks if c.name == "growth"]
    if growth:
        base = statistics.median(r.summary.baseline_rss_bytes for r in runs)
        return base + min(growth) * MIB
    return None


def group_lines(
    label: str, runs: Sequence[RunResult], limit_bytes: float | None
) -> GroupStairs | None:
    """What each batch added (median over the runs), each quantity's read, and when RSS would
    reach the limit; None when no run has batch ends."""
    all_stairs = [s for s in map(stairs, runs) if s is not None]
    if not all_stairs:
        return None
    n = min(len(s.steps) for s in all_stairs)
    runs_words = f"{len(all_stairs)} runs" if len(all_stairs) > 1 else "1 run"
    batches = f"{n} batches" if n != 1 else "1 batch"
    lines = [f"{label}: the stair read over {batches} ({runs_words}; MiB each batch added, median)"]
    lines += ["  " + line for line in steps_table(median_stairs(all_stairs, n))]
    reads = [r for r in (read(all_stairs, q) for q in QUANTITIES) if r is not None]
    lines += ["  " + r.answer() for r in reads]
    if any(r.slope is None for r in reads):
        lines.append("  " + FEW_BATCHES)
    limit = limit_of(runs, limit_bytes)
    rss = next((r for r in reads if r.quantity == "RSS"), None)
    if limit is not None and rss is not None:
        now = statistics.median(s.steps[-1].rss_bytes for s in all_stairs)
        rates = [s.rps for s in all_stairs if s.rps]
        got = reach(rss, now, limit, statistics.median(rates) if rates else None)
        if got is not None:
            lines.append("  " + got.words("RSS"))
        elif now >= limit:
            lines.append(f"  RSS is already past the limit of {mib_figure(limit)} MiB")
        else:
            lines.append(f"  RSS is not climbing: no time to the limit of {mib_figure(limit)} MiB")
    return GroupStairs(label, tuple(lines))


def median_stairs(runs: Sequence[Stairs], n: int) -> Stairs:
    """One Stairs holding, at each of the first n batch ends, the median over the runs."""

    def med(values: Sequence[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return statistics.median(present) if len(present) == len(values) else None

    def at(steps: Sequence[Step], batch: int) -> Step:
        return Step(
            batch,
            int(statistics.median(s.requests for s in steps)),
            statistics.median(s.rss_bytes for s in steps),
            med([s.live_bytes for s in steps]),
            med([s.kept_free_bytes for s in steps]),
            med([s.pymalloc_free_bytes for s in steps]),
        )

    start = at([r.start for r in runs], 0)
    steps = tuple(at([r.steps[i] for r in runs], runs[0].steps[i].batch) for i in range(n))
    return Stairs(start, steps, None)
