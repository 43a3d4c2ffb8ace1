"""`sandbox inspect` and the in-process introspection reduce the same counters the same way."""

from __future__ import annotations

import pytest

from sandbox.inspector.normalise import NORMALISERS, NOTES
from sandbox.server import introspect

RAW: dict[str, list[dict[str, int]]] = {
    "glibc": [
        {"arena": 1_204_224, "hblkhd": 67_514_368, "uordblks": 1_102_624, "fordblks": 101_600},
        {"arena": 10, "uordblks": 4},  # hblkhd missing
    ],
    "jemalloc": [
        {"stats.allocated": 69_200_520, "stats.resident": 72_331_264, "stats.active": 1},
        {},
    ],
    "tcmalloc": [
        {
            "generic.current_allocated_bytes": 68_653_384,
            "generic.heap_size": 70_254_592,
            "tcmalloc.pageheap_unmapped_bytes": 794_624,
        },
        {"generic.heap_size": 5},
    ],
    "mimalloc": [{"current_commit": 104_857_600, "current_rss": 1}, {}],
}
IN_PROCESS = {
    "glibc": introspect.normalise_glibc,
    "jemalloc": introspect.normalise_jemalloc,
    "tcmalloc": introspect.normalise_tcmalloc,
    "mimalloc": introspect.normalise_mimalloc,
}


@pytest.mark.parametrize(
    ("family", "raw"), [(family, raw) for family, cases in RAW.items() for raw in cases]
)
def test_same_numbers_as_the_in_process_counters(family: str, raw: dict[str, int]) -> None:
    assert NORMALISERS[family](raw) == IN_PROCESS[family](raw)


def test_worked_example() -> None:
    assert NORMALISERS["glibc"](RAW["glibc"][0]) == (68_616_992, 68_718_592)
    assert NORMALISERS["tcmalloc"](RAW["tcmalloc"][0]) == (68_653_384, 69_459_968)


def test_same_notes_as_the_in_process_counters() -> None:
    assert NOTES["glibc"] == introspect.Glibc.note
    assert NOTES["tcmalloc"] == introspect.Tcmalloc.note
    assert NOTES["mimalloc"] == introspect.Mimalloc.note
    assert set(NORMALISERS) == {"glibc", "jemalloc", "tcmalloc", "mimalloc"}
