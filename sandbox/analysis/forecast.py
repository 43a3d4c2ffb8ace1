"""A forecast from the chosen growth curve, with a 90 % interval, and where it is going.

x is what the runs' points are on: requests in a run's read, seconds since the first look in a
watch's (`read_axis`); "requests" below stands for either.

The interval at x (`Forecaster.band`) has three parts, added as variances:
- the runs: the chosen curve refitted to BOOTSTRAP resamples of the runs (with replacement),
  its spread at x (0 with one run: then the interval is the other two parts alone);
- the batches: the curve's own errors on held-out batch ends (`growth.held_out_errors`; with one
  held-out batch, every curve's: below), each scaled from the distance it was predicted over to
  the distance to x: in proportion for a straight line (an error in the slope grows with the
  distance), by the square root for the log and saturating curves (what is left once growth has
  slowed or stopped wanders like a random walk: a settled heap still moves by a page here, a
  free list there);
- the noise: the curve's residual.
The half-width is Student's t (degrees of freedom: the fits behind the errors, one per curve and
rolling origin) times the square root of their sum. With no held-out batch there is no interval.

With one origin (3 batch ends) the batches' part pools every curve's error on the one held-out
batch, each scaled by its own curve's rule, instead of the chosen curve's error alone: that batch
chose the curve, so the chosen curve's error on it is the least of the curves' by construction,
and an interval sized by it alone is narrowest when the choice was luckiest (on the development
backtests' 3-batch reads of one run, the chosen curve's error was a median 0.07 of the other
curves' where the interval missed, 0.3-0.4 where it held). Three fits stand behind the pooled
errors, so t has 3 degrees of freedom. With more origins the chosen curve's score rests on
several batches, and its own errors size the interval.

Where it is going (`trend`): the curve's rise over as many requests again as the run made.
Climbing when it adds at least M, the larger of MATERIAL_BYTES and MATERIAL_SHARE of the level
("slowing" when the curve that climbs is not a straight line), falling when it loses as much,
else it levels off: a rise that small over as many requests again is within what a settling
heap still does (a few pages pinned, an arena's free lists filling) and would take the run's
length ten times over to grow the service by its own size. Another curve that predicted
held-out batches almost as well (score within TIE of the best) but goes elsewhere (levels off
where the best climbs, or the reverse) makes it "unsure". When the contenders agree, the one
with the fewest parameters is the one read (`simplest`): a saturating curve with a tau far beyond
the run predicts a straight line as well as the line does, and should not call it "slowing".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from sandbox.analysis import tdist
from sandbox.analysis.growth import MODELS, Choice, Curve, Model, Run, fit
from sandbox.units import MIB

CONFIDENCE = 0.90
BOOTSTRAP = 200
"""Resamples of the runs."""
TIE = 1.5
"""A curve whose held-out score is within this factor of the best's is a contender."""
MATERIAL_BYTES = 4 * MIB
"""The least rise over the horizon (as many requests again) that counts as climbing ..."""
MATERIAL_SHARE = 0.10
"""... or this share of the level, when that is larger."""
REACH_SPAN = 10_000
"""A limit is looked for up to this many times the run's requests."""

Trend = Literal["levels", "climbing", "slowing", "falling"]
SCALING: dict[Model, Callable[[float], float]] = {
    "linear": lambda ratio: ratio,
    "sublinear": math.sqrt,
    "saturating": math.sqrt,
}


@dataclass(frozen=True)
class Band:
    """A forecast at `x`: the curve's value and its interval (bytes)."""

    x: float
    mid: float
    low: float
    high: float


@dataclass(frozen=True)
class HeldOut:
    """One held-out error that sizes the interval."""

    bytes: float
    """Actual - predicted."""
    ahead: float
    """x it was predicted over (requests, or seconds for a watch)."""
    model: Model
    """The curve that made it: its rule scales it to the distance."""


def sizing_errors(choice: Choice) -> tuple[list[HeldOut], int]:
    """The held-out errors that size the interval, and the fits behind them (the degrees of
    freedom): the chosen curve's own; with one origin, every curve's (module docstring)."""
    chosen = choice.errors[choice.chosen]
    pooled = [m for m, e in choice.errors.items() if e.origins] if chosen.origins == 1 else []
    names = pooled or [choice.chosen]
    out = [
        HeldOut(e, ahead, m)
        for m in names
        for e, ahead in zip(choice.errors[m].bytes, choice.errors[m].ahead, strict=True)
    ]
    return out, sum(choice.errors[m].origins for m in names)


