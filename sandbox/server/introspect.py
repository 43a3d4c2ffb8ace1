"""The server's view of its own memory: the agent's readers, plus what only the server needs.

The allocator's counters (what they mean, per allocator, is in `sandbox.agent.allocator`'s
docstring), the release call and the interpreter's counters live in `sandbox.agent`, the code
that runs inside every server the harness starts; this module re-exports them for the
stair-stepper's /debug routes, and adds pympler's object census and the ballast behind
/debug/hold, which need more than the standard library.
"""

from __future__ import annotations

import os
from typing import Any

from sandbox.agent.allocator import (
    AllocatorReading,
    Backend,
    Glibc,
    Jemalloc,
    Mimalloc,
    Release,
    Tcmalloc,
    backend,
    choose_library,
    family,
    make_backend,
    malloc_owner,
    normalise_glibc,
    normalise_jemalloc,
    normalise_mimalloc,
    normalise_tcmalloc,
    release_free_memory,
    snapshot,
)
from sandbox.agent.process import python_stats, rss_bytes
from sandbox.allocators import maps as procmaps
from sandbox.units import MIB

__all__ = [
    "HOLD_BLOCK_BYTES",
    "MIB",
    "AllocatorReading",
    "Backend",
    "Ballast",
    "Glibc",
    "Jemalloc",
    "Mimalloc",
    "Release",
    "Tcmalloc",
    "backend",
    "detect_library",
    "family",
    "make_backend",
    "malloc_owner",
    "normalise_glibc",
    "normalise_jemalloc",
    "normalise_mimalloc",
    "normalise_tcmalloc",
    "python_stats",
    "release_free_memory",
    "rss_bytes",
    "snapshot",
    "top_objects",
]


# Each block's buffer lands in a 1 MiB size class: bytearray asks for one byte more than its
# length (a trailing NUL) and glibc adds a header, so a full MiB would spill into the next class.
HOLD_BLOCK_BYTES = MIB - 64
_PAGE = os.sysconf("SC_PAGE_SIZE")


def detect_library() -> str | None:
    """The mapped malloc replacement that serves malloc, or None when glibc's malloc does."""
    return choose_library(procmaps.allocator_libraries(procmaps.mapped_paths()), malloc_owner())


def top_objects(limit: int) -> list[dict[str, Any]]:
    """The `limit` object types using the most memory (pympler; seconds on a big heap)."""
    from pympler import muppy, summary

    rows: list[list[Any]] = summary.summarize(muppy.get_objects())  # type: ignore[no-untyped-call]
    rows.sort(key=lambda row: row[2], reverse=True)
    return [
        {"type": str(kind), "count": int(count), "total_bytes": int(total)}
        for kind, count, total in rows[:limit]
    ]


class Ballast:
    """Memory held on purpose through the C allocator, in resident 1 MiB blocks.

    Not thread-safe: the server touches it only from the event loop.
    """

    def __init__(self) -> None:
        self._blocks: list[bytearray] = []

    @property
    def mib(self) -> int:
        return len(self._blocks)

    def hold(self, mib: int) -> int:
        """Allocate `mib` more blocks and touch every page; returns the MiB now held."""
        if mib < 0:
            raise ValueError(f"mib must be >= 0, got {mib}")
        touch = b"\x01" * len(range(0, HOLD_BLOCK_BYTES, _PAGE))
        for _ in range(mib):
            block = bytearray(HOLD_BLOCK_BYTES)
            block[::_PAGE] = touch
            self._blocks.append(block)
        return self.mib

    def add(self, other: Ballast) -> int:
        """Take over `other`'s blocks (allocated elsewhere, e.g. in a worker thread); returns
        the MiB now held."""
        self._blocks.extend(other._blocks)
        other._blocks = []
        return self.mib

    def release(self) -> int:
        """Drop every block; returns how many MiB were released to the allocator."""
        dropped = self.mib
        self._blocks = []
        return dropped
