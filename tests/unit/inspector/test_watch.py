"""The watch loop's timing, its growth figures and its verdict, with a fake clock and looks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sandbox.errors import TargetExitedError
from sandbox.inspector import smaps
from sandbox.inspector.detection import Detection
from sandbox.inspector.pymalloc import Pymalloc
from sandbox.inspector.snapshot import Counters, PythonCounters, Snapshot
from sandbox.inspector.watch import Sample, Watch, growth, plan, watch
from sandbox.units import MIB

DATA = Path(__file__).resolve().parents[2] / "data"
MEMORY = smaps.summarise(smaps.parse((DATA / "smaps_small.txt").read_text()))


def look(rss_mib: int, in_use_mib: int | None, held_mib: int | None, **kw: Any) -> Snapshot:
    counters = None
    if held_mib is not None:
        in_use = None if in_use_mib is None else in_use_mib * MIB
        counters = Counters("glibc", in_use, held_mib * MIB)
    return Snapshot(
        pid=9,
        command="python app.py",
        taken_at="2026-01-01T00:00:00.000Z",
        allocator="glibc",
        detection=Detection("glibc", None, (), None, True),
        memory=replace(MEMORY, rss_bytes=rss_mib * MIB),
        counters=counters,
        **kw,
    )


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_plan() -> None:
    assert plan(10, 5) == [0.0, 5.0, 10.0]
    assert plan(12, 5) == [0.0, 5.0, 10.0, 12.0]
    assert plan(3, 5) == [0.0, 3.0]
    with pytest.raises(ValueError):
        plan(10, 0)


def test_watch_looks_at_the_planned_times_and_gives_a_verdict() -> None:
    fake = FakeTime()
    looks = iter(
        [
            look(100, 50, 60, stopped_ms=40.0),
            look(120, 52, 80, stopped_ms=70.0),
            look(150, 55, 110, stopped_ms=60.0),
        ]
    )
    seen: list[Sample] = []

    def take(pid: int, attach: bool = True) -> Snapshot:
        assert (pid, attach) == (9, True)
        fake.now += 0.1  # each look takes 100 ms
        return next(looks)

    result = watch(9, 10, 5, on_sample=seen.append, take=take, clock=fake.clock, sleep=fake.sleep)
    assert [round(s.t_s, 6) for s in result.samples] == [0.0, 5.0, 10.0]
    assert fake.sleeps == pytest.approx([4.9, 4.9])
    assert seen == list(result.samples)
    g = result.growth
    assert g is not None
    assert (g.rss_bytes, g.in_use_bytes, g.held_bytes) == (50 * MIB, 5 * MIB, 50 * MIB)
    assert result.verdict == (
        "pid 9 (glibc): RSS grew 50 MiB in 10 s; live allocations grew 5 MiB; free memory glibc "
        "keeps grew 45 MiB -> mostly free memory held by the allocator: fragmentation / "
        "unreturned pages"
    )
    assert result.stopped_ms() == {"median": 60.0, "max": 70.0, "n": 3}


def test_ctrl_c_between_looks_ends_the_watch_early() -> None:
    fake = FakeTime()
    calls = 0

    def sleep(seconds: float) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt
        fake.sleep(seconds)

    result = watch(
        9, 60, 5, take=lambda pid, attach: look(100, 1, 2), clock=fake.clock, sleep=sleep
    )
    assert (len(result.samples), result.interrupted) == (2, True)
    assert result.to_dict()["interrupted"] is True


def test_the_process_exiting_during_the_watch() -> None:
    fake = FakeTime()
    looks = 0

    def take(pid: int, attach: bool = True) -> Snapshot:
        nonlocal looks
        looks += 1
        if looks == 3:
            raise TargetExitedError("no process with PID 9")
        return look(100, 1, 2)

    with pytest.raises(TargetExitedError) as info:
        watch(9, 60, 5, take=take, clock=fake.clock, sleep=fake.sleep)
    assert str(info.value) == "process 9 exited during the watch, after 2 looks"


def test_the_process_missing_from_the_start() -> None:
    def take(pid: int, attach: bool = True) -> Snapshot:
        raise TargetExitedError("no process with PID 9")

    with pytest.raises(TargetExitedError, match=r"^no process with PID 9$"):
        watch(9, 60, 5, take=take, clock=FakeTime().clock, sleep=FakeTime().sleep)


def test_growth_without_counters_or_with_pymalloc() -> None:
    g = growth(Sample(0.0, look(100, None, None)), Sample(30.0, look(160, None, None)))
    assert (g.duration_s, g.rss_bytes, g.in_use_bytes, g.held_bytes) == (30.0, 60 * MIB, None, None)
    arenas = [PythonCounters("3.11.7", 10, Pymalloc(n, n * MIB, 0, 0)) for n in (3, 83)]
    g = growth(
        Sample(0.0, look(100, 1, 2, python=arenas[0])),
        Sample(30.0, look(190, 2, 3, python=arenas[1])),
    )
    assert g.pymalloc_bytes == 80 * MIB


def test_to_dict_and_a_single_look() -> None:
    one = Watch(9, 5.0, (Sample(0.0, look(100, 1, 2)),))
    data = one.to_dict()
    assert data["format"] == "sandbox-inspect-watch" and data["version"] == 1
    assert (data["growth"], data["duration_s"], data["stopped_ms"]) == (None, 0.0, None)
    assert data["verdict"] == "pid 9: one look only, nothing to compare"
    assert data["samples"][0]["snapshot"]["format"] == "sandbox-inspect"
    assert list(data) == [
        "format",
        "version",
        "pid",
        "duration_s",
        "interval_s",
        "interrupted",
        "samples",
        "growth",
        "verdict",
        "stopped_ms",
    ]
