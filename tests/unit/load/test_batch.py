"""Batch supervision with a fake Locust (scripted exit codes), clock and check: no processes."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from sandbox.errors import LoadError
from sandbox.load.batch import OVERRUN_S, Supervisor, shortfall
from sandbox.load.live_count import LocustCount
from sandbox.load.models import LoadModel
from sandbox.load.spec import LoadSpec
from sandbox.load.stats import BatchStats

HOST_URL = "http://127.0.0.1:8123"
LOAD = LoadSpec(
    locustfile=Path("/repo/plans/locustfile.py"),
    tags=("tiny", "small"),
    spawn_rate=16.0,
    iterations=30,
    timeout_s=900.0,
)
ENTRY = {
    "name": "/widgets [tiny]",
    "num_requests": 60,
    "num_failures": 1,
    "start_time": 1000.0,
    "last_request_timestamp": 1003.0,
    "max_response_time": 80.0,
    "response_times": {"10": 50, "80": 10},
    "num_reqs_per_sec": {"1000": 30, "1002": 30},
    "num_fail_per_sec": {},
}


@dataclass
class FakeChild:
    """Answers poll() with the scripted codes, then keeps giving the last one."""

    codes: list[int | None]

    def poll(self) -> int | None:
        return self.codes.pop(0) if len(self.codes) > 1 else self.codes[0]


@dataclass
class FakeLocust:
    proc: FakeChild
    stats_json: Path
    workers: list[FakeChild] = field(default_factory=list)
    tail: str = ""

    @property
    def stats_csv(self) -> Path:
        return self.stats_json.with_name("locust_stats.csv")

    def log_tail(self, lines: int = 6) -> str:
        return self.tail


@dataclass
class Rig:
    tmp: Path
    master: list[int | None] = field(default_factory=lambda: [None, None, 0])
    workers: list[list[int | None]] = field(default_factory=list)
    entries: object = field(default_factory=lambda: [ENTRY])
    tail: str = ""
    t: float = 0.0
    checks: int = 0
    check_raises_at: int | None = None
    started: list[tuple[LoadSpec, Path]] = field(default_factory=list)
    stopped: bool = False

    def clock(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds

    def check(self) -> None:
        self.checks += 1
        if self.checks == self.check_raises_at:
            raise KeyboardInterrupt  # stands for the run's own stop reason

    @contextlib.contextmanager
    def start(self, load: LoadSpec, host_url: str, batch_dir: Path) -> Iterator[FakeLocust]:
        assert host_url == HOST_URL
        self.started.append((load, batch_dir))
        stats_json = batch_dir / "locust.json"
        if self.entries is not None:
            stats_json.write_text(json.dumps(self.entries))
        try:
            yield FakeLocust(
                FakeChild(list(self.master)),
                stats_json,
                [FakeChild(list(codes)) for codes in self.workers],
                self.tail,
            )
        finally:
            self.stopped = True

    def supervisor(self) -> Supervisor:
        return Supervisor(
            self.check,
            now_s=lambda: 5.0 + self.t,  # the run began 5 s before the batch
            start=self.start,
            clock=self.clock,
            epoch=lambda: 999.0,
            sleep=self.sleep,
            poll_s=0.5,
        )

    def run(self, index: int = 1, load: LoadSpec = LOAD) -> BatchStats:
        return self.supervisor().run(load, HOST_URL, self.tmp, index)

    def error(self, index: int = 1, load: LoadSpec = LOAD) -> str:
        with pytest.raises(LoadError) as exc:
            self.run(index, load)
        assert self.stopped
        return str(exc.value)


def test_a_batch_that_ends_well_gives_its_statistics(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    stats = rig.run(index=2)
    assert rig.started == [(LOAD, tmp_path / "batch-2")]
    assert (tmp_path / "batch-2").is_dir()
    assert (stats.index, stats.requests, stats.failures, stats.exit_code) == (2, 60, 1, 0)
    assert (stats.start_s, stats.end_s) == (5.0, 6.0)  # two polls of 0.5 s
    assert stats.by_plan == {"tiny": 60}
    assert stats.timeline_t_s == [6.0, 8.0]  # epoch 1000 is 1 s after the batch began
    assert rig.checks == 3  # each poll, and once after Locust exited
    assert rig.stopped


def test_the_live_count_follows_each_batch_and_takes_its_final_total(tmp_path: Path) -> None:
    count = LocustCount()
    seen: list[int] = []
    running = tmp_path / "batch-1" / "locust_stats.csv"  # where the fake's stats_csv points

    def check() -> None:  # while the batch runs, Locust has counted 25 so far
        running.write_text("Type,Name,Request Count\n,Aggregated,25\n")
        seen.append(count.total())

    supervisor = Rig(tmp_path).supervisor()
    supervisor.check, supervisor.count = check, count
    stats = supervisor.run(LOAD, HOST_URL, tmp_path, 1)
    assert set(seen) == {25}
    assert count.total() == stats.requests == 60  # then the batch's final total


def test_a_users_locustfile_is_not_counted_per_plan(tmp_path: Path) -> None:
    stats = Rig(tmp_path).run(load=replace(LOAD, drill=False))
    assert stats.by_plan == {}


def test_the_runs_check_ends_the_batch_and_stops_locust(tmp_path: Path) -> None:
    rig = Rig(tmp_path, master=[None] * 10 + [0], check_raises_at=2)
    with pytest.raises(KeyboardInterrupt):
        rig.run()
    assert rig.stopped


def test_the_runs_check_after_exit_comes_before_locusts_own_failure(tmp_path: Path) -> None:
    # The server died under load: Locust then fails too, but the check tells the real story.
    rig = Rig(tmp_path, master=[None, 1], entries=None, check_raises_at=2)
    with pytest.raises(KeyboardInterrupt):
        rig.run()


def test_a_batch_past_its_limit_is_stopped(tmp_path: Path) -> None:
    rig = Rig(tmp_path, master=[None], t=0.0)
    load = replace(LOAD, timeout_s=2.0)
    assert rig.error(3, load) == (
        "Locust overran batch 3's 2 s limit (run.batch_timeout_s) and was stopped"
    )
    assert rig.t == pytest.approx(2.0 + OVERRUN_S + 0.5)


def test_a_dead_worker_fails_the_batch(tmp_path: Path) -> None:
    rig = Rig(tmp_path, master=[None] * 5 + [0], workers=[[None], [None, None, -signal.SIGKILL]])
    assert rig.error(1) == "Locust worker 2 was killed by SIGKILL during batch-1"


def test_a_worker_that_finished_is_not_a_failure(tmp_path: Path) -> None:
    rig = Rig(tmp_path, workers=[[0], [None, 0]])
    assert rig.run().requests == 60


def test_locust_exiting_with_an_error_names_its_last_output(tmp_path: Path) -> None:
    rig = Rig(tmp_path, master=[None, 2], tail="ImportError: no module x | giving up")
    assert rig.error(4) == (
        "Locust exited with code 2 during batch-4; its last output: "
        "ImportError: no module x | giving up"
    )


def test_locust_killed_without_output(tmp_path: Path) -> None:
    rig = Rig(tmp_path, master=[None, -signal.SIGKILL])
    assert rig.error(2) == "Locust was killed by SIGKILL during batch-2"


def test_locust_that_wrote_no_statistics(tmp_path: Path) -> None:
    rig = Rig(tmp_path, master=[0], entries=None, tail="done")
    assert rig.error(1) == "Locust wrote no statistics during batch-1; its last output: done"


def test_statistics_that_are_not_a_list_are_a_load_error(tmp_path: Path) -> None:
    rig = Rig(tmp_path, master=[0], entries={"stats": []})
    path = tmp_path / "batch-1" / "locust.json"
    assert rig.error(1) == f"Locust's statistics are not a list of entries: {path}"


def stats_with(requests: int, index: int = 1) -> BatchStats:
    return BatchStats(
        index=index,
        start_s=0.0,
        end_s=10.0,
        requests=requests,
        failures=0,
        rps=requests / 10.0,
        p50_ms=1.0,
        p95_ms=2.0,
        p99_ms=3.0,
        max_ms=4.0,
        by_plan={},
        exit_code=0,
    )


def test_shortfall_of_an_iterations_batch_names_its_time_limit() -> None:
    assert shortfall(LOAD, stats_with(60)) == []  # 30 iterations x 2 plans
    assert shortfall(LOAD, stats_with(41, index=2)) == [
        "batch 2 stopped at its 900 s time limit after 41 of 60 requests"
    ]


def test_shortfall_of_a_paced_batch_below_nine_tenths_of_its_target() -> None:
    load = replace(LOAD, model=LoadModel("rate", users=8, rate=20.0, duration_s=30.0))
    assert shortfall(load, stats_with(540)) == []  # 90 % of 600
    [note] = shortfall(load, stats_with(300, index=3))
    assert note == (
        f"batch 3 reached 50% of the {load.model.describe()} target (300 of 600 requests): "
        "the server answered too slowly for the users; raise --users"
    )


def test_an_unpaced_model_has_no_target_to_fall_short_of() -> None:
    load = replace(LOAD, model=LoadModel("soak", users=4, duration_s=30.0))
    assert shortfall(load, stats_with(0)) == []


def test_no_locust_in_this_process() -> None:
    assert "locust" not in sys.modules
