from __future__ import annotations

import os
import threading
import time
import tracemalloc
from types import SimpleNamespace
from typing import Any

import psutil
import pytest

from sandbox.agent.allocator import MALLINFO2_FIELDS
from sandbox.allocators import maps as procmaps
from sandbox.server import introspect
from sandbox.units import MIB

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("LD_PRELOAD")), reason="the test process must run on glibc's malloc"
)


def in_use() -> int:
    value = introspect.snapshot().in_use_bytes
    assert value is not None
    return value


def test_the_test_process_runs_on_glibc() -> None:
    backend = introspect.backend()
    assert isinstance(backend, introspect.Glibc)
    assert (backend.name, backend.library) == ("glibc", None)


def test_glibc_counters_are_plausible() -> None:
    snap = introspect.snapshot()
    assert (snap.allocator, snap.library) == ("glibc", None)
    assert set(snap.raw) == set(MALLINFO2_FIELDS)
    assert snap.in_use_bytes is not None and snap.held_bytes is not None
    assert 0 < snap.in_use_bytes <= snap.held_bytes < introspect.rss_bytes()
    assert snap.held_bytes - snap.in_use_bytes == snap.raw["fordblks"]
    assert snap.note is not None and "malloc_trim" in snap.note


def test_in_use_includes_other_threads_arenas() -> None:
    """mallinfo2 sums every arena (glibc >= 2.33): a worker thread's heap is counted."""
    blocks: list[bytearray] = []
    before = introspect.snapshot()

    def work() -> None:  # 64 KiB blocks stay under the mmap threshold: they go to an arena
        blocks.extend(bytearray(64 * 1024) for _ in range(32 * 16))

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    after = introspect.snapshot()
    assert after.in_use_bytes is not None and before.in_use_bytes is not None
    assert after.in_use_bytes - before.in_use_bytes == pytest.approx(32 * MIB, rel=0.1)
    blocks.clear()


def test_hold_raises_in_use_and_release_lowers_it() -> None:
    ballast = introspect.Ballast()
    before = in_use()
    assert ballast.hold(16) == 16
    assert ballast.hold(4) == 20
    assert in_use() - before == pytest.approx(20 * MIB, rel=0.1)
    assert ballast.release() == 20
    assert ballast.mib == 0
    assert abs(in_use() - before) < 2 * MIB


def test_hold_rejects_a_negative_size() -> None:
    with pytest.raises(ValueError, match="mib must be >= 0, got -1"):
        introspect.Ballast().hold(-1)


def test_release_returns_what_was_called() -> None:
    release = introspect.release_free_memory()
    assert release is not None
    assert release.called == "malloc_trim(0)"
    assert release.result in (0, 1)


@pytest.mark.parametrize(
    ("normalise", "raw", "expected"),
    [
        (
            introspect.normalise_glibc,
            {"arena": 100, "hblkhd": 50, "uordblks": 70, "fordblks": 30},
            (120, 150),
        ),
        (introspect.normalise_glibc, {"arena": 100}, (None, None)),
        (
            introspect.normalise_jemalloc,
            {"stats.allocated": 10, "stats.active": 12, "stats.resident": 20},
            (10, 20),
        ),
        (introspect.normalise_jemalloc, {}, (None, None)),
        (
            introspect.normalise_tcmalloc,
            {
                "generic.current_allocated_bytes": 10,
                "generic.heap_size": 40,
                "tcmalloc.pageheap_unmapped_bytes": 15,
            },
            (10, 25),
        ),
        (introspect.normalise_tcmalloc, {"generic.heap_size": 40}, (None, None)),
        (introspect.normalise_mimalloc, {"current_commit": 64, "current_rss": 64}, (None, 64)),
    ],
)
def test_normalise(normalise: Any, raw: dict[str, int], expected: tuple[Any, Any]) -> None:
    assert normalise(raw) == expected


