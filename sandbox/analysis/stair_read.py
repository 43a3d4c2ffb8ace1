"""The stair read: whether each quantity levels off or keeps climbing, and where it is going.

For one quantity (`read`), over one run's or a group's stairs: x = requests done at each batch's
end, y = the quantity there, with the baseline's end at x = 0. Three growth curves (a straight
line: a leak; a saturating curve: a cache, or fragmentation that settles; a log: a slow creep)
are fitted, and the one that best predicts the batch ends it was not fitted on is chosen
(`growth`). It forecasts the quantity after as many requests again as the run made, with a
90 % interval from the runs and the held-out batches (`forecast`), and says where it goes:
levels off, climbing (a straight line), climbing but slowing, falling, or cannot tell (another
curve that predicted almost as well goes elsewhere).

With 3 batch ends one batch is held out (a weak read, said so); with 2 none is: the read is
weak, has no interval, and levels off only when the straight line and the saturating curve
agree that the second batch added little; with 1 there is no read. A group pools its runs.

`read_runs` reads any points the same way: a watch of a process (`sandbox inspect --watch`)
gives one run over time, its first look at x = 0 and its later looks as the batch ends, and
its words say time (`read_axis.SECONDS`: "per minute", "2 min after the first look").
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from sandbox.analysis import forecast
from sandbox.analysis.forecast import Band, Forecaster
from sandbox.analysis.growth import Choice, Model, Run, choose
from sandbox.analysis.read_axis import REQUESTS, Axis, duration
from sandbox.analysis.stairs import (
    QUANTITIES,
    Stairs,
    limit_of,
    median_stairs,
    stairs,
    steps_table,
)
from sandbox.results.model import RunResult
from sandbox.units import MIB, mib_figure

State = Literal["levels", "climbing", "slowing", "falling", "unsure", "few batches", "few looks"]
MIN_BATCHES = 2
"""Fewer batch ends give no read: one batch cannot tell a leak from a cache."""
WEAK_BATCHES = 3
"""Up to this many batch ends the read is weak (at most one batch held out)."""
FEW_BATCHES = (
    f"fewer than {MIN_BATCHES} batches: whether memory levels off cannot be told (a leak and a "
    f"cache look alike); run {WEAK_BATCHES + 1} or more (--batches)"
)
FEW_LOOKS = (
    f"fewer than {MIN_BATCHES + 1} looks: whether memory levels off cannot be told (a leak and a "
    f"cache look alike); look {WEAK_BATCHES + 2} or more times (a longer --watch or a shorter "
    "--interval)"
)
"""A watch's FEW_BATCHES: its first look is its baseline."""
NAMES: dict[Model, str] = {
    "linear": "straight line",
    "saturating": "saturating curve",
    "sublinear": "log curve",
}


