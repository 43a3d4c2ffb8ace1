"""The watch's series: which figures each quantity takes from a look, which looks are read, and
the limit's words where the runs' would mislead."""

from __future__ import annotations

from dataclasses import replace

from sandbox.analysis.forecast import Band
from sandbox.analysis.read_axis import SECONDS
from sandbox.analysis.stair_read import StairRead, State
from sandbox.inspector import watch_read
from sandbox.inspector.pymalloc import Pymalloc
from sandbox.inspector.snapshot import PythonCounters, Snapshot
from sandbox.units import MIB
from tests.unit.inspector.test_watch import look


def with_pymalloc(s: Snapshot, arena_mib: int, used_mib: int) -> Snapshot:
    py = Pymalloc(arena_mib, arena_mib * MIB, used_mib * MIB, 0)
    return replace(s, python=PythonCounters("3.11.7", 10, py))


def test_live_and_kept_take_pymalloc_only_when_every_look_read_it() -> None:
    looks = [with_pymalloc(look(100, 40, 50), 8, 5), with_pymalloc(look(120, 45, 60), 10, 6)]
    live = watch_read.series([0.0, 5.0], looks, "live")
    kept = watch_read.series([0.0, 5.0], looks, "kept-but-free")
    assert live is not None and kept is not None
    assert live.y == ((40 + 5) * MIB, (45 + 6) * MIB)  # in use + pymalloc's objects
    assert kept.y == ((10 + 3) * MIB, (15 + 4) * MIB)  # held - in use + arenas - objects
    mixed = [looks[0], look(120, 45, 60)]
    live = watch_read.series([0.0, 5.0], mixed, "live")
    assert live is not None and live.y == (40 * MIB, 45 * MIB)  # malloc's alone


def test_a_quantity_is_read_only_when_every_look_measured_it() -> None:
    looks = [look(100, 40, 50), look(110, None, 55), look(120, 45, 60)]
    reads = watch_read.reads([0.0, 5.0, 10.0], looks)
    assert [r.quantity for r in reads] == ["RSS"]
    assert watch_read.reads([0.0], looks[:1]) == ()


def test_x_is_seconds_since_the_first_look() -> None:
    rss = watch_read.series([3.0, 8.0, 13.5], [look(100, 1, 2)] * 3, "RSS")
    assert rss is not None and rss.x == (0.0, 5.0, 10.5)


def test_a_long_watch_is_read_at_looks_spread_over_it() -> None:
    assert watch_read.spread(5, 3) == [0, 2, 4]
    assert watch_read.spread(10) == list(range(10))
    picked = watch_read.spread(720)
    assert len(picked) == watch_read.MAX_READ and (picked[0], picked[-1]) == (0, 719)
    times = [float(t) for t in range(0, 1000, 5)]  # 200 looks
    reads = watch_read.reads(times, [look(100 + i, 1, 2) for i in range(200)])
    assert reads[0].axis.point_count(reads[0].batches) == watch_read.MAX_READ
    lines = watch_read.lines(reads, times, [look(100, 1, 2)] * 200, None)
    assert lines[0] == (
        "the growth read over 200 looks in 17 min, read at 100 of them (x: seconds since the "
        "first):"
    )


def rss_read(state: State, band: Band | None) -> StairRead:
    return StairRead("RSS", state, 4, 1, 0.0, band=band, axis=SECONDS)


def test_the_limit_when_the_read_cannot_tell() -> None:
    looks = [look(100, 1, 2), look(100, 1, 2)]
    band = Band(20.0, 200 * MIB, 150 * MIB, 250 * MIB)
    limit = 1024 * MIB
    assert watch_read.limit_words([rss_read("few looks", None)], looks, limit) == (
        "too few looks to tell when RSS would reach the limit of 1024 MiB"
    )
    assert watch_read.limit_words([rss_read("unsure", band)], looks, limit) == (
        "RSS may level off or climb: no time to the limit of 1024 MiB"
    )
    assert watch_read.limit_words([rss_read("unsure", band)], looks, 50 * MIB) == (
        "RSS is already past the limit of 50 MiB"
    )
    assert watch_read.limit_dict([rss_read("unsure", band)], looks, limit)["reach"] is None
