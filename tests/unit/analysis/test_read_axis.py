"""The growth read's words on each axis: a run's requests, a watch's seconds; the same points
read on the requests axis give what the stair read gives."""

from __future__ import annotations

import pytest

from sandbox.analysis import stair_read
from sandbox.analysis.growth import Run
from sandbox.analysis.read_axis import REQUESTS, SECONDS, count, duration
from sandbox.analysis.stair_read import runs_of
from sandbox.units import MIB
from tests.unit.analysis.synthetic import stairs_of


def test_amounts_on_each_axis() -> None:
    assert (count(56), count(16_000), count(456_789)) == ("56", "16,000", "460,000")
    assert [duration(s) for s in (45, 1500, 9000, 259200)] == [
        "45 s",
        "25 min",
        "2.5 h",
        "3.0 days",
    ]
    assert REQUESTS.after(16_000) == "after 16,000 requests"
    assert SECONDS.after(120) == "2 min after the first look"
    assert (REQUESTS.at(16_000), SECONDS.at(20)) == ("16,000 req", "20 s")
    assert (REQUESTS.figure(456_789), REQUESTS.more) == ("460,000", " more requests")
    assert (SECONDS.figure(1500), SECONDS.more) == ("25 min", "")
    assert (REQUESTS.point_count(3), SECONDS.point_count(3)) == (3, 4)


def test_the_requests_axis_reads_as_the_stair_read() -> None:
    for added in ([9.0] * 6, [143.3, 26.4, 7.0], [12.6, 3.3], [10.0]):
        all_stairs = [stairs_of(added), stairs_of([a * 1.1 for a in added])]
        for quantity in ("RSS", "live"):
            before = stair_read.read(all_stairs, quantity)
            again = stair_read.read_runs(runs_of(all_stairs, quantity), quantity)
            assert before is not None and again.to_dict() == before.to_dict()
            assert again.answer() == before.answer() and again.short() == before.short()


def minute_leak(looks: int) -> Run:
    """A look every 10 s, 1 MiB more each (6 MiB a minute), from 40 MiB."""
    return Run(tuple(10.0 * i for i in range(looks)), tuple((40.0 + i) * MIB for i in range(looks)))


def test_the_seconds_axis_speaks_in_time() -> None:
    r = stair_read.read_runs([minute_leak(13)], "RSS", SECONDS)
    assert (r.state, r.per_1000_bytes) == ("climbing", None)
    assert r.rate_bytes is not None and r.rate_bytes / MIB == pytest.approx(6.0)
    assert r.answer() == (
        "RSS: still climbing, 6.0 MiB per minute: ≈ 64 [64, 64] MiB 4 min after the first look "
        "(straight line)"
    )
    assert r.short() == "RSS still climbing: ≈ 64 [64, 64] MiB at 4 min"
    d = r.to_dict()
    assert (d["looks"], d["forecast"]["t_s"], d["per_minute_bytes"]) == (13, 240.0, r.rate_bytes)
    assert "batches" not in d and "per_1000_bytes" not in d and "requests" not in d["forecast"]
    got = stair_read.reach(r, 100 * MIB, None)
    assert got is not None and got.x == pytest.approx(480)  # 48 MiB more at 0.1 MiB a second
    assert got.words("RSS") == "RSS would reach 100 MiB in ≈ 8 min"


def test_too_few_looks_on_the_seconds_axis() -> None:
    r = stair_read.read_runs([minute_leak(2)], "RSS", SECONDS)
    assert (r.state, r.band) == ("few looks", None)
    assert r.answer() == "RSS: +1.0 MiB over the looks (no read)"
    assert r.short() == "RSS: too few looks to tell"
    weak = stair_read.read_runs([minute_leak(3)], "RSS", SECONDS)
    assert weak.answer().endswith("(straight line; weak: 3 looks, no interval)")
