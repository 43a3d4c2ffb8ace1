"""The forecast's interval: it widens with the distance for a straight line and with the spread
between runs, there is none without a held-out batch, one held-out batch sizes it by every
curve's error on it; the trend's threshold; the reach."""

from __future__ import annotations

import random

import pytest

from sandbox.analysis import forecast, growth
from sandbox.analysis.growth import Run
from sandbox.units import MIB
from tests.unit.analysis.synthetic import PER_BATCH, run_of


def teller(runs: list[Run]) -> forecast.Forecaster:
    choice = growth.choose(runs)
    assert choice is not None
    return forecast.Forecaster(runs, choice)


def noisy_leak(seed: int, offset_mib: float = 0.0) -> Run:
    rng = random.Random(seed)
    return run_of([20.0 + offset_mib] + [5 + rng.gauss(0, 0.3) for _ in range(5)])


def test_the_interval_of_a_straight_line_widens_with_the_distance() -> None:
    t = teller([noisy_leak(1), noisy_leak(2)])
    assert t.curve.model == "linear"
    near, far = t.band(8 * PER_BATCH), t.band(30 * PER_BATCH)
    assert far.high - far.low > near.high - near.low > 0
    assert near.low < near.mid < near.high


def test_runs_that_differ_widen_the_interval() -> None:
    alike = teller([noisy_leak(1), noisy_leak(2)])
    apart = teller([noisy_leak(1), noisy_leak(2, offset_mib=30.0)])
    x = 12 * PER_BATCH
    assert apart.band(x).high - apart.band(x).low > alike.band(x).high - alike.band(x).low


def test_without_a_held_out_batch_there_is_no_interval() -> None:
    t = teller([run_of([15.9, 0.0])])
    band = t.band(4 * PER_BATCH)
    assert band.low == band.mid == band.high
    assert not t.has_interval


def test_one_held_out_batch_sizes_the_interval_by_every_curves_error_on_it() -> None:
    # The third batch adds what the second did: the line predicted it exactly and was chosen by
    # it (its residual is 0 too: alone, its error gave no interval); the log and the saturating
    # curves predicted less (+3.5 and +2.5 MiB).
    run = run_of([10.0, 5.0, 5.0])
    t = teller([run])
    assert t.curve.model == "linear"
    errors, fits = forecast.sizing_errors(t.choice)
    assert sorted(e.model for e in errors) == sorted(growth.MODELS)
    assert fits == 3
    rivals = min(abs(e.bytes) for e in errors if e.model != "linear")
    assert rivals > MIB
    band = t.band(2 * run.x[-1])
    assert band.high - band.mid > rivals


def test_with_more_origins_the_chosen_curves_own_errors_size_the_interval() -> None:
    t = teller([noisy_leak(1)])  # 6 batch ends: origins 2 to 5
    errors, fits = forecast.sizing_errors(t.choice)
    assert {e.model for e in errors} == {t.curve.model}
    assert len(errors) == 4 + 3 + 2 + 1
    assert fits == 4


def test_the_trend_counts_a_rise_against_the_larger_of_4_mib_and_a_tenth_of_the_level() -> None:
    def trend(per_batch: float, base: float) -> forecast.Trend:
        run = run_of([per_batch] * 6, base_mib=base)
        curve = growth.fit([run], "linear", PER_BATCH)
        assert curve is not None
        return forecast.trend_of(curve, run.x[-1])

    # 6 more batches: 6 x per batch against max(4 MiB, 10 % of the level)
    assert trend(1.0, 0.0) == "climbing"  # +6 MiB on 6 MiB
    assert trend(0.5, 0.0) == "levels"  # +3 MiB: under 4
    assert trend(1.0, 100.0) == "levels"  # +6 MiB on 106 MiB: under 10.6
    assert trend(-1.0, 0.0) == "falling"


def test_a_curve_that_levels_below_the_limit_never_reaches_it() -> None:
    settling = teller([run_of([40 * 0.5**k for k in range(6)])])
    assert settling.curve.model == "saturating"
    assert settling.reach(200 * MIB) is None
    leak = teller([noisy_leak(3), noisy_leak(4)])
    got = leak.reach(1024 * MIB)
    assert got is not None
    expected, soonest, latest = got
    assert latest is not None and soonest <= expected <= latest
    assert leak.curve.value(leak.last + expected) == pytest.approx(1024 * MIB, rel=1e-6)


def test_the_interval_of_a_settled_level_widens_by_the_square_root_of_the_distance() -> None:
    rng = random.Random(6)
    t = teller([run_of([40 * 0.4**k + rng.gauss(0, 0.5) for k in range(8)])])
    assert t.curve.model == "saturating"
    near, far = t.band(9 * PER_BATCH), t.band(40 * PER_BATCH)
    assert far.high - far.low > near.high - near.low > 0
