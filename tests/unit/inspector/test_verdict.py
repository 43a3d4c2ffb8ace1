"""The watch's verdict: which share of the RSS growth is largest, in compare's words."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.analysis.verdict import FREE_KEPT, LIVE, PYMALLOC_FRAGMENTATION
from sandbox.analysis.verdict import OUTSIDE as OUTSIDE_BOTH
from sandbox.inspector.verdict import (
    OUTSIDE,
    OUTSIDE_PYTHON,
    Growth,
    classify,
    sentence,
)
from sandbox.units import MIB

ANALYSIS = Path(__file__).resolve().parents[3] / "sandbox" / "analysis"


def growth(rss: int, in_use: int | None, held: int | None, pymalloc: int | None = None) -> Growth:
    return Growth(60.0, rss * MIB, _b(in_use), _b(held), _b(pymalloc))


def _b(mib: int | None) -> int | None:
    return None if mib is None else mib * MIB


def test_shares() -> None:
    g = growth(100, 30, 80)
    assert (g.free_kept_bytes, g.outside_bytes) == (50 * MIB, 20 * MIB)
    assert growth(100, None, 80).free_kept_bytes is None
    assert growth(100, None, None).outside_bytes is None


@pytest.mark.parametrize(
    ("g", "expected"),
    [
        (growth(15, 15, 15), "little growth"),
        (growth(-200, -100, -100), "little growth"),
        (growth(100, 90, 95), f"mostly {LIVE}"),
        (growth(100, 5, 95), f"mostly {FREE_KEPT}"),
        (growth(100, 5, 10), f"mostly {OUTSIDE_PYTHON}"),
        (growth(100, 40, 75), f"mixed; the largest share is {LIVE}"),
        (growth(100, None, 95), ""),
        (growth(100, None, None), ""),
    ],
)
def test_classify(g: Growth, expected: str) -> None:
    assert classify(g) == expected


def test_classify_names_the_outside_share_for_a_program_that_is_not_python() -> None:
    assert classify(growth(100, 5, 10), python=False) == f"mostly {OUTSIDE}"


def test_the_words_are_those_of_compare() -> None:
    """The same phrases as `sandbox compare`'s verdict, wherever sandbox/analysis keeps it."""
    analysis = "".join(p.read_text() for p in ANALYSIS.glob("*.py"))
    assert LIVE in analysis
    assert FREE_KEPT in analysis
    head = OUTSIDE_PYTHON.split("; ")[0]
    assert head == "memory outside malloc: CPython's small-object arenas"
    assert f'"{head}; "' in analysis


def test_sentence_with_every_counter() -> None:
    assert sentence("pid 42 (glibc)", "glibc", growth(100, 5, 95)) == (
        "pid 42 (glibc): RSS grew 100 MiB in 60 s; live allocations grew 5 MiB; "
        "free memory glibc keeps grew 90 MiB -> mostly " + FREE_KEPT
    )


def test_sentence_names_growth_outside_malloc_and_pymalloc() -> None:
    assert sentence("pid 7 (jemalloc)", "jemalloc", growth(100, 5, 10, pymalloc=80)) == (
        "pid 7 (jemalloc): RSS grew 100 MiB in 60 s; live allocations grew 5 MiB; "
        "free memory jemalloc keeps grew 5 MiB; 90 MiB grew outside malloc (pymalloc arenas, "
        "stacks); pymalloc's arenas grew 80 MiB -> mostly " + OUTSIDE_PYTHON
    )


def test_sentence_without_an_in_use_count() -> None:
    assert sentence("pid 7 (mimalloc)", "mimalloc", growth(50, None, 48)) == (
        "pid 7 (mimalloc): RSS grew 50 MiB in 60 s; mimalloc gives no in-use count, "
        "so live and free cannot be told apart"
    )


def test_sentence_without_counters() -> None:
    assert sentence("pid 7 (libx.so)", "libx.so", growth(3, None, None)) == (
        "pid 7 (libx.so): RSS grew 3 MiB in 60 s; no allocator counters (not attached, "
        "or the allocator is not recognised) -> little growth"
    )


def test_to_dict() -> None:
    assert growth(100, 30, 80).to_dict() == {
        "duration_s": 60.0,
        "rss_bytes": 100 * MIB,
        "in_use_bytes": 30 * MIB,
        "held_bytes": 80 * MIB,
        "free_kept_bytes": 50 * MIB,
        "outside_bytes": 20 * MIB,
        "pymalloc_bytes": None,
        "pymalloc_used_bytes": None,
    }


def test_with_pymalloc_figures_the_split_is_compares() -> None:
    """Live = in use + pymalloc's objects; kept-but-free gains pymalloc's free arena bytes;
    outside is what neither holds: a leak of small objects is live, not outside."""
    leak = Growth(60.0, 100 * MIB, 2 * MIB, 4 * MIB, 95 * MIB, pymalloc_used_bytes=90 * MIB)
    assert leak.split == (92 * MIB, 7 * MIB, 5 * MIB, 1 * MIB)
    assert classify(leak) == f"mostly {LIVE}"
    assert sentence("pid 3 (glibc)", "glibc", leak) == (
        "pid 3 (glibc): RSS grew 100 MiB in 60 s; live grew 92 MiB (malloc's in use 2, "
        f"pymalloc's objects 90); kept-but-free grew 7 MiB (pymalloc's free 5) -> mostly {LIVE}"
    )
    arenas = Growth(60.0, 100 * MIB, 0, 5 * MIB, 90 * MIB, pymalloc_used_bytes=10 * MIB)
    assert classify(arenas) == f"mostly {PYMALLOC_FRAGMENTATION}"
    stacks = Growth(60.0, 100 * MIB, 0, 0, 10 * MIB, pymalloc_used_bytes=10 * MIB)
    assert classify(stacks) == f"mostly {OUTSIDE_BOTH}"


def test_sentence_carries_the_growth_read_before_the_verdict() -> None:
    reads = ["RSS still climbing: ≈ 160 [152, 168] MiB at 2 min", "live levels off at ≈ 60 MiB"]
    assert sentence("pid 42 (glibc)", "glibc", growth(100, 5, 95), reads=reads) == (
        "pid 42 (glibc): RSS grew 100 MiB in 60 s; live allocations grew 5 MiB; "
        "free memory glibc keeps grew 90 MiB; RSS still climbing: ≈ 160 [152, 168] MiB at 2 min; "
        "live levels off at ≈ 60 MiB -> mostly " + FREE_KEPT
    )
