"""Supervise one Locust batch: start it, wait for it while the run's own check runs, end it when it
overruns its time limit or a worker dies, and read its statistics.

The check is the caller's (it raises to end the run): this module knows nothing of what it checks.
Locust is started through `start` (the driver's, by default), so the rules can be tested with fakes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from sandbox.errors import LoadError
from sandbox.load import driver
from sandbox.load.live_count import LocustCount
from sandbox.load.spec import LoadSpec
from sandbox.load.stats import BatchStats, read_entries, summarise
from sandbox.system.processes import describe_exit

POLL_S = 0.2
OVERRUN_S = 30.0
"""How long past its time limit a batch may run before the harness stops it."""


class Child(Protocol):
    def poll(self) -> int | None:
        """The exit code, or None while it runs."""


class RunningLocust(Protocol):
    """What supervision needs of a started batch (`driver.LocustProcess`)."""

    @property
    def proc(self) -> Child:
        """The master (or the only process): its exit ends the batch."""

    @property
    def workers(self) -> Sequence[Child]: ...

    @property
    def stats_json(self) -> Path: ...

    @property
    def stats_csv(self) -> Path:
        """Locust's running totals, rewritten every second while it runs."""

    def log_tail(self, lines: int = 6) -> str: ...


Start = Callable[[LoadSpec, str, Path], AbstractContextManager[RunningLocust]]
"""Start Locust for a batch against a server URL in a folder; leaving the context stops every
process of it."""


class Supervisor:
    """Runs batches one at a time; `check` runs every `poll_s` while a batch is under way."""

    def __init__(
        self,
        check: Callable[[], None],
        now_s: Callable[[], float],
        *,
        start: Start = driver.start,
        clock: Callable[[], float] = time.monotonic,
        epoch: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        poll_s: float = POLL_S,
        count: LocustCount | None = None,
    ) -> None:
        self.check = check
        self.now_s = now_s
        """Seconds since the run started: the batch's start_s and end_s."""
        self.start = start
        self.clock = clock
        self.epoch = epoch
        """Wall-clock seconds, to map Locust's timestamps onto run time."""
        self.sleep = sleep
        self.poll_s = poll_s
        self.count = count
        """Told when each batch starts and ends: the run's requests so far, as Locust counts."""

    def run(self, load: LoadSpec, host_url: str, workdir: Path, index: int) -> BatchStats:
        """Batch `index` (from 1) against `host_url`, in `workdir/batch-<index>`; LoadError when
        Locust fails."""
        batch_dir = workdir / f"batch-{index}"
        batch_dir.mkdir()
        start_s, epoch = self.now_s(), self.epoch()
        # Locust's --run-time does not bound a load shape: the harness holds the limit itself.
        deadline = self.clock() + load.timeout_s + OVERRUN_S
        # Leaving the context stops Locust, on every path.
        with self.start(load, host_url, batch_dir) as locust:
            if self.count is not None:
                self.count.follow(locust.stats_csv)
            while (code := locust.proc.poll()) is None:
                self.check()
                if self.clock() > deadline:
                    raise LoadError(
                        f"Locust overran batch {index}'s {load.timeout_s:g} s limit "
                        "(run.batch_timeout_s) and was stopped"
                    )
                for i, worker in enumerate(locust.workers, 1):
                    worker_code = worker.poll()
                    if worker_code not in (None, 0):  # its share would never arrive
                        raise LoadError(
                            f"Locust worker {i} {describe_exit(worker_code)} during batch-{index}"
                        )
                self.sleep(self.poll_s)
            self.check()  # a server that died under load is the real story, not Locust's errors
            if code != 0 or not locust.stats_json.exists():
                how = describe_exit(code) if code != 0 else "wrote no statistics"
                tail = locust.log_tail()
                raise LoadError(
                    f"Locust {how} during batch-{index}"
                    + (f"; its last output: {tail}" if tail else "")
                )
            stats = summarise(
                read_entries(locust.stats_json),
                index=index,
                start_s=start_s,
                end_s=self.now_s(),
                epoch_at_start=epoch,
                exit_code=code,
                plans=load.drill,
            )
            if self.count is not None:
                self.count.finish(stats.requests)
            return stats


def shortfall(load: LoadSpec, stats: BatchStats) -> list[str]:
    """Notes when a batch sent less than it was asked to (time limit, or a rate not reached)."""
    if load.model.name == "iterations":
        expected = load.iterations * len(load.tags)
        if stats.requests < expected:
            return [
                f"batch {stats.index} stopped at its {load.timeout_s:g} s time limit after "
                f"{stats.requests} of {expected} requests"
            ]
    elif load.model.paced:
        wanted = load.model.expected_requests(0.0, load.model.duration_s)
        if wanted > 0 and stats.requests < 0.9 * wanted:
            return [
                f"batch {stats.index} reached {stats.requests / wanted:.0%} of the "
                f"{load.model.describe()} target ({stats.requests} of {wanted:.0f} requests): "
                "the server answered too slowly for the users; raise --users"
            ]
    return []
