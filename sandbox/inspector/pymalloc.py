"""CPython's small-object allocator, from the text `_PyObject_DebugMallocStats` writes.

That is the report `sys._debugmallocstats()` prints (its pymalloc part). The figures used here:

    # arenas allocated current         =                   14
    14 arenas * 1048576 bytes/arena    =           14,680,576
    # bytes in allocated blocks        =            9,567,672
    # bytes in available blocks        =            2,053,920

pymalloc maps its arenas itself (1 MiB each from 3.10, 256 KiB before), so they are in RSS but in
none of the allocator's counters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sandbox.agent import pymalloc as report


@dataclass(frozen=True)
class Pymalloc:
    """pymalloc's arenas and blocks at one moment."""

    arenas: int
    """Arenas allocated now."""
    arena_bytes: int
    """Bytes in those arenas (mapped by pymalloc, mostly resident)."""
    allocated_bytes: int
    """Bytes in blocks handed out to objects."""
    available_bytes: int
    """Bytes in free blocks of pools in use."""
    highwater_arenas: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "arenas": self.arenas,
            "arena_bytes": self.arena_bytes,
            "allocated_bytes": self.allocated_bytes,
            "available_bytes": self.available_bytes,
            "highwater_arenas": self.highwater_arenas,
        }


def parse(text: str) -> Pymalloc | None:
    """The figures of a `_PyObject_DebugMallocStats` report; None when it lacks them. The report
    is read by the agent's parser (one reader of one format, inside the process or from gdb)."""
    figures = report.parse(text)
    if figures is None:
        return None
    return Pymalloc(
        arenas=figures["arenas"],
        arena_bytes=figures["arena_bytes"],
        allocated_bytes=figures["used_bytes"],
        available_bytes=figures["free_bytes"],
        highwater_arenas=figures["highwater_arenas"],
    )