@dataclass(frozen=True)
class StairRead:
    """One quantity's read (see the module docstring for the rule)."""

    quantity: str
    state: State
    batches: int
    """Batch ends read (the fewest of the runs'); a watch's looks after its first."""
    runs: int
    rise_bytes: float
    """From the end of the baseline to the last batch's end (median over runs)."""
    model: Model | None = None
    """The chosen curve; None without a read."""
    band: Band | None = None
    """The chosen curve's forecast after as many requests again as the run made."""
    others: tuple[Band, ...] = ()
    """For `unsure`: the contenders' forecasts at the same point, in the order of `contenders`."""
    contenders: tuple[Model, ...] = ()
    scores: dict[str, float] = field(default_factory=dict)
    """Each curve's held-out root mean square error (bytes); empty with 2 batch ends."""
    rate_bytes: float | None = None
    """The straight line's slope over `axis.per` (1,000 requests; a minute), when it is the
    chosen curve."""
    level_bytes: float | None = None
    """Where the saturating curve levels off (when it is the chosen curve)."""
    forecaster: Forecaster | None = field(default=None, repr=False, compare=False)
    axis: Axis = REQUESTS
    """What x counts, for the words and the JSON keys."""

    @property
    def per_1000_bytes(self) -> float | None:
        """The straight line's slope per 1,000 requests (a run's read)."""
        return self.rate_bytes if self.axis.name == "requests" else None

    @property
    def weak(self) -> bool:
        return self.batches <= WEAK_BATCHES

    @property
    def has_interval(self) -> bool:
        return self.band is not None and self.band.high > self.band.low

    def _figure(self, band: Band) -> str:
        if not self.has_interval:
            return f"≈ {mib_figure(band.mid)}"
        return f"≈ {mib_figure(band.mid)} [{mib_figure(band.low)}, {mib_figure(band.high)}]"

    def _basis(self) -> str:
        name = NAMES[self.model] if self.model else ""
        if not self.weak:
            return name
        interval = "" if self.has_interval else ", no interval"
        points = self.axis.point_count(self.batches)
        return f"{name}; weak: {points} {self.axis.points}{interval}"

    def short(self) -> str:
        """A few words for a plot: levels off / climbing, with the figure."""
        if self.band is None:
            return f"{self.quantity}: too few {self.axis.points} to tell"
        figure = f"{self._figure(self.band)} MiB"
        if self.state == "levels":
            return f"{self.quantity} levels off at {figure}"
        if self.state in ("climbing", "slowing"):
            words = "still climbing" if self.state == "climbing" else "climbing, slowing"
            return f"{self.quantity} {words}: {figure} at {self.axis.at(self.band.x)}"
        if self.state == "falling":
            return f"{self.quantity} falling"
        return f"{self.quantity}: cannot tell whether it levels off"

    def answer(self) -> str:
        """The plain answer, with the figures behind it."""
        band = self.band
        if band is None:
            points = self.axis.points
            return f"{self.quantity}: {_delta(self.rise_bytes)} MiB over the {points} (no read)"
        after = self.axis.after(band.x)
        figure = f"{self._figure(band)} MiB"
        if self.state == "levels":
            return f"{self.quantity}: levels off at {figure} ({self._basis()})"
        if self.state == "climbing":
            rate = mib_figure((self.rate_bytes or 0.0), 1)
            return (
                f"{self.quantity}: still climbing, {rate} MiB {self.axis.per_words}: {figure} "
                f"{after} ({self._basis()})"
            )
        if self.state == "slowing":
            return f"{self.quantity}: climbing, slowing: {figure} {after} ({self._basis()})"
        if self.state == "falling":
            return f"{self.quantity}: falling: {figure} {after} ({self._basis()})"
        says = ", ".join(
            f"{NAMES[m]} {self._figure(b)}"
            for m, b in zip(self.contenders, self.others, strict=True)
        )
        return f"{self.quantity}: cannot tell whether it levels off ({says} MiB {after})"

    def to_dict(self) -> dict[str, Any]:
        """The figures behind the words (bytes; x on the axis's key: requests from the start
        of the run, or t_s from a watch's first look; its batches or looks, its rate)."""
        band = self.band
        return {
            "quantity": self.quantity,
            "state": self.state,
            "model": self.model,
            "weak": self.weak,
            self.axis.points: self.axis.point_count(self.batches),
            "runs": self.runs,
            "rise_bytes": self.rise_bytes,
            "forecast": None if band is None else _band_dict(band, self.axis),
            "interval": forecast.CONFIDENCE if self.has_interval else None,
            "contenders": list(self.contenders),
            "held_out_rms_bytes": dict(self.scores),
            self.axis.per_key: self.rate_bytes,
            "level_bytes": self.level_bytes,
        }


def _band_dict(band: Band, axis: Axis) -> dict[str, float]:
    return {
        axis.key: band.x,
        "bytes": band.mid,
        "low_bytes": band.low,
        "high_bytes": band.high,
    }


def runs_of(all_stairs: Sequence[Stairs], quantity: str) -> list[Run]:
    """Each run's points for `quantity` (the runs where it was measured at every end)."""
    out = []
    for s in all_stairs:
        start = s.start.value(quantity)
        values = [step.value(quantity) for step in s.steps]
        if start is None or not s.steps or any(v is None for v in values):
            continue
        x = (0.0, *(float(step.requests) for step in s.steps))
        out.append(Run(x, (start, *(float(v or 0.0) for v in values))))
    return out


def read(all_stairs: Sequence[Stairs], quantity: str) -> StairRead | None:
    """The read of `quantity` over one run's or a group's stairs; None when it was not
    measured (no in-use count: live and kept-but-free)."""
    runs = runs_of(all_stairs, quantity)
    return read_runs(runs, quantity) if runs else None


