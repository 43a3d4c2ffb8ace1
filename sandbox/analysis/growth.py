"""Growth models for a run's batch ends, and the rule that chooses between them.

The data: per run, x = requests done at each batch's end (x = 0 at the end of the baseline) and
y = the quantity there (bytes). A watch of a process (`sandbox inspect --watch`) is one run whose
x is seconds since its first look, the first look in the baseline's place and the later looks
in the batch ends' (`read_axis` says which in words); nothing below depends on the unit.
Three curves, each a cause of growth:
- linear, y = a + b·x, fitted to the batch ends only (not the baseline: the first batch also
  holds the one-off growth of warm-up): a leak adds the same for every request;
- saturating, y = L - A·exp(-x/tau), fitted to the baseline and the batch ends: an approach to a
  level L, each batch adding a constant fraction exp(-batch/tau) of what the one before added (a
  cache filling up, fragmentation that settles); tau on a grid, L and A by least squares;
- sublinear, y = a + b·log(1 + x/x1), x1 the first batch's requests, fitted to the batch ends
  only (as the line): a creep that slows but never stops.
Only the saturating curve takes the baseline: the first batch's jump is part of an approach to
a level (fragmentation's first batch makes most of it), while a leak or a creep would read the
one-off warm-up as growth.

The choice (`choose`): each curve is judged by how well it predicts batch ends it was not fitted
on. Rolling origin: for every m from 2 to n - 1, each curve is fitted to the first m batch ends
(of every run) and predicts the later ones; its score is the root mean square of those errors.
The curve with the lowest score is chosen. A read needs at least 2 batch ends; with 2 there is
no held-out batch, so nothing is scored (`Choice.scored` is False: a weak read).

A group's runs are pooled: one curve through all their points, each run's own x.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

Model = Literal["linear", "saturating", "sublinear"]
MODELS: tuple[Model, ...] = ("linear", "saturating", "sublinear")
MIN_ENDS = 2
"""Batch ends a curve needs (the saturating one: 3 parameters, with the baseline)."""
TAU_STEPS = tuple(2.0 ** (k / 2) for k in range(-8, 17))
"""The saturating curve's tau, in first batches: 1/16 of one to 256 of them (256 batches: all
but a straight line over any run we make)."""
GOLDEN_STEPS = 24
"""Golden-section steps after the grid: the bracket shrinks to 1e-5 of a grid step."""

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Run:
    """One run's points: the baseline's end (x = 0) first, then its batch ends."""

    x: tuple[float, ...]
    """Requests done from the start of the run."""
    y: tuple[float, ...]
    """Bytes."""

    def first(self, m: int) -> Run:
        """The baseline and the first m batch ends."""
        return Run(self.x[: m + 1], self.y[: m + 1])

    @property
    def ends(self) -> int:
        return len(self.x) - 1


@dataclass(frozen=True)
class Curve:
    """A fitted curve; `at` evaluates it."""

    model: Model
    params: tuple[float, ...]
    """linear (a, b); saturating (L, A, tau); sublinear (a, b)."""
    unit: float
    """x1: the first batch's requests (the scale of tau and of the log)."""
    residual_bytes: float
    """Root mean square residual, over the points' degrees of freedom (0 when none are left)."""

    def at(self, x: Floats | float) -> Floats:
        """The curve's value (bytes) at x requests."""
        u = np.asarray(x, dtype=np.float64) / self.unit
        if self.model == "linear":
            a, b = self.params
            return a + b * u
        if self.model == "saturating":
            level, amount, tau = self.params
            return level - amount * np.exp(-u / tau)
        a, b = self.params
        return a + b * np.log1p(np.maximum(u, 0.0))

    def value(self, x: float) -> float:
        return float(self.at(x))

    @property
    def level_bytes(self) -> float | None:
        """Where a saturating curve levels off; None for the others."""
        return self.params[0] if self.model == "saturating" else None


def _points(runs: Sequence[Run], baseline: bool) -> tuple[Floats, Floats]:
    skip = 0 if baseline else 1
    x = [v for r in runs for v in r.x[skip:]]
    y = [v for r in runs for v in r.y[skip:]]
    return np.array(x, dtype=np.float64), np.array(y, dtype=np.float64)


def _least_squares(design: Floats, y: Floats) -> tuple[Floats, float]:
    """(coefficients, sum of squared residuals)."""
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ coef
    return np.asarray(coef, dtype=np.float64), float(residual @ residual)


def _rms(sse: float, points: int, params: int) -> float:
    return math.sqrt(sse / (points - params)) if points > params else 0.0


