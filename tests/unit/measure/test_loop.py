"""The run loop and its progress reports, with a fake clock, sampler and watchdog (no threads)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from sandbox.measure.loop import Progress, RunLoop, report_progress
from sandbox.measure.sampler import Live


@dataclass
class FakeClock:
    t: float = 50.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


@dataclass
class FakeSampler:
    marks: list[str] = field(default_factory=list)

    def mark(self, name: str) -> None:
        self.marks.append(name)


class Halt(Exception):
    pass


@dataclass
class FakeWatchdog:
    checked: list[str] = field(default_factory=list)
    stop_after: int | None = None

    def check(self, phase: str) -> None:
        if self.stop_after is not None and len(self.checked) >= self.stop_after:
            raise Halt(phase)
        self.checked.append(phase)


@dataclass
class Rig:
    clock: FakeClock = field(default_factory=FakeClock)
    sampler: FakeSampler = field(default_factory=FakeSampler)
    watchdog: FakeWatchdog = field(default_factory=FakeWatchdog)
    live: Live = field(default_factory=lambda: Live(rss_bytes=64 << 20, requests_done=10, rps=2.5))
    reports: list[Progress] = field(default_factory=list)

    def loop(self, poll_s: float = 0.25) -> RunLoop:
        return RunLoop(
            self.sampler,
            self.watchdog,
            self.live,
            3,
            self.reports.append,
            t0=50.0,
            clock=self.clock,
            sleep=self.clock.sleep,
            poll_s=poll_s,
        )


def test_report_progress_hands_the_live_readings_over() -> None:
    got: list[Progress] = []
    report_progress(
        got.append, "batch-2", 2, 3, 12.5, Live(rss_bytes=1000, requests_done=7, rps=1.5)
    )
    assert got == [Progress("batch-2", 2, 3, 12.5, 1000, 7, 1.5)]


def test_a_loop_without_a_display_still_checks() -> None:
    rig = Rig()
    loop = RunLoop(rig.sampler, rig.watchdog, rig.live, 1, None, t0=0.0, clock=rig.clock)
    loop.mark("idle")
    loop.check()
    assert rig.watchdog.checked == ["idle"]


def test_wait_checks_every_poll_until_the_deadline() -> None:
    rig = Rig()
    loop = rig.loop(poll_s=0.25)
    loop.mark("baseline")
    loop.wait(1.0)
    assert rig.clock.sleeps == [0.25, 0.25, 0.25, 0.25]
    assert rig.watchdog.checked == ["baseline"] * 5
    assert [r.elapsed_s for r in rig.reports] == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_wait_sleeps_only_what_is_left_of_the_last_poll() -> None:
    rig = Rig()
    rig.loop(poll_s=0.5).wait(1.25)
    assert rig.clock.sleeps == [0.5, 0.5, 0.25]


def test_wait_of_zero_checks_once() -> None:
    rig = Rig()
    rig.loop().wait(0.0)
    assert rig.clock.sleeps == []
    assert len(rig.watchdog.checked) == 1
    assert len(rig.reports) == 1


def test_a_stopping_watchdog_ends_the_wait_before_any_report() -> None:
    rig = Rig(watchdog=FakeWatchdog(stop_after=2))
    loop = rig.loop()
    loop.mark("idle")
    with pytest.raises(Halt, match="idle"):
        loop.wait(10.0)
    assert len(rig.reports) == 2
    assert rig.clock.t == 50.5


def test_progress_names_the_phase_and_the_batch() -> None:
    rig = Rig()
    loop = rig.loop()
    loop.mark("baseline")
    loop.check()
    loop.mark("batch-2", batch=2)
    rig.clock.t = 61.5
    rig.live.requests_done = 250
    loop.check()
    loop.mark("pause-2")  # the batch number stays
    loop.check()
    assert [(r.phase, r.batch, r.batches) for r in rig.reports] == [
        ("baseline", 0, 3),
        ("batch-2", 2, 3),
        ("pause-2", 2, 3),
    ]
    assert rig.reports[1] == Progress("batch-2", 2, 3, 11.5, 64 << 20, 250, 2.5)
    assert rig.sampler.marks == ["baseline", "batch-2", "pause-2"]
    assert rig.watchdog.checked == ["baseline", "batch-2", "pause-2"]


def test_hold_opens_the_phase_and_waits_in_it() -> None:
    rig = Rig()
    loop = rig.loop(poll_s=0.5)
    loop.hold("idle", 1.0)
    assert rig.sampler.marks == ["idle"]
    assert rig.watchdog.checked == ["idle"] * 3
    assert loop.now() == 1.0


def test_the_loop_starts_in_the_start_phase() -> None:
    rig = Rig()
    loop = rig.loop()
    assert (loop.phase, loop.batch) == ("start", 0)
    assert rig.sampler.marks == []
