from __future__ import annotations

import os
import sys
import threading
import time

from sandbox.measure.sampler import ColumnStore, RssSampler, _PollingThread, read_vmhwm
from sandbox.results.sampling import column_lengths_ok


def store(max_rows: int) -> ColumnStore:
    return ColumnStore({"t_s": ("d", "first"), "rss_bytes": ("q", "max")}, max_rows)


def test_store_keeps_everything_below_the_bound() -> None:
    s = store(100)
    for i in range(50):
        s.append({"t_s": i / 10, "rss_bytes": i})
    cols = s.columns()
    assert cols["rss_bytes"] == list(range(50))
    assert s.stride == 1


def test_store_stays_bounded_and_keeps_the_peak() -> None:
    s = store(64)
    n = 100_000
    for i in range(n):
        rss = 10_000 if i == 77_777 else i % 100
        s.append({"t_s": float(i), "rss_bytes": rss})
    cols = s.columns()
    assert len(cols["t_s"]) == len(cols["rss_bytes"]) <= 64
    assert max(cols["rss_bytes"]) == 10_000  # decimation keeps maxima
    assert cols["t_s"] == sorted(cols["t_s"])
    assert s.stride >= n // 64


def test_sampler_samples_a_real_process() -> None:
    t0 = time.monotonic()
    sampler = RssSampler(os.getpid(), 0.01, t0)
    sampler.start()
    sampler.mark("a")
    time.sleep(0.15)
    sampler.mark("b")
    time.sleep(0.05)
    cols = sampler.stop()
    assert len(cols["t_s"]) >= 5
    assert all(v > 0 for v in cols["rss_bytes"])
    assert [p.name for p in sampler.phases] == ["a", "b"]
    vmhwm = read_vmhwm(os.getpid())
    assert vmhwm is not None and vmhwm >= max(cols["rss_bytes"]) * 0.9


def test_a_thread_that_does_not_stop_is_marked_stuck() -> None:
    release = threading.Event()

    class Stuck(_PollingThread):
        def tick(self, t: float) -> bool:
            release.wait(5)  # a /proc read or an HTTP call that hangs
            return True

    thread = Stuck("stuck", 0.01, time.monotonic())
    thread.start()
    time.sleep(0.05)
    thread.halt(timeout_s=0.1)
    assert thread.stuck_s == 0.1
    release.set()
    thread.join()


def test_columns_stay_of_one_length_while_a_thread_appends() -> None:
    store = ColumnStore({"t_s": ("d", "first"), "rss_bytes": ("q", "max")}, max_rows=64)
    done = threading.Event()

    def append() -> None:
        i = 0
        while not done.is_set():
            store.append({"t_s": i, "rss_bytes": i})
            i += 1

    writer = threading.Thread(target=append)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    writer.start()
    try:
        unequal = sum(not column_lengths_ok(store.columns()) for _ in range(3000))
    finally:
        done.set()
        writer.join()
        sys.setswitchinterval(interval)
    assert unequal == 0
