"""Where a watched process's memory growth went, in plain words.

The words are those of `sandbox compare`'s verdict (sandbox.analysis.compare), so a run and an
inspected process read the same: RSS growth splits into what the application still has
allocated (live growth: a leak or a cache), what the allocator holds but nobody uses (free
memory kept: fragmentation, unreturned pages), and what malloc never sees (RSS growth minus
the growth of what the allocator holds: CPython's small-object arenas, thread stacks, other
mappings). The largest share names the verdict; below 16 MiB of RSS growth it is "little
growth". With pymalloc's figures in both looks the split is compare's: live = in use +
pymalloc's objects, kept-but-free adds pymalloc's free arena bytes (pymalloc arena fragmentation
when they are at least half of it), outside is what neither malloc nor pymalloc holds. The
sentence carries the watch's growth read (`watch_read`: whether each quantity levels off or
climbs, over time) before the verdict, as compare's carries its stair read; the class itself
is still the largest share of the growth (a leak and a cache are both "live allocations").
This module stands alone so the two classifiers can later become one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sandbox.analysis.verdict import (
    FREE_KEPT,
    LITTLE_GROWTH,
    LITTLE_GROWTH_BYTES,
    LIVE,
    MOSTLY,
    PYMALLOC_FRAGMENTATION,
)
from sandbox.analysis.verdict import OUTSIDE as OUTSIDE_BOTH

# The thresholds and the words of `sandbox compare`'s verdict, from the verdict itself.
from sandbox.units import mib_figure

OUTSIDE_PYTHON = (
    "memory outside malloc: CPython's small-object arenas; "
    "restart it with PYTHONMALLOC=malloc to put it under the allocator"
)
OUTSIDE = "memory outside malloc: mappings the allocator does not count (thread stacks, mmap)"


@dataclass(frozen=True)
class Growth:
    """Changes from the first look at a process to the last."""

    duration_s: float
    rss_bytes: int
    in_use_bytes: int | None
    """None when either look had no in-use count."""
    held_bytes: int | None
    pymalloc_bytes: int | None = None
    """Growth of CPython's arenas, when both looks could read them."""
    pymalloc_used_bytes: int | None = None
    """Growth of pymalloc's bytes in objects, when both looks could read them: then live is
    in use + this, kept-but-free adds pymalloc's arena bytes outside objects, and outside is
    what neither malloc nor pymalloc holds (compare's split)."""

    @property
    def split(self) -> tuple[int, int, int, int] | None:
        """(live, kept-but-free, pymalloc's part of it, outside) with pymalloc's figures; None
        without them or without malloc's counters."""
        used, arenas = self.pymalloc_used_bytes, self.pymalloc_bytes
        kept = self.free_kept_bytes
        if used is None or arenas is None or kept is None or self.held_bytes is None:
            return None
        assert self.in_use_bytes is not None
        py_free = arenas - used
        outside = self.rss_bytes - self.held_bytes - arenas
        return self.in_use_bytes + used, kept + py_free, py_free, outside

    @property
    def free_kept_bytes(self) -> int | None:
        """Growth of the free memory the allocator keeps (held growth - live growth)."""
        if self.in_use_bytes is None or self.held_bytes is None:
            return None
        return self.held_bytes - self.in_use_bytes

    @property
    def outside_bytes(self) -> int | None:
        """Growth malloc did not see: RSS growth - held growth."""
        return None if self.held_bytes is None else self.rss_bytes - self.held_bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "duration_s": self.duration_s,
            "rss_bytes": self.rss_bytes,
            "in_use_bytes": self.in_use_bytes,
            "held_bytes": self.held_bytes,
            "free_kept_bytes": self.free_kept_bytes,
            "outside_bytes": self.outside_bytes,
            "pymalloc_bytes": self.pymalloc_bytes,
            "pymalloc_used_bytes": self.pymalloc_used_bytes,
        }


def classify(growth: Growth, python: bool = True) -> str:
    """The largest share of the RSS growth, named; "" when the counters cannot tell."""
    if growth.rss_bytes < LITTLE_GROWTH_BYTES:
        return LITTLE_GROWTH
    live, kept = growth.in_use_bytes, growth.free_kept_bytes
    if live is None or kept is None:
        return ""
    split = growth.split
    if split is not None:
        live, kept, py_free, outside = split
        free_words = PYMALLOC_FRAGMENTATION if py_free >= 0.5 * kept else FREE_KEPT
        both = {LIVE: live, free_words: kept, OUTSIDE_BOTH: outside}
        what, largest = max(both.items(), key=lambda kv: kv[1])
        if largest >= MOSTLY * growth.rss_bytes:
            return f"mostly {what}"
        return f"mixed; the largest share is {what}"
    shares = {
        LIVE: live,
        FREE_KEPT: kept,
        (OUTSIDE_PYTHON if python else OUTSIDE): growth.outside_bytes or 0,
    }
    what, largest = max(shares.items(), key=lambda kv: kv[1])
    if largest >= MOSTLY * growth.rss_bytes:
        return f"mostly {what}"
    return f"mixed; the largest share is {what}"


def _split_words(growth: Growth, split: tuple[int, int, int, int]) -> list[str]:
    """What grew, in compare's split (live, kept-but-free, outside)."""
    live, kept, py_free, outside = split
    in_use, used = growth.in_use_bytes or 0, growth.pymalloc_used_bytes or 0
    words = [
        f"live grew {mib_figure(live)} MiB (malloc's in use {mib_figure(in_use)}, "
        f"pymalloc's objects {mib_figure(used)})",
        f"kept-but-free grew {mib_figure(kept)} MiB (pymalloc's free {mib_figure(py_free)})",
    ]
    if outside >= LITTLE_GROWTH_BYTES:
        words.append(f"{mib_figure(outside)} MiB grew outside malloc and pymalloc")
    return words


def sentence(
    label: str, allocator: str, growth: Growth, python: bool = True, reads: Sequence[str] = ()
) -> str:
    """One line: what grew, where it is going (`reads`: the growth read's few words), then
    `-> verdict`."""
    words = [f"{label}: RSS grew {mib_figure(growth.rss_bytes)} MiB in {growth.duration_s:.0f} s"]
    split = growth.split
    if split is not None:
        words += _split_words(growth, split) + list(reads)
        verdict = classify(growth, python)
        return "; ".join(words) + (f" -> {verdict}" if verdict else "")
    if growth.in_use_bytes is not None:
        words.append(f"live allocations grew {mib_figure(growth.in_use_bytes)} MiB")
    kept = growth.free_kept_bytes
    if kept is not None:
        words.append(f"free memory {allocator} keeps grew {mib_figure(kept)} MiB")
    elif growth.held_bytes is not None:
        words.append(f"{allocator} gives no in-use count, so live and free cannot be told apart")
    else:
        words.append("no allocator counters (not attached, or the allocator is not recognised)")
    outside = growth.outside_bytes
    if outside is not None and outside >= LITTLE_GROWTH_BYTES:
        where = "pymalloc arenas, stacks" if python else "stacks, other mappings"
        words.append(f"{mib_figure(outside)} MiB grew outside malloc ({where})")
    if growth.pymalloc_bytes is not None and abs(growth.pymalloc_bytes) >= LITTLE_GROWTH_BYTES:
        words.append(f"pymalloc's arenas grew {mib_figure(growth.pymalloc_bytes)} MiB")
    words += reads
    verdict = classify(growth, python)
    return "; ".join(words) + (f" -> {verdict}" if verdict else "")