def read_runs(runs: Sequence[Run], quantity: str, axis: Axis = REQUESTS) -> StairRead:
    """The read of `quantity` over `runs` (at least one), their x on `axis`."""
    n = min(r.ends for r in runs)
    rise = statistics.median(r.y[-1] - r.y[0] for r in runs)
    choice = choose(runs) if n >= MIN_BATCHES else None
    if choice is None:
        few: State = "few batches" if axis.points == "batches" else "few looks"
        return StairRead(quantity, few, n, len(runs), rise, axis=axis)
    last = forecast.last_x(runs)
    trend, contenders = forecast.agreed_trend(choice, last)
    others: tuple[Band, ...] = ()
    if trend is None:
        others = tuple(Forecaster(runs, _as_chosen(choice, m)).band(2 * last) for m in contenders)
    elif choice.scored:
        choice = forecast.simplest(choice, contenders)
        trend = forecast.trend_of(choice.curve, last)
    teller = Forecaster(runs, choice)
    horizon = 2 * last
    curve = choice.curve
    scores: dict[str, float] = {m: e.score for m, e in choice.errors.items() if e.origins}
    return StairRead(
        quantity,
        trend or "unsure",
        n,
        len(runs),
        rise,
        model=curve.model,
        band=teller.band(horizon),
        others=others,
        contenders=tuple(contenders) if trend is None else (),
        scores=scores,
        rate_bytes=curve.params[1] / curve.unit * axis.per if curve.model == "linear" else None,
        level_bytes=curve.level_bytes,
        forecaster=teller,
        axis=axis,
    )


def _as_chosen(choice: Choice, model: Model) -> Choice:
    return replace(choice, chosen=model)


@dataclass(frozen=True)
class Reach:
    """When a climbing quantity would reach a limit (x from the last batch's end or look)."""

    limit_bytes: float
    x: float
    soonest: float
    """... at the top of the interval."""
    latest: float | None
    """... at its bottom; None when the bottom stays below the limit."""
    rps: float | None
    """The measured request rate, for the time; None when unknown (or x is time already)."""
    axis: Axis = REQUESTS

    def words(self, what: str) -> str:
        limit = f"{mib_figure(self.limit_bytes)} MiB"
        figure = self.axis.figure
        latest = figure(self.latest) if self.latest is not None else "never"
        interval = f" [{figure(self.soonest)}, {latest}]" if self.soonest < self.x else ""
        when = f"in ≈ {figure(self.x)}{interval}{self.axis.more}"
        if self.rps:
            when += f" (≈ {duration(self.x / self.rps)} at the measured rate)"
        return f"{what} would reach {limit} {when}"


def reach(r: StairRead, limit_bytes: float, rps: float | None) -> Reach | None:
    """When `r` (climbing or slowing) would reach `limit_bytes`; None when it is not climbing
    or its curve never gets there."""
    if r.state not in ("climbing", "slowing") or r.forecaster is None:
        return None
    got = r.forecaster.reach(limit_bytes)
    if got is None:
        return None
    x, soonest, latest = got
    return Reach(limit_bytes, x, soonest, latest, rps, r.axis)


def _delta(change: float) -> str:
    text = f"{change / MIB:+.1f}"
    return "+0.0" if text == "-0.0" else text


@dataclass(frozen=True)
class GroupStairs:
    """A group's stair read, as compare shows it."""

    label: str
    lines: tuple[str, ...]
    reads: tuple[StairRead, ...] = ()


def limit_line(rss: StairRead | None, now_bytes: float, limit: float, rps: float | None) -> str:
    """When RSS (its read `rss`, `now_bytes` at the last point) would reach `limit`, or why it
    would not; `rps` turns requests into time (None: unknown, or x is time already)."""
    limit_words = f"the limit of {mib_figure(limit)} MiB"
    if now_bytes >= limit:
        return f"RSS is already past {limit_words}"
    if rss is None or rss.state not in ("climbing", "slowing"):
        return f"RSS is not climbing: no time to {limit_words}"
    got = reach(rss, limit, rps)
    if got is None:
        return f"RSS is slowing: its curve stays below {limit_words}"
    return got.words("RSS")


def _limit_line(reads: Sequence[StairRead], all_stairs: Sequence[Stairs], limit: float) -> str:
    rss = next((r for r in reads if r.quantity == "RSS"), None)
    now = statistics.median(s.steps[-1].rss_bytes for s in all_stairs)
    rates = [s.rps for s in all_stairs if s.rps]
    return limit_line(rss, now, limit, statistics.median(rates) if rates else None)


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
    if any(r.state == "few batches" for r in reads):
        lines.append("  " + FEW_BATCHES)
    limit = limit_of(runs, limit_bytes)
    if limit is not None:
        lines.append("  " + _limit_line(reads, all_stairs, limit))
    return GroupStairs(label, tuple(lines), tuple(reads))
