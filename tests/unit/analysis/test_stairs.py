"""The stair read on synthetic series with known answers: flat, linear, levelling, noisy; the
window, the time to a limit, and the steps read from a run's phases and probes."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import replace

import pytest

from sandbox.analysis import stairs
from sandbox.analysis.stairs import Stairs, Step
from sandbox.results.model import Columns, Phase
from sandbox.units import MIB
from tests.fakes import make_result

PER_BATCH = 1000
"""Requests each synthetic batch sends."""


def series(values: Sequence[float], start: float | None = None, rps: float = 100.0) -> Stairs:
    """A run whose RSS, live and kept-but-free all follow `values` (bytes) at batch ends."""

    def step(i: int, v: float) -> Step:
        return Step(i, i * PER_BATCH, v, v, v, None)

    first = values[0] if start is None else start
    return Stairs(step(0, first), tuple(step(i + 1, v) for i, v in enumerate(values)), rps)


def mib(f: Callable[[int], float], n: int) -> list[float]:
    return [f(k) * MIB for k in range(1, n + 1)]


def test_a_flat_series_levels_off_at_its_value() -> None:
    r = stairs.read([series(mib(lambda k: 100.0, 6))], "RSS")
    assert r is not None and r.slope is not None
    assert r.state == "levels"
    assert r.level_bytes == 100 * MIB
    assert r.slope.per_1000_bytes == 0 and r.slope.low == 0 and r.slope.high == 0
    assert r.answer() == (
        "RSS: levels off at ≈ 100 MiB (slope 0.00 [0.00, 0.00] MiB per 1,000 requests)"
    )


def test_a_linear_series_is_still_climbing_at_its_slope() -> None:
    r = stairs.read([series(mib(lambda k: 50.0 + 3.0 * k, 6))], "live")
    assert r is not None and r.slope is not None
    assert r.state == "climbing"
    assert r.slope.per_1000_bytes == pytest.approx(3 * MIB)
    assert r.answer() == "live: still climbing 3.00 [3.00, 3.00] MiB per 1,000 requests"


@pytest.mark.parametrize(
    ("per_1000", "low", "high", "shown"),
    [
        (186.47, 157.70, 215.25, "186 [158, 215]"),  # half-width 29: no decimals
        (14.26, 9.34, 19.19, "14.3 [9.3, 19.2]"),  # half-width 4.9: one
        (0.05, -0.37, 0.47, "0.05 [-0.37, 0.47]"),  # half-width 0.42: two
        (30.87, -3911.97, 3973.72, "31 [-3912, 3974]"),
        (-0.001, -0.004, 0.002, "0.00 [0.00, 0.00]"),  # never a "-0.00"
        (5.0, -math.inf, math.inf, "5.00 [-inf, inf]"),
    ],
)
def test_a_slope_is_shown_to_the_precision_its_interval_supports(
    per_1000: float, low: float, high: float, shown: str
) -> None:
    slope = stairs.Slope(per_1000 * MIB, low * MIB, high * MIB, 6)
    read = stairs.StairRead("RSS", "unsure", slope, 100 * MIB, 4 * MIB, 2000.0, 50 * MIB)
    assert f"(slope {shown} MiB per 1,000 requests)" in read.answer()


def test_a_series_that_levels_like_a_cache_levels_off_over_the_last_batches() -> None:
    # 1 - e^-k: most of it in the first batches, then flat within a fraction of a MiB.
    values = mib(lambda k: 40.0 + 60.0 * (1 - math.exp(-1.5 * k)), 10)
    r = stairs.read([series(values, start=40 * MIB)], "live")
    assert r is not None
    assert r.state == "levels"
    assert r.level_bytes / MIB == pytest.approx(100, abs=0.5)
    assert r.rise_bytes / MIB == pytest.approx(60, abs=0.5)
    assert stairs.window(10) == 5  # batches 6-10: the warm-up is left out


def test_noise_around_a_level_levels_off_and_around_a_slope_climbs() -> None:
    rng = random.Random(3)
    flat = [series(mib(lambda k: 200.0 + rng.gauss(0, 0.3), 8)) for _ in range(3)]
    r = stairs.read(flat, "RSS")
    assert r is not None and r.slope is not None
    assert r.state == "levels"
    assert r.slope.low < 0 < r.slope.high
    assert r.slope.points == 3 * stairs.window(8)  # the runs' windows are pooled
    climbing = [series(mib(lambda k: 100.0 + 4 * k + rng.gauss(0, 0.5), 8)) for _ in range(3)]
    c = stairs.read(climbing, "RSS")
    assert c is not None and c.slope is not None
    assert c.state == "climbing"
    assert c.slope.low < 4 * MIB < c.slope.high


def test_too_much_noise_cannot_tell() -> None:
    values = [100, 130, 90, 135, 95, 140]
    r = stairs.read([series([v * MIB for v in values])], "RSS")
    assert r is not None and r.state == "unsure"
    assert r.answer().startswith("RSS: cannot tell whether it levels off (slope ")


def test_one_or_two_batches_give_no_interval_and_say_why() -> None:
    for n in (1, 2):
        r = stairs.read([series(mib(lambda k: 10.0 * k, n), start=0.0)], "live")
        assert r is not None and r.slope is None and r.state == "few batches"
        assert r.answer() == f"live: +{10 * n}.0 MiB over the batches (no slope)"
    assert stairs.FEW_BATCHES == (
        "fewer than 3 batches: whether memory levels off cannot be told (a leak and a cache look "
        "alike); run 3 or more (--batches)"
    )


def test_an_unmeasured_quantity_has_no_read() -> None:
    s = series(mib(lambda k: 1.0, 4))
    blank = replace(s, steps=tuple(replace(x, live_bytes=None) for x in s.steps))
    assert stairs.read([blank], "live") is None
    assert stairs.read([blank], "RSS") is not None


def test_the_window() -> None:
    assert [stairs.window(n) for n in (3, 4, 5, 6, 8, 10, 11)] == [3, 4, 4, 4, 4, 5, 6]


def test_fit_interval_is_the_t_interval() -> None:
    points = [(0.0, 0.0), (1.0, 1.0), (2.0, 3.0)]
    slope = stairs.fit(points)
    assert slope is not None
    assert slope.per_1000_bytes == pytest.approx(1.5)
    # residuals 1/6, -1/3, 1/6: s^2 = 1/6, sxx = 2, t(0.975, 1) = 12.706
    half = 12.7062 * math.sqrt(1 / 6 / 2)
    assert slope.low == pytest.approx(1.5 - half, 1e-4)
    assert slope.high == pytest.approx(1.5 + half, 1e-4)
    assert stairs.fit(points[:2]) is None
    assert stairs.fit([(1.0, 0.0)] * 3) is None


def test_when_a_climbing_series_reaches_a_limit() -> None:
    s = series(mib(lambda k: 100.0 + 2.0 * k, 5), rps=50.0)
    r = stairs.read([s], "RSS")
    assert r is not None
    got = stairs.reach(r, 110 * MIB, 1024 * MIB, s.rps)
    assert got is not None
    assert got.requests == pytest.approx(914 / 2 * 1000)
    assert got.seconds == pytest.approx(914 / 2 * 1000 / 50)
    assert got.words("RSS") == (
        "RSS would reach 1024 MiB in ≈ 457,000 requests (from 457,000 at the fastest rate the "
        "interval allows), ≈ 2.5 h at the measured rate"
    )
    flat = stairs.read([series(mib(lambda k: 100.0, 5))], "RSS")
    assert flat is not None and stairs.reach(flat, 100 * MIB, 1024 * MIB, 50.0) is None


def test_steps_are_read_at_each_batch_end_from_samples_and_probes() -> None:
    run = make_result("glibc")
    batches = [p for p in run.phases if p.name.startswith("batch-")]
    t = [0.0, *(p.end_s for p in batches), batches[-1].end_s + 1]
    probes: Columns = {
        "t_s": t,
        "alloc_in_use_bytes": [10 * MIB, 11 * MIB, 12 * MIB, 13 * MIB, 13 * MIB],
        "alloc_held_bytes": [12 * MIB, 20 * MIB, 22 * MIB, 24 * MIB, 24 * MIB],
        "pymalloc_used_bytes": [5 * MIB, 6 * MIB, 7 * MIB, 8 * MIB, 8 * MIB],
        "pymalloc_free_bytes": [1 * MIB] * 5,
    }
    s = stairs.stairs(replace(run, probes=probes))
    assert s is not None
    assert [x.batch for x in s.steps] == [1, 2, 3]
    assert [x.requests for x in s.steps] == list(
        itertools.accumulate(b.requests for b in run.load.stats)
    )
    assert s.start.live_bytes == 15 * MIB and s.start.kept_free_bytes == 3 * MIB
    assert [x.live_bytes for x in s.steps] == [17 * MIB, 19 * MIB, 21 * MIB]
    assert [x.kept_free_bytes for x in s.steps] == [10 * MIB, 11 * MIB, 12 * MIB]
    lines = stairs.steps_table(s)
    assert lines[1].endswith("live +2.0, kept-but-free +1.0 MiB")


def test_a_run_without_batches_or_baseline_has_no_stairs() -> None:
    run = make_result("glibc")
    assert stairs.stairs(replace(run, phases=[Phase("idle", 0.0, 5.0)])) is None


def test_a_slow_sure_climb_on_a_high_level_is_climbing_not_level() -> None:
    # +1.5 MiB a batch on ~500 MiB: under 10 % of the level over the window, but surely above 0
    # and over 4 MiB across it: a slow leak, not a level.
    r = stairs.read([series(mib(lambda k: 500.0 + 1.5 * k, 8))], "RSS")
    assert r is not None and r.state == "climbing"
    # The default workload after its first batch: flat within noise on a high level: levels.
    rng = random.Random(5)
    flat = stairs.read([series(mib(lambda k: 93.0 + rng.uniform(-1.0, 1.0), 10))], "RSS")
    assert flat is not None and flat.state == "levels"