def last_x(runs: Sequence[Run]) -> float:
    """The median over the runs of x at their last batch end."""
    ends = sorted(r.x[-1] for r in runs)
    return ends[len(ends) // 2]


class Forecaster:
    """The chosen curve of `choice`, with the interval of the module docstring."""

    def __init__(self, runs: Sequence[Run], choice: Choice) -> None:
        self.choice = choice
        self.curve = choice.curve
        self.last = last_x(runs)
        self._errors, fits = sizing_errors(choice)
        self._t = tdist.ppf(0.5 + CONFIDENCE / 2, fits) if fits else None
        self._resampled = _bootstrap(runs, self.curve) if len(runs) > 1 else []

    @property
    def has_interval(self) -> bool:
        return self._t is not None

    def band(self, x: float) -> Band:
        """The forecast at `x`; low = high = mid without an interval."""
        mid = self.curve.value(x)
        if self._t is None:
            return Band(x, mid, mid, mid)
        half = self._t * math.sqrt(self._variance(x))
        return Band(x, mid, mid - half, mid + half)

    def _variance(self, x: float) -> float:
        spread = [c.value(x) for c in self._resampled]
        runs = float(np.var(spread)) if spread else 0.0
        distance = max(0.0, x - self.last)
        scaled = [
            (e.bytes * SCALING[e.model](distance / e.ahead)) ** 2
            for e in self._errors
            if e.ahead > 0
        ]
        batches = sum(scaled) / len(scaled) if scaled else 0.0
        return runs + batches + self.curve.residual_bytes**2

    def reach(self, limit_bytes: float) -> tuple[float, float, float | None] | None:
        """x from the last batch end until the curve reaches `limit_bytes`: (expected,
        soonest: the interval's top, latest: its bottom, None if it never does within
        REACH_SPAN runs); None when the curve itself does not reach it."""
        expected = _first_at(lambda x: self.curve.value(x) >= limit_bytes, self.last)
        if expected is None:
            return None
        soonest = _first_at(lambda x: self.band(x).high >= limit_bytes, self.last)
        latest = _first_at(lambda x: self.band(x).low >= limit_bytes, self.last)
        start = self.last
        return (
            expected - start,
            (soonest if soonest is not None else expected) - start,
            None if latest is None else latest - start,
        )


def _bootstrap(runs: Sequence[Run], curve: Curve) -> list[Curve]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(BOOTSTRAP):
        picked = [runs[int(i)] for i in rng.integers(0, len(runs), len(runs))]
        refit = fit(picked, curve.model, curve.unit)
        if refit is not None:
            out.append(refit)
    return out


def _first_at(reached: Callable[[float], bool], start: float) -> float | None:
    """The least x > start where `reached` holds (a geometric scan, then bisection)."""
    if reached(start):
        return start
    low, high = start, start
    while high < start * REACH_SPAN:
        low, high = high, high * 1.25
        if reached(high):
            for _ in range(40):
                mid = (low + high) / 2
                low, high = (low, mid) if reached(mid) else (mid, high)
            return high
    return None


def trend_of(curve: Curve, last: float) -> Trend:
    """Where `curve` goes over as many requests again as the run made (module docstring)."""
    now = curve.value(last)
    rise = curve.value(2 * last) - now
    material = max(MATERIAL_BYTES, MATERIAL_SHARE * abs(now))
    if rise >= material:
        return "climbing" if curve.model == "linear" else "slowing"
    if rise <= -material:
        return "falling"
    return "levels"


PARAMETERS: dict[Model, int] = {"linear": 2, "sublinear": 2, "saturating": 3}


def simplest(choice: Choice, names: Sequence[Model]) -> Choice:
    """`choice` with, among the contenders `names`, the one of fewest parameters chosen (the
    lower held-out score among equals)."""
    best = min(names, key=lambda m: (PARAMETERS[m], choice.score(m), MODELS.index(m)))
    return replace(choice, chosen=best)


def _goes(trend: Trend) -> str:
    return "up" if trend in ("climbing", "slowing") else trend


def contenders(choice: Choice) -> list[Model]:
    """The curves whose held-out score is within TIE of the chosen one's (the chosen first);
    with 2 batch ends (nothing scored), the straight line and the saturating curve."""
    best = choice.score(choice.chosen)
    others = [m for m in choice.curves if m != choice.chosen]
    if not choice.scored:
        # 2 batch ends: did the second add what the first did (a leak) or less (a level)?
        return [choice.chosen, *(m for m in others if m == "saturating")]
    return [choice.chosen, *(m for m in others if choice.score(m) <= TIE * best)]


def agreed_trend(choice: Choice, last: float) -> tuple[Trend | None, list[Model]]:
    """The chosen curve's trend, or None when a contender goes elsewhere; and the contenders."""
    names = contenders(choice)
    trends = {m: trend_of(choice.curves[m], last) for m in names}
    mine = trends[choice.chosen]
    if any(_goes(t) != _goes(mine) for t in trends.values()):
        return None, names
    return mine, names