def unit_of(runs: Sequence[Run]) -> float:
    """x1: the median over the runs of the first batch's requests (at least 1)."""
    firsts = sorted(r.x[1] for r in runs if r.ends >= 1)
    return max(1.0, firsts[len(firsts) // 2]) if firsts else 1.0


def fit(runs: Sequence[Run], model: Model, unit: float) -> Curve | None:
    """`model` through the runs' points (least squares); None when they are too few."""
    if min((r.ends for r in runs), default=0) < MIN_ENDS:
        return None
    x, y = _points(runs, baseline=model == "saturating")
    u = x / unit
    ones = np.ones_like(u)
    if model == "linear":
        if np.ptp(u) <= 0:
            return None
        coef, sse = _least_squares(np.column_stack([ones, u]), y)
        return Curve(model, (float(coef[0]), float(coef[1])), unit, _rms(sse, len(y), 2))
    if model == "sublinear":
        coef, sse = _least_squares(np.column_stack([ones, np.log1p(u)]), y)
        return Curve(model, (float(coef[0]), float(coef[1])), unit, _rms(sse, len(y), 2))

    def at_tau(tau: float) -> tuple[Floats, float]:
        return _least_squares(np.column_stack([ones, -np.exp(-u / tau)]), y)

    tau = _best_tau(lambda t: at_tau(t)[1])
    coef, sse = at_tau(tau)
    return Curve(model, (float(coef[0]), float(coef[1]), tau), unit, _rms(sse, len(y), 3))


def _best_tau(sse: Callable[[float], float]) -> float:
    """The tau of least `sse`: the best of the grid TAU_STEPS, then a golden-section search in
    log tau between its neighbours on the grid."""
    grid = [sse(t) for t in TAU_STEPS]
    i = min(range(len(grid)), key=grid.__getitem__)
    low = math.log(TAU_STEPS[max(i - 1, 0)])
    high = math.log(TAU_STEPS[min(i + 1, len(TAU_STEPS) - 1)])
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(GOLDEN_STEPS):
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        if sse(math.exp(a)) <= sse(math.exp(b)):
            high = b
        else:
            low = a
    return math.exp((low + high) / 2)


@dataclass(frozen=True)
class Errors:
    """A curve's errors on the batch ends it was not fitted on (rolling origin)."""

    bytes: tuple[float, ...]
    """Actual - predicted."""
    ahead: tuple[float, ...]
    """Requests from the last fitted batch end to the predicted one."""
    origins: int
    """How many origins (m) the errors come from."""

    @property
    def score(self) -> float:
        """Root mean square error; inf without errors (a curve that could not be fitted)."""
        if not self.bytes:
            return math.inf
        return math.sqrt(sum(e * e for e in self.bytes) / len(self.bytes))


def held_out_errors(runs: Sequence[Run], model: Model, unit: float) -> Errors:
    """Fit `model` to each run's first m batch ends, m = 2 .. n - 1, and predict the rest."""
    n = min(r.ends for r in runs)
    errors: list[float] = []
    ahead: list[float] = []
    origins = 0
    for m in range(MIN_ENDS, n):
        curve = fit([r.first(m) for r in runs], model, unit)
        if curve is None:
            return Errors((), (), 0)
        origins += 1
        for r in runs:
            later = np.array(r.x[m + 1 : n + 1], dtype=np.float64)
            predicted = curve.at(later)
            errors += [float(v) for v in np.array(r.y[m + 1 : n + 1]) - predicted]
            ahead += [float(v) for v in later - r.x[m]]
    return Errors(tuple(errors), tuple(ahead), origins)


@dataclass(frozen=True)
class Choice:
    """Every curve fitted to all the points, its held-out errors, and the chosen one."""

    curves: dict[Model, Curve]
    errors: dict[Model, Errors]
    chosen: Model
    scored: bool
    """False with 2 batch ends: no held-out batch judged the curves (a weak read)."""

    @property
    def curve(self) -> Curve:
        return self.curves[self.chosen]

    def score(self, model: Model) -> float:
        return self.errors[model].score if model in self.errors else math.inf


def choose(runs: Sequence[Run]) -> Choice | None:
    """The curves through `runs` and the one that best predicts held-out batch ends (the module
    docstring's rule); with 2 batch ends, the linear one (nothing to judge by). None with fewer
    than 2 batch ends."""
    unit = unit_of(runs)
    curves = {m: c for m in MODELS if (c := fit(runs, m, unit)) is not None}
    if "linear" not in curves:
        return None
    errors = {m: held_out_errors(runs, m, unit) for m in curves}
    scored = any(e.origins for e in errors.values())
    if not scored:
        return Choice(curves, errors, "linear", False)
    chosen = min(curves, key=lambda m: (errors[m].score, MODELS.index(m)))
    return Choice(curves, errors, chosen, True)
