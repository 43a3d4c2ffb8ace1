"""The probe's columns from the agents' counters, and its request count for the progress line
(this test process stands for the server; nothing listens at its URL)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from sandbox.measure.sampler import ColumnStore, Live, ProbePoller, ProcessTree, _PollingThread
from sandbox.system.processes import free_port

Row = dict[str, float | None]


class ScriptedCounters:
    """Gives the scripted rows in turn; records the processes it was asked about."""

    def __init__(self, rows: list[Row]) -> None:
        self.rows = rows
        self.asked: list[list[tuple[str, int]]] = []

    def read(
        self, processes: Sequence[tuple[str, int]], *, per_process: bool, fresh: bool = False
    ) -> Row:
        self.asked.append(list(processes))
        return self.rows.pop(0)


def poller(**kwargs: object) -> ProbePoller:
    url = f"http://127.0.0.1:{free_port()}"  # refuses: no /stats
    return ProbePoller(os.getpid(), url, 1.0, time.monotonic(), Live(), **kwargs)  # type: ignore[arg-type]


def test_the_first_row_fixes_the_columns_and_later_gaps_are_carried_or_zeroed() -> None:
    counters = ScriptedCounters(
        [
            {"alloc_in_use_bytes": 5, "alloc_held_bytes": 9, "py_allocated_blocks": None,
             "alloc_held_bytes_main": 9},
            {"alloc_in_use_bytes": None, "alloc_held_bytes": 7, "py_allocated_blocks": 3},
        ]
    )  # fmt: skip
    probe = poller(tree=ProcessTree(os.getpid()), ask_server=False, counters=counters)
    assert probe.tick(0.0) and probe.tick(1.0)
    columns = probe.stop()
    assert counters.asked[0][0] == ("main", os.getpid())
    assert "py_allocated_blocks" not in columns  # nobody gave it on the first tick
    assert columns["alloc_in_use_bytes"] == [5, 5]  # not answered: carried
    assert columns["alloc_held_bytes"] == [9, 7]
    assert columns["alloc_held_bytes_main"] == [9, 0]  # that process's column: it has gone
    assert columns["rss_bytes_main"][0] > 0


def test_a_process_first_answering_later_gets_its_columns_from_then_on() -> None:
    """A worker forked late (or a replacement for one recycled): its columns start when its
    agent first answers and read 0 before, as after an exit; the sums had it from then on."""
    counters = ScriptedCounters(
        [
            {"alloc_in_use_bytes": 5, "alloc_held_bytes": 9, "alloc_held_bytes_w1": 9},
            {"alloc_in_use_bytes": 8, "alloc_held_bytes": 13, "alloc_held_bytes_w1": 9,
             "alloc_held_bytes_w2": 4},
            {"alloc_in_use_bytes": 8, "alloc_held_bytes": 14, "alloc_held_bytes_w1": 9,
             "alloc_held_bytes_w2": 5},
        ]
    )  # fmt: skip
    probe = poller(tree=ProcessTree(os.getpid()), ask_server=False, counters=counters)
    assert probe.tick(0.0) and probe.tick(1.0) and probe.tick(2.0)
    columns = probe.stop()
    assert columns["alloc_held_bytes_w2"] == [0, 4, 5]
    assert columns["alloc_held_bytes_w1"] == [9, 9, 9]
    assert len({len(c) for c in columns.values()}) == 1  # still one length


def test_a_column_added_to_a_decimating_store_keeps_the_columns_aligned() -> None:
    store = ColumnStore({"t_s": ("d", "first"), "a": ("q", "max")}, max_rows=4)
    for i in range(5):  # halves once: stride 2, one row pending
        store.append({"t_s": float(i), "a": i})
    store.add_column("b", ("q", "max"), fill=0)
    store.append({"t_s": 5.0, "a": 5, "b": 7})
    columns = store.columns()
    assert len({len(c) for c in columns.values()}) == 1
    assert columns["b"][-1] == 7 and set(columns["b"][:-1]) == {0}


def test_without_an_agent_there_are_no_allocator_columns() -> None:
    probe = poller(ask_server=False)
    assert probe.tick(0.0)
    assert sorted(probe.stop()) == ["pss_bytes", "t_s", "uss_bytes"]


def test_locust_counts_the_requests_when_the_server_does_not() -> None:
    done = iter([0, 150])
    probe = poller(ask_server=True, count_requests=lambda: next(done))
    probe.tick(0.0)
    probe.tick(2.0)
    assert (probe.live.requests_done, probe.live.rps) == (150, 75.0)
    assert "requests_done" not in probe.stop()  # the server gave none: no column of zeros


def test_nobody_counting_shows_as_minus_one() -> None:
    probe = poller(ask_server=False)
    probe.tick(0.0)
    assert probe.live.requests_done == -1


class _Ticker(_PollingThread):
    """Counts its ticks; each takes `tick_s`."""

    def __init__(self, interval_s: float, tick_s: float = 0.0) -> None:
        super().__init__("ticker", interval_s, time.monotonic())
        self.tick_s = tick_s
        self.at: list[float] = []
        self.forced: list[bool] = []

    def tick(self, t: float) -> bool:
        self.at.append(t)
        self.forced.append(self._take_forced())
        time.sleep(self.tick_s)
        return True


def test_tick_now_takes_a_reading_that_starts_after_the_call() -> None:
    ticker = _Ticker(interval_s=30.0, tick_s=0.05)
    ticker.start()
    try:
        while not ticker.at:
            time.sleep(0.01)
        asked = time.monotonic() - ticker.t0
        assert ticker.tick_now(timeout_s=5.0)
        assert len(ticker.at) == 2 and ticker.at[1] >= asked  # not the 30 s schedule's
        assert ticker.tick_now(timeout_s=5.0) and len(ticker.at) == 3
        assert ticker.forced == [False, True, True]  # the asked-for ticks know it
    finally:
        ticker.halt()
    assert not ticker.is_alive()
    assert not ticker.tick_now(timeout_s=0.5)  # stopped: no reading, no wait
