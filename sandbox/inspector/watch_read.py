"""The growth read of a watch: whether RSS, live and kept-but-free level off or climb, over time.

The read is the runs' (`sandbox.analysis.stair_read.read_runs`: a straight line, a saturating
curve and a log curve, the one that best predicts the looks it was not fitted on chosen, its
forecast with a 90 % interval, and where it goes), on one series per quantity: x = seconds
since the first look, which plays a run's baseline; the later looks play its batch ends. So 3
looks give a weak read without an interval, 4 a weak one (one look held out), 5 or more a full
read; fewer than 3 give none ("too few looks"). A long watch is read at MAX_READ looks spread
evenly over it, the first and the last among them (every rolling origin refits the curves, so
the read's cost grows with the square of the looks: 720 looks took 6 s, 100 under 1 s).

The quantities, as the runs define them (`sandbox.analysis.stairs`):
- RSS;
- live = the allocator's in-use count + pymalloc's bytes in objects;
- kept-but-free = held - in use + pymalloc's arena bytes outside objects;
pymalloc's parts only when every look read them. A quantity is read only when every look
measured it (a look that could not attach has no counters; mimalloc gives no in-use count).

The interval, with one process: there are no runs to resample, so the forecast's first part
(the spread between runs) is 0. What is left is the curve's own errors on the looks it was not
fitted on (every rolling origin's, each scaled to the distance ahead: in proportion for a
straight line, by the square root for the other two) and its residual, times Student's t on as
many degrees of freedom as there were rolling origins. It says how well the curve predicted
this process's later looks; it does not say how another process, or the same one on another
day, would differ.

The forecast is at twice the watch's length from the first look (as many seconds again); with
a limit, when RSS, climbing, reaches it: from the last look, at the curve's pace, with the
interval's ends (`stair_read.limit_line`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sandbox.analysis import stair_read
from sandbox.analysis.growth import Run
from sandbox.analysis.read_axis import SECONDS, duration
from sandbox.analysis.stair_read import FEW_LOOKS, StairRead
from sandbox.analysis.stairs import QUANTITIES, live_and_kept
from sandbox.inspector.snapshot import Snapshot
from sandbox.units import mib_figure

TOO_FEW = "too few looks to tell whether memory levels off"
MAX_READ = 100
"""The most looks a read takes (spread evenly over the watch)."""


def spread(n: int, most: int = MAX_READ) -> list[int]:
    """`most` indices of n spread evenly, the first and the last among them (all when n <= most)."""
    if n <= most:
        return list(range(n))
    return sorted({round(i * (n - 1) / (most - 1)) for i in range(most)})


def value(look: Snapshot, quantity: str, pymalloc: bool) -> float | None:
    """`quantity` at one look (bytes); None when the look did not measure it. With `pymalloc`,
    live and kept-but-free include pymalloc's parts (the caller checked every look has them)."""
    if quantity == "RSS":
        return float(look.memory.rss_bytes)
    counters = look.counters
    if counters is None:
        return None
    py = look.python.pymalloc if pymalloc and look.python else None
    live, kept = live_and_kept(
        counters.in_use_bytes,
        counters.held_bytes,
        py.allocated_bytes if py else None,
        py.arena_bytes - py.allocated_bytes if py else None,
    )
    return live if quantity == "live" else kept


def series(times: Sequence[float], looks: Sequence[Snapshot], quantity: str) -> Run | None:
    """`quantity` over the looks (x = seconds since the first); None when a look lacks it."""
    pymalloc = all(look.python and look.python.pymalloc for look in looks)
    values = [value(look, quantity, pymalloc) for look in looks]
    if not looks or any(v is None for v in values):
        return None
    x = tuple(t - times[0] for t in times)
    return Run(x, tuple(v or 0.0 for v in values))


def reads(times: Sequence[float], looks: Sequence[Snapshot]) -> tuple[StairRead, ...]:
    """The read of each quantity every look measured, over at least 2 looks."""
    if len(looks) < 2:
        return ()
    kept = spread(len(looks))
    times, looks = [times[i] for i in kept], [looks[i] for i in kept]
    found = [(q, series(times, looks, q)) for q in QUANTITIES]
    return tuple(stair_read.read_runs([s], q, SECONDS) for q, s in found if s is not None)


def verdict_words(found: Sequence[StairRead]) -> list[str]:
    """The reads' few words for the verdict line (one phrase when there are too few looks)."""
    if any(r.band is None for r in found):
        return [TOO_FEW]
    return [r.short() for r in found]


def limit_words(found: Sequence[StairRead], looks: Sequence[Snapshot], limit_bytes: float) -> str:
    """When RSS would reach `limit_bytes`, from the last look, or why it would not (also: too
    few looks, or curves that disagree, cannot tell)."""
    rss = next((r for r in found if r.quantity == "RSS"), None)
    now = looks[-1].memory.rss_bytes
    limit = f"the limit of {mib_figure(limit_bytes)} MiB"
    if rss is not None and now < limit_bytes and rss.band is None:
        return f"too few looks to tell when RSS would reach {limit}"
    if rss is not None and now < limit_bytes and rss.state == "unsure":
        return f"RSS may level off or climb: no time to {limit}"
    return stair_read.limit_line(rss, now, limit_bytes, None)


def limit_dict(
    found: Sequence[StairRead], looks: Sequence[Snapshot], limit_bytes: float
) -> dict[str, Any]:
    """The figures of `limit_words`: {limit_bytes, words, reach: {after_s, soonest_s, latest_s}
    (seconds from the last look) or null when RSS does not reach it}."""
    rss = next((r for r in found if r.quantity == "RSS"), None)
    got = None
    if rss is not None and looks[-1].memory.rss_bytes < limit_bytes:
        got = stair_read.reach(rss, limit_bytes, None)
    return {
        "limit_bytes": limit_bytes,
        "words": limit_words(found, looks, limit_bytes),
        "reach": None
        if got is None
        else {"after_s": got.x, "soonest_s": got.soonest, "latest_s": got.latest},
    }


def lines(
    found: Sequence[StairRead],
    times: Sequence[float],
    looks: Sequence[Snapshot],
    limit_bytes: float | None,
) -> list[str]:
    """The read for people: a heading, each quantity's answer, the limit, what too few looks
    cannot tell."""
    if not found:
        return []
    span = duration(times[-1] - times[0])
    read = found[0].axis.point_count(found[0].batches)
    at = f", read at {read} of them" if read < len(looks) else ""
    out = [f"the growth read over {len(looks)} looks in {span}{at} (x: seconds since the first):"]
    out += ["  " + r.answer() for r in found]
    if limit_bytes is not None:
        out.append("  " + limit_words(found, looks, limit_bytes))
    if any(r.band is None for r in found):
        out.append("  " + FEW_LOOKS)
    return out
