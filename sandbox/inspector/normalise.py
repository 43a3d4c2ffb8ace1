"""Every allocator's native counters reduced to in_use_bytes and held_bytes, for `sandbox inspect`.

The formulas and the notes are the agent's own (sandbox/agent/allocator.py, whose docstring
explains each), so a process read from outside by gdb and one reading itself through the agent
give the same numbers from one piece of code. The agent package is standard library only and
starts nothing when imported, so the harness may use it:

- glibc:    in_use = uordblks + hblkhd; held = arena + hblkhd
- jemalloc: in_use = stats.allocated; held = stats.resident
- tcmalloc: in_use = generic.current_allocated_bytes;
            held = generic.heap_size - tcmalloc.pageheap_unmapped_bytes
- mimalloc: in_use = None (release builds do not count it); held = current_commit
"""

from __future__ import annotations

from collections.abc import Callable

from sandbox.agent import allocator

Normaliser = Callable[[dict[str, int]], tuple[int | None, int | None]]

NORMALISERS: dict[str, Normaliser] = {
    "glibc": allocator.normalise_glibc,
    "jemalloc": allocator.normalise_jemalloc,
    "tcmalloc": allocator.normalise_tcmalloc,
    "mimalloc": allocator.normalise_mimalloc,
}

NOTES: dict[str, str] = {
    backend.name: backend.note
    for backend in (allocator.Glibc, allocator.Tcmalloc, allocator.Mimalloc)
    if backend.note
}
"""What limits each allocator's numbers (the in-process snapshot's own note)."""
