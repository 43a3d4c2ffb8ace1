"""The watchdog's rules, with fakes for the sampler, the probe, the server and the clock (no
threads, no processes): each stop reason, word for word, and the order they are checked in."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field

import pytest

from sandbox.measure.watchdog import Stopped, Watchdog
from sandbox.units import MIB


@dataclass
class FakeFlag:
    on: bool = False

    def is_set(self) -> bool:
        return self.on


@dataclass
class FakeSampler:
    name: str = "rss-sampler"
    error: BaseException | None = None
    stuck_s: float | None = None
    cap_hit: FakeFlag = field(default_factory=FakeFlag)
    gone: FakeFlag = field(default_factory=FakeFlag)


@dataclass
class FakeProbe:
    name: str = "probe-poller"
    error: BaseException | None = None
    stuck_s: float | None = None
    answered_at: float = 100.0
    alive: bool = True

    def is_alive(self) -> bool:
        return self.alive


@dataclass
class FakeServer:
    code: int | None = None
    process_state: str = ""
    events: list[str] = field(default_factory=list)

    def poll(self) -> int | None:
        return self.code

    def kill(self) -> None:
        self.events.append("kill")

    def state(self) -> str:
        self.events.append("state")
        return self.process_state


@dataclass(frozen=True)
class FakeLimits:
    max_rss_bytes: int | None = None
    hang_timeout_s: float = 30.0


@dataclass
class FakeClock:
    t: float = 100.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Rig:
    sampler: FakeSampler = field(default_factory=FakeSampler)
    probe: FakeProbe = field(default_factory=FakeProbe)
    server: FakeServer = field(default_factory=FakeServer)
    clock: FakeClock = field(default_factory=FakeClock)
    limits: FakeLimits = field(default_factory=FakeLimits)

    def watchdog(self) -> Watchdog:
        return Watchdog(self.sampler, self.probe, self.server, self.limits, clock=self.clock)

    def stop_reason(self, phase: str) -> tuple[str, str]:
        with pytest.raises(Stopped) as stopped:
            self.watchdog().check(phase)
        assert str(stopped.value) == stopped.value.detail
        return stopped.value.status, stopped.value.detail


def test_a_healthy_run_goes_on() -> None:
    rig = Rig()
    rig.clock.t = 129.0  # silent 29 s of 30
    rig.watchdog().check("batch-1")
    assert rig.server.events == []


def test_a_failed_sampler_thread_fails_the_run() -> None:
    rig = Rig(sampler=FakeSampler(error=RuntimeError("no /proc")))
    assert rig.stop_reason("baseline") == (
        "failed",
        "the rss-sampler thread failed: RuntimeError('no /proc')",
    )


def test_a_failed_probe_thread_fails_the_run() -> None:
    rig = Rig(probe=FakeProbe(error=ValueError("bad JSON")))
    assert rig.stop_reason("idle") == (
        "failed",
        "the probe-poller thread failed: ValueError('bad JSON')",
    )


def test_a_thread_failure_comes_before_every_other_reason() -> None:
    rig = Rig(probe=FakeProbe(error=OSError("gone"), answered_at=0.0))
    rig.sampler.cap_hit.on = True
    rig.server.code = 1
    assert rig.stop_reason("batch-1")[0] == "failed"
    assert rig.server.events == []


def test_the_memory_cap_stops_the_run_and_names_the_cap_in_mib() -> None:
    rig = Rig(limits=FakeLimits(max_rss_bytes=512 * MIB))
    rig.sampler.cap_hit.on = True
    assert rig.stop_reason("batch-2") == (
        "memory-cap",
        "the server's RSS passed --max-rss 512 MiB during batch-2; it was stopped",
    )
    assert rig.server.events == []  # the sampler killed it, not the watchdog


def test_the_cap_is_the_story_when_the_server_it_killed_is_dead() -> None:
    rig = Rig(limits=FakeLimits(max_rss_bytes=300 * MIB))
    rig.sampler.cap_hit.on = True
    rig.sampler.gone.on = True
    rig.server.code = -signal.SIGKILL
    assert rig.stop_reason("pause-1")[0] == "memory-cap"


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (1, "exited with code 1"),
        (0, "exited with code 0"),
        (-signal.SIGKILL, "was killed by SIGKILL"),
        (-signal.SIGSEGV, "was killed by SIGSEGV"),
        (-200, "was killed by signal 200"),
    ],
)
def test_a_server_that_exited_died(code: int, words: str) -> None:
    rig = Rig(server=FakeServer(code=code))
    assert rig.stop_reason("batch-3") == ("server-died", f"the server {words} during batch-3")


def test_a_server_the_sampler_lost_vanished() -> None:
    rig = Rig()
    rig.sampler.gone.on = True
    assert rig.stop_reason("baseline") == ("server-died", "the server vanished during baseline")


def test_death_comes_before_a_hang() -> None:
    rig = Rig(server=FakeServer(code=2))
    rig.clock.t = 1000.0
    assert rig.stop_reason("idle")[0] == "server-died"
    assert rig.server.events == []


def test_a_silent_server_is_hung_and_killed_after_its_state_is_read() -> None:
    rig = Rig(limits=FakeLimits(hang_timeout_s=2.0))
    rig.server.process_state = " (process state T: stopped)"
    rig.clock.t = 102.5
    assert rig.stop_reason("batch-1") == (
        "server-hung",
        "the server answered nothing for 2 s during batch-1 (process state T: stopped); "
        "it was killed",
    )
    assert rig.server.events == ["state", "kill"]


def test_a_hung_server_in_no_telling_state_gets_no_state_in_the_message() -> None:
    rig = Rig(limits=FakeLimits(hang_timeout_s=2.5))
    rig.clock.t = 110.0
    assert rig.stop_reason("trim") == (
        "server-hung",
        "the server answered nothing for 2.5 s during trim; it was killed",
    )


def test_silence_up_to_the_timeout_is_not_a_hang() -> None:
    rig = Rig(limits=FakeLimits(hang_timeout_s=2.0))
    rig.clock.t = 102.0
    rig.watchdog().check("batch-1")
    rig.clock.t = 102.001
    assert rig.stop_reason("batch-1")[0] == "server-hung"


def test_a_probe_that_is_not_running_cannot_call_a_hang() -> None:
    rig = Rig(probe=FakeProbe(alive=False, answered_at=0.0))
    rig.clock.t = 1000.0
    rig.watchdog().check("idle")
    assert rig.server.events == []


def test_a_recent_answer_resets_the_silence() -> None:
    rig = Rig(limits=FakeLimits(hang_timeout_s=5.0))
    watchdog = rig.watchdog()
    rig.clock.t = 104.0
    watchdog.check("batch-1")
    rig.probe.answered_at = 104.0
    rig.clock.t = 108.0  # 8 s since the start, 4 s since the last answer
    watchdog.check("batch-1")
    assert rig.server.events == []


# --- after the threads are stopped ----------------------------------------------------------------


def test_a_failure_after_the_last_check_and_a_stuck_thread_reach_the_notes() -> None:
    rig = Rig(probe=FakeProbe(stuck_s=5.0))
    watchdog = rig.watchdog()
    watchdog.check("idle")  # the last check: all well
    rig.sampler.error = RuntimeError("no /proc")

    assert watchdog.after_stop() == [
        "the rss-sampler thread failed after the run's last check: RuntimeError('no /proc'); "
        "its last readings are missing",
        "the probe-poller thread did not stop within 5 s of the end of the run; its last "
        "readings may be missing",
    ]


def test_a_failure_that_ended_the_run_is_not_told_twice() -> None:
    rig = Rig(probe=FakeProbe(error=ValueError("bad JSON")))
    watchdog = rig.watchdog()
    with pytest.raises(Stopped):
        watchdog.check("idle")

    assert watchdog.after_stop() == []
    assert Rig().watchdog().after_stop() == []
