"""The stair read on synthetic series with known answers: a leak climbs, a cache or settling
fragmentation levels off at the right level, a creep climbs and slows, two batches give a weak
read; the forecast's interval, the time to a limit, and the figures for the JSON."""

from __future__ import annotations

import math
import random

import pytest

from sandbox.analysis import forecast, stair_read
from sandbox.analysis.stairs import Stairs
from sandbox.units import MIB
from tests.unit.analysis.synthetic import PER_BATCH, stairs_of


def rss(runs: list[Stairs], quantity: str = "RSS") -> stair_read.StairRead:
    r = stair_read.read(runs, quantity)
    assert r is not None
    return r


def test_a_noisy_leak_is_still_climbing_at_its_rate() -> None:
    rng = random.Random(3)
    runs = [stairs_of([20.0] + [6 + rng.gauss(0, 0.5) for _ in range(7)]) for _ in range(3)]
    r = rss(runs)
    assert (r.state, r.model) == ("climbing", "linear")
    assert r.per_1000_bytes is not None
    assert r.per_1000_bytes / MIB == pytest.approx(6, abs=0.5)
    assert r.band is not None and r.band.x == 2 * 8 * PER_BATCH
    truth = (40 + 20 + 6 * 15) * MIB  # 8 more batches of 6 MiB
    assert r.band.low < truth < r.band.high
    assert r.answer().startswith("RSS: still climbing, ")
    assert r.answer().endswith(" MiB after 16,000 requests (straight line)")


def test_shrinking_batches_level_off_at_the_level_they_approach() -> None:
    # Each batch adds a fifth of the one before: +143.3, +28.7, +5.7, ... -> 143.3 / 0.8.
    added = [143.3 * 0.2**k for k in range(6)]
    r = rss([stairs_of(added, base_mib=30.0)])
    assert (r.state, r.model) == ("levels", "saturating")
    level = 30 + 143.3 / (1 - 0.2)
    assert r.level_bytes is not None and r.level_bytes / MIB == pytest.approx(level, abs=1)
    assert r.band is not None and r.band.low <= level * MIB <= r.band.high
    assert r.answer().startswith(f"RSS: levels off at ≈ {round(level)} [")


def test_the_glibc_demo_levels_off_from_three_batches_weakly() -> None:
    r = rss([stairs_of([143.3, 26.4, 7.0], base_mib=30.0)])
    assert (r.state, r.model, r.weak) == ("levels", "saturating", True)
    assert r.answer().endswith("(saturating curve; weak: 3 batches)")
    assert stair_read.reach(r, 2048 * MIB, 100.0) is None  # no OOM for a plateau


def test_three_batches_on_a_line_still_have_an_interval() -> None:
    # The line predicted the third batch exactly; the other curves' errors on it size the interval.
    r = rss([stairs_of([10.0, 5.0, 5.0])])
    assert (r.state, r.model, r.weak) == ("climbing", "linear", True)
    assert r.scores["linear"] < MIB / 1000
    rivals = min(r.scores["sublinear"], r.scores["saturating"])
    assert r.band is not None and r.band.high - r.band.mid > rivals > MIB
    assert r.answer().endswith(" MiB after 6,000 requests (straight line; weak: 3 batches)")


def test_a_cache_that_stopped_growing_levels_off() -> None:
    r = rss([stairs_of([12.6, 3.3, 0.0, 0.0])], "live")
    assert r.state == "levels"
    assert r.band is not None and r.band.mid / MIB == pytest.approx(40 + 15.9, abs=0.5)


def test_a_log_creep_climbs_and_slows() -> None:
    r = rss([stairs_of([30 * (math.log1p(k) - math.log1p(k - 1)) for k in range(1, 12)])])
    assert (r.state, r.model) == ("slowing", "sublinear")
    assert r.answer().startswith("RSS: climbing, slowing: ≈ ")


def test_two_batches_whose_second_adds_nothing_level_off_weakly_without_an_interval() -> None:
    r = rss([stairs_of([15.9, 0.0])], "live")
    assert (r.state, r.weak, r.has_interval) == ("levels", True, False)
    assert (
        r.answer() == "live: levels off at ≈ 56 MiB (straight line; weak: 2 batches, no interval)"
    )


def test_two_batches_that_shrink_cannot_tell_a_leak_from_a_level() -> None:
    r = rss([stairs_of([12.6, 3.3])], "live")
    assert r.state == "unsure"
    assert r.contenders == ("linear", "saturating")
    assert r.answer().startswith("live: cannot tell whether it levels off (straight line ≈ ")


def test_one_batch_gives_no_read_and_says_why() -> None:
    r = rss([stairs_of([10.0])], "live")
    assert r.state == "few batches" and r.band is None
    assert r.answer() == "live: +10.0 MiB over the batches (no read)"
    assert stair_read.FEW_BATCHES == (
        "fewer than 2 batches: whether memory levels off cannot be told (a leak and a cache look "
        "alike); run 4 or more (--batches)"
    )


def test_noise_around_a_level_levels_off_at_it() -> None:
    rng = random.Random(5)
    runs = [
        stairs_of([27.6] + [rng.gauss(0, 0.7) for _ in range(9)], base_mib=60) for _ in range(3)
    ]
    r = rss(runs)
    assert r.state == "levels"
    assert r.band is not None and r.band.low < (60 + 27.6) * MIB < r.band.high


def test_a_climb_is_material_against_the_level_it_climbs_on() -> None:
    # 8 batches on ~500 MiB; over 8 more, a straight line adds 8 x per batch: climbing when that
    # is at least 10 % of the level, else it levels off.
    def read_at(per_batch: float) -> stair_read.StairRead:
        return rss([stairs_of([500.0] + [per_batch] * 7, base_mib=0.0)])

    share = forecast.MATERIAL_SHARE
    assert share * (500 + 7 * 12.0) < 8 * 12.0
    assert read_at(12.0).state == "climbing"
    assert share * (500 + 7 * 4.0) > 8 * 4.0
    assert read_at(4.0).state == "levels"


def test_an_unmeasured_quantity_has_no_read() -> None:
    from dataclasses import replace

    s = stairs_of([1.0] * 4)
    blank = replace(s, steps=tuple(replace(x, live_bytes=None) for x in s.steps))
    assert stair_read.read([blank], "live") is None
    assert stair_read.read([blank], "RSS") is not None


def test_when_a_climbing_series_reaches_a_limit() -> None:
    s = stairs_of([2.0] * 6, base_mib=100.0, rps=50.0)
    r = rss([s])
    got = stair_read.reach(r, 1024 * MIB, s.rps)
    assert got is not None
    # 112 MiB now, 2 MiB per 1,000 requests: 456,000 more requests
    assert got.x == pytest.approx(456_000, rel=1e-3)
    assert got.words("RSS") == (
        "RSS would reach 1024 MiB in ≈ 460,000 more requests (≈ 2.5 h at the measured rate)"
    )
    flat = rss([stairs_of([0.0] * 5)])
    assert stair_read.reach(flat, 1024 * MIB, 50.0) is None


def test_the_figures_behind_the_words_go_into_the_json() -> None:
    r = rss([stairs_of([9.0] * 6)])
    d = r.to_dict()
    assert d["state"] == "climbing" and d["model"] == "linear" and d["weak"] is False
    assert d["forecast"]["requests"] == 12 * PER_BATCH
    assert d["forecast"]["low_bytes"] <= d["forecast"]["bytes"] <= d["forecast"]["high_bytes"]
    assert set(d["held_out_rms_bytes"]) == {"linear", "saturating", "sublinear"}
    assert d["interval"] == forecast.CONFIDENCE
