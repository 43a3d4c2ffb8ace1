"""The stairs: each batch's end, and what each batch added.

A run sends its load in batches; at each batch's end three figures are read (the last sample or
probe at or before the end):
- RSS;
- live: what the application has allocated and not freed = malloc's in-use count + pymalloc's
  bytes in objects (pymalloc's part is 0 when pymalloc is off: its objects are then malloc's);
- kept-but-free: what the allocators hold that no object uses = malloc's held - in use +
  pymalloc's arena bytes outside objects.

The read of these ends (levels off, climbing, a forecast) is `stair_read`'s.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from sandbox.results.model import RunResult
from sandbox.results.sampling import Columns, Number
from sandbox.results.summary import at_or_before
from sandbox.units import MIB

QUANTITIES = ("RSS", "live", "kept-but-free")


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


def _at_or_before(t: Sequence[Number], values: Sequence[Number], end: float) -> float | None:
    value = at_or_before(t, values, end)
    return None if value is None else float(value)


def _live_and_kept(probes: Columns, end: float) -> tuple[float | None, float | None, float | None]:
    """(live, kept-but-free, pymalloc's free) at `end`."""
    pt = probes.get("t_s", [])

    def get(name: str) -> float | None:
        column = probes.get(name)
        return _at_or_before(pt, column, end) if column and len(column) == len(pt) else None

    py_free = get("pymalloc_free_bytes")
    live, kept = live_and_kept(
        get("alloc_in_use_bytes"), get("alloc_held_bytes"), get("pymalloc_used_bytes"), py_free
    )
    return live, kept, py_free


def live_and_kept(
    in_use: float | None, held: float | None, py_used: float | None, py_free: float | None
) -> tuple[float | None, float | None]:
    """(live, kept-but-free) from the allocator's in use and held and pymalloc's bytes in
    objects and free in its arenas (None: not read, counted as 0 for pymalloc's): live = in use
    + pymalloc's objects, kept-but-free = held - in use + pymalloc's free. Both None without an
    in-use count; kept-but-free None without a held count."""
    live = None if in_use is None else in_use + (py_used or 0.0)
    kept = None if in_use is None or held is None else held - in_use + (py_free or 0.0)
    return live, kept


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


def _delta(a: float, b: float) -> str:
    """A signed change in MiB, one decimal, without a `-0.0`."""
    text = f"{(a - b) / MIB:+.1f}"
    return "+0.0" if text == "-0.0" else text


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
