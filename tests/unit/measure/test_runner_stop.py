"""The end of a run: what the sampling threads did after the last check reaches the result's
notes (no server: the run's threads are fakes)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from sandbox.measure import runner
from sandbox.measure.watchdog import Watchdog
from tests.unit.measure.test_watchdog import FakeFlag, FakeLimits, FakeServer


@dataclass
class StoppedThread:
    name: str
    error: BaseException | None = None
    stuck_s: float | None = None
    tree: None = None
    cap_hit: FakeFlag = field(default_factory=FakeFlag)
    gone: FakeFlag = field(default_factory=FakeFlag)
    answered_at: float = 0.0

    def is_alive(self) -> bool:
        return False

    def stop(self) -> dict[str, list[float]]:
        return {"t_s": [0.0]}


def test_a_late_thread_error_and_a_join_timeout_become_notes() -> None:
    run = runner._Run.__new__(runner._Run)
    run.sampler = StoppedThread("rss-sampler", error=OSError("smaps vanished"))  # type: ignore[assignment]
    run.probe = StoppedThread("probe-poller", stuck_s=5.0)  # type: ignore[assignment]
    run.watchdog = Watchdog(run.sampler, run.probe, FakeServer(), FakeLimits())
    run.notes = []
    run.agent_probe = None  # a run with no agent

    _, samples, probes = run.stop_sampling(os.getpid(), ok=True)

    assert samples == probes == {"t_s": [0.0]}
    assert run.notes == [
        "the rss-sampler thread failed after the run's last check: OSError('smaps vanished'); "
        "its last readings are missing",
        "the probe-poller thread did not stop within 5 s of the end of the run; its last "
        "readings may be missing",
        "the agent was left out (SANDBOX_NO_AGENT=1): no allocator counters and no trim, RSS only",
    ]
