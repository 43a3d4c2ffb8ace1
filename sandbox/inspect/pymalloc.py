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

import re
from dataclasses import dataclass
from typing import Any

_COUNTER = re.compile(r"^# (?P<name>[a-z ]+?)\s+=\s+(?P<value>[\d,]+)$")
_ARENA_BYTES = re.compile(r"^\d+ arenas \* \d+ bytes/arena\s+=\s+(?P<value>[\d,]+)$")


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
    """The figures of a `_PyObject_DebugMallocStats` report; None when it lacks them."""
    counters: dict[str, int] = {}
    arena_bytes: int | None = None
    for line in text.splitlines():
        line = line.strip()
        counter = _COUNTER.match(line)
        if counter:
            counters.setdefault(counter["name"], _number(counter["value"]))
            continue
        arenas = _ARENA_BYTES.match(line)
        if arenas and arena_bytes is None:
            arena_bytes = _number(arenas["value"])
    needed = ("arenas allocated current", "bytes in allocated blocks", "bytes in available blocks")
    if arena_bytes is None or any(name not in counters for name in needed):
        return None
    return Pymalloc(
        arenas=counters["arenas allocated current"],
        arena_bytes=arena_bytes,
        allocated_bytes=counters["bytes in allocated blocks"],
        available_bytes=counters["bytes in available blocks"],
        highwater_arenas=counters.get("arenas highwater mark"),
    )


def _number(text: str) -> int:
    return int(text.replace(",", ""))