@pytest.mark.parametrize(
    ("library", "name"),
    [
        (None, "glibc"),
        ("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "jemalloc"),
        ("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4.5.10", "tcmalloc"),
        ("/usr/lib/x86_64-linux-gnu/libmimalloc.so.2.0", "mimalloc"),
        ("/opt/libsnmalloc.so", "libsnmalloc.so"),
    ],
)
def test_family(library: str | None, name: str) -> None:
    assert introspect.family(library) == name


def test_unknown_allocator_has_no_counters_and_says_so() -> None:
    snap = introspect.make_backend("/opt/libsnmalloc.so").snapshot()
    assert snap.to_dict() == {
        "allocator": "libsnmalloc.so",
        "library": "/opt/libsnmalloc.so",
        "in_use_bytes": None,
        "held_bytes": None,
        "raw": {},
        "note": "no counters known for libsnmalloc.so",
    }
    assert introspect.make_backend("/opt/libsnmalloc.so").release() is None


def test_allocator_that_is_not_loaded_has_no_counters() -> None:
    snap = introspect.make_backend("/nonexistent/libjemalloc.so.2").snapshot()
    assert (snap.allocator, snap.in_use_bytes, snap.held_bytes) == ("jemalloc", None, None)
    assert snap.note is not None
    assert snap.note.startswith("cannot read jemalloc's counters: ")


def test_jemalloc_without_stats_says_so() -> None:
    def mallctl(*args: Any) -> int:
        return 2  # ENOENT: no such control (a build without --enable-stats)

    backend = introspect.Jemalloc("/x/libjemalloc.so.2", lib=SimpleNamespace(mallctl=mallctl))
    snap = backend.snapshot()
    assert (snap.in_use_bytes, snap.held_bytes, snap.raw) == (None, None, {})
    assert snap.note == "this jemalloc was built without --enable-stats: it keeps no counters"


LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
MIMALLOC = "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2.0"


@pytest.mark.parametrize(
    ("mapped", "owner", "expected"),
    [
        ([LIBC], LIBC, None),
        ([LIBC, JEMALLOC], JEMALLOC, JEMALLOC),
        ([LIBC, JEMALLOC, MIMALLOC], MIMALLOC, MIMALLOC),  # the owner, not the first mapped
        ([LIBC, JEMALLOC], LIBC, None),  # mapped but not interposing malloc
        ([LIBC, JEMALLOC], None, JEMALLOC),  # dladdr failed: trust the maps
        ([LIBC], None, None),
        ([LIBC, "/opt/libhoard.so"], "/opt/libhoard.so", "/opt/libhoard.so"),
    ],
)
def test_detect_library(
    monkeypatch: pytest.MonkeyPatch, mapped: list[str], owner: str | None, expected: str | None
) -> None:
    monkeypatch.setattr(procmaps, "mapped_paths", lambda pid=None: mapped)
    monkeypatch.setattr(introspect, "malloc_owner", lambda: owner)
    assert introspect.detect_library() == expected


def test_malloc_owner_is_libc_here() -> None:
    owner = introspect.malloc_owner()
    assert owner is not None
    assert os.path.basename(owner).startswith("libc.so")


def test_rss_matches_psutil() -> None:
    assert abs(introspect.rss_bytes() - psutil.Process().memory_info().rss) < 4 * MIB


def test_python_stats() -> None:
    stats = introspect.python_stats()
    assert stats["allocated_blocks"] > 0
    assert len(stats["gc_counts"]) == 3
    assert stats["gc_objects"] is None
    assert (stats["tracemalloc_bytes"], stats["tracemalloc_peak_bytes"]) == (None, None)
    assert introspect.python_stats(count_objects=True)["gc_objects"] > 1000


def test_python_stats_reports_tracemalloc_when_tracing() -> None:
    tracemalloc.start()
    try:
        kept = bytearray(MIB)
        stats = introspect.python_stats()
    finally:
        tracemalloc.stop()
    assert stats["tracemalloc_bytes"] >= MIB
    assert stats["tracemalloc_peak_bytes"] >= stats["tracemalloc_bytes"]
    del kept


def test_top_objects() -> None:
    rows = introspect.top_objects(3)
    assert len(rows) == 3
    assert all(set(row) == {"type", "count", "total_bytes"} for row in rows)
    sizes = [row["total_bytes"] for row in rows]
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[-1] > 0


def test_snapshot_is_cheap() -> None:
    introspect.snapshot()
    started = time.perf_counter()
    for _ in range(100):
        introspect.snapshot()
    assert (time.perf_counter() - started) / 100 < 0.001
