"""The watch loop's timing, its growth figures and its verdict, with a fake clock and looks."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
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
    # 3 looks: a weak read, no interval; the straight line through the last two looks at
    # 20 s (twice the watch): RSS 120 -> 150 gives 210, kept-but-free 28 -> 55 gives 109; live
    # (50, 52, 55) is read as a line by one curve and a level by the other.
    assert result.verdict == (
        "pid 9 (glibc): RSS grew 50 MiB in 10 s; live allocations grew 5 MiB; free memory glibc "
        "keeps grew 45 MiB; RSS still climbing: ≈ 210 MiB at 20 s; live: cannot tell whether it "
        "levels off; kept-but-free still climbing: ≈ 109 MiB at 20 s -> mostly free memory held "
        "by the allocator: fragmentation / unreturned pages"
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
    assert data["format"] == "sandbox-inspect-watch" and data["version"] == 2
    assert (data["growth"], data["duration_s"], data["stopped_ms"]) == (None, 0.0, None)
    assert (data["reads"], data["limit"]) == ([], None)
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
        "reads",
        "limit",
        "verdict",
        "stopped_ms",
    ]


# --- the growth read over the looks -----------------------------------------------------------

LIMIT = 2048 * MIB


def looks_of(curve: Callable[[float], tuple[float, float, float]], n: int, seed: int = 1) -> Watch:
    """n looks every 5 s (each a few ms late, as real looks are), RSS, in use and held (MiB)
    from `curve` at that time, RSS with 0.3 MiB of noise."""
    rng = random.Random(seed)
    samples = []
    for i in range(n):
        t = 5.0 * i + rng.uniform(0.0, 0.05)
        rss, in_use, held = curve(t)
        snapshot = look(0, None, None)
        memory = replace(snapshot.memory, rss_bytes=round((rss + rng.gauss(0, 0.3)) * MIB))
        counters = Counters("glibc", round(in_use * MIB), round(held * MIB))
        samples.append(Sample(t, replace(snapshot, memory=memory, counters=counters)))
    return Watch(9, 5.0, tuple(samples), limit_bytes=LIMIT)


def leak(t: float) -> tuple[float, float, float]:
    """Half a MiB a second, nearly all of it live."""
    return 100 + 0.5 * t, 50 + 0.45 * t, 60 + 0.48 * t


def cache(t: float) -> tuple[float, float, float]:
    """A cache filling to 80 MiB (time constant 10 s): RSS levels off at 180 MiB."""
    filled = 80 * (1 - math.exp(-t / 10))
    return 100 + filled, 50 + 0.9 * filled, 60 + 0.95 * filled


def reads_of(w: Watch) -> dict[str, dict[str, Any]]:
    return {r["quantity"]: r for r in w.to_dict()["reads"]}


def test_a_steady_climb_is_read_as_climbing_with_a_time_to_the_limit() -> None:
    w = looks_of(leak, 13)  # one minute
    rss = reads_of(w)["RSS"]
    assert (rss["state"], rss["model"], rss["weak"], rss["looks"]) == (
        "climbing",
        "linear",
        False,
        13,
    )
    assert rss["per_minute_bytes"] / MIB == pytest.approx(30, abs=1)
    forecast = rss["forecast"]
    first = w.samples[0].t_s
    assert forecast["t_s"] == pytest.approx(2 * (w.samples[-1].t_s - first))  # from the first
    truth = leak(first + forecast["t_s"])[0] * MIB
    assert forecast["low_bytes"] < truth < forecast["high_bytes"]
    assert rss["interval"] == 0.9
    # from ~130 MiB at the last look, 0.5 MiB a second: (2048 - 130) / 0.5 = 3836 s
    limit = w.to_dict()["limit"]
    reach = limit["reach"]
    assert reach["after_s"] == pytest.approx(3836, rel=0.05)
    assert reach["soonest_s"] < reach["after_s"] < reach["latest_s"]
    assert limit["words"].startswith("RSS would reach 2048 MiB in ≈ 6")  # 61 to 67 min
    assert limit["words"].endswith(" min]")
    lines = w.read_lines()
    assert lines[0] == "the growth read over 13 looks in 60 s (x: seconds since the first):"
    assert lines[1].startswith("  RSS: still climbing, ")
    assert lines[1].endswith(" MiB 2 min after the first look (straight line)")
    assert " MiB per minute: ≈ " in lines[1]
    assert lines[-1] == "  " + limit["words"]
    assert "; RSS still climbing: ≈ " in w.verdict and " MiB at 2 min; " in w.verdict
    assert w.verdict.endswith(" -> mostly live allocations: a leak or a cache, not the allocator")


def test_a_cache_filling_up_is_read_as_levelling_off() -> None:
    w = looks_of(cache, 13)
    reads = reads_of(w)
    rss = reads["RSS"]
    assert (rss["state"], rss["model"]) == ("levels", "saturating")
    assert rss["level_bytes"] / MIB == pytest.approx(180, abs=2)
    assert rss["forecast"]["low_bytes"] < 180 * MIB < rss["forecast"]["high_bytes"]
    assert rss["per_minute_bytes"] is None
    assert reads["live"]["state"] == reads["kept-but-free"]["state"] == "levels"
    assert w.to_dict()["limit"] == {
        "limit_bytes": LIMIT,
        "words": "RSS is not climbing: no time to the limit of 2048 MiB",
        "reach": None,
    }
    assert w.read_lines()[1].startswith("  RSS: levels off at ≈ 180 [")
    assert "; RSS levels off at ≈ 180 [" in w.verdict


def test_too_few_looks_cannot_tell() -> None:
    two = looks_of(leak, 2)
    assert [r["state"] for r in two.to_dict()["reads"]] == ["few looks"] * 3
    assert all(r["forecast"] is None and r["looks"] == 2 for r in two.to_dict()["reads"])
    assert "; too few looks to tell whether memory levels off -> " in two.verdict
    assert two.read_lines()[-2:] == [
        "  too few looks to tell when RSS would reach the limit of 2048 MiB",
        "  fewer than 3 looks: whether memory levels off cannot be told (a leak and a cache look "
        "alike); look 5 or more times (a longer --watch or a shorter --interval)",
    ]
    three = looks_of(leak, 3)
    rss = reads_of(three)["RSS"]
    assert (rss["weak"], rss["interval"], rss["held_out_rms_bytes"]) == (True, None, {})
    assert three.read_lines()[1].endswith("(straight line; weak: 3 looks, no interval)")
    four = reads_of(looks_of(leak, 4))["RSS"]
    assert four["weak"] and four["interval"] == 0.9  # one look held out


def test_the_json_round_trips_with_the_reads_figures() -> None:
    w = looks_of(leak, 13)
    data = w.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["version"] == 2 and data["growth"]["rss_bytes"] > 0  # the old fields stay
    for r in data["reads"]:
        assert list(r) == [
            "quantity",
            "state",
            "model",
            "weak",
            "looks",
            "runs",
            "rise_bytes",
            "forecast",
            "interval",
            "contenders",
            "held_out_rms_bytes",
            "per_minute_bytes",
            "level_bytes",
        ]
        assert list(r["forecast"]) == ["t_s", "bytes", "low_bytes", "high_bytes"]
        assert r["runs"] == 1
        assert set(r["held_out_rms_bytes"]) == {"linear", "saturating", "sublinear"}
    assert [r["quantity"] for r in data["reads"]] == ["RSS", "live", "kept-but-free"]
    assert list(data["limit"]) == ["limit_bytes", "words", "reach"]
    assert list(data["limit"]["reach"]) == ["after_s", "soonest_s", "latest_s"]
    no_limit = replace(w, limit_bytes=None).to_dict()
    assert no_limit["limit"] is None and no_limit["reads"] == data["reads"]
